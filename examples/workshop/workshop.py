"""AWS's "Register and Manage Models in SageMaker Model Registry" workshop, done the MLflow way.

Every fact the workshop shows in SageMaker comes from MLflow here; mlsync carries it across (and a
reviewer's decision back). The steps, as docs/workshop.md walks through them:

1. the registered model `ml-pipeline-model-group`, described "Model group for ML pipeline workshop";
2. version 1: an XGBoost model trained by "Lambda Preprocessing Pipeline" on training data `v1.0`, with
   learning_rate, max_depth, n_estimators and its accuracy logged, described "ML pipeline v1 model";
3. `mlsync push`: the group, a package served by SageMaker's built-in XGBoost image, the metadata
   (Algorithm, Training dataset version, Accuracy, Created by), model-quality statistics, a model card;
4. a reviewer approves version 1 in SageMaker; `mlsync pull` records the review in MLflow;
5. version 2 in the same group (Pending): the workshop's versions table, v1 Approved and v2 Pending;
6. version 2 is approved, misbehaves, and `mlsync rollback` goes back to version 1;
7. `mlsync verify`: both packages, and the same model served by MLflow's pyfunc image (the workshop's
   "custom image" option), load and predict what MLflow predicts.

It talks only to a SageMaker emulator on 127.0.0.1 (with S3 and STS through moto): the one in
`AWS_ENDPOINT_URL` when set (the end-to-end test passes its own), else one it starts. Everything is written
under `WORKSHOP_DIR` (default ./workshop-work, recreated on each run).
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

GROUP = "ml-pipeline-model-group"
GROUP_DESCRIPTION = "Model group for ML pipeline workshop"
PYFUNC_MODEL = "ml-pipeline-model-pyfunc"
CREATED_BY = "Lambda Preprocessing Pipeline"
INTENDED_USE = "Screening of breast tissue samples in the ML pipeline workshop; not for diagnosis"
BUCKET = "mlsync-workshop"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
PYFUNC_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlflow-pyfunc:workshop"
HYPERPARAMETERS = (
    {"learning_rate": 0.1, "max_depth": 5, "n_estimators": 100},
    {"learning_rate": 0.05, "max_depth": 6, "n_estimators": 200},
)
CONFIG = f"""\
s3_prefix = "s3://{BUCKET}/mlsync"
headline_metric = "accuracy"
# The workshop's first choice: SageMaker's own XGBoost image, not MLflow's pyfunc image.
xgboost_container = "builtin"
xgboost_image = "{XGBOOST_IMAGE}"

[images]
# The same model again, served by an image of your own (MLflow's pyfunc image, built and pushed once).
"{PYFUNC_MODEL}" = "{PYFUNC_IMAGE}"

[metadata]
# The workshop's own words in Studio, beside the param.* / metric.* keys mlsync always writes.
"Algorithm" = "algorithm"
"Training dataset version" = "training_dataset_version"
"Accuracy" = "metric:accuracy"
"Created by" = "user"
"""


def step(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def mlsync(*args: str) -> None:
    """Run an `mlsync` command as a user types it; a failure stops the workshop.

    The command runs in this process (`mlsync`'s own entry point, the same arguments and output), so the
    workshop pays MLflow's and boto3's imports once rather than once a step.
    """
    from mlflow_sagemaker_registry.triggers.cli import cli

    print("$ mlsync " + " ".join(f"'{a}'" if " " in a else a for a in args), flush=True)
    try:
        cli.main(list(args), prog_name="mlsync", standalone_mode=False)
    except SystemExit as exit:
        if exit.code:
            raise
    sys.stdout.flush()


def train_version(version: int) -> str:
    """Train, log and register one XGBoost version of the workshop's model; returns its run id."""
    import mlflow
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped]
    import xgboost
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer(as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(data.data, data.target, random_state=version)
    params = HYPERPARAMETERS[version - 1]
    with mlflow.start_run(run_name=f"ml-pipeline v{version}") as run:
        mlflow.set_tag("mlflow.user", CREATED_BY)
        training = pd.concat([x_train, y_train], axis=1)
        dataset = mlflow.data.from_pandas(training, name="ml-pipeline-training", targets="target")
        mlflow.log_input(dataset, context="training", tags={"version": f"v1.{version - 1}"})
        model = xgboost.XGBClassifier(**params).fit(x_train, y_train)
        mlflow.log_params(params)
        mlflow.log_metric("accuracy", round(float(accuracy_score(y_test, model.predict(x_test))), 3))
        info = mlflow.xgboost.log_model(
            model,
            name="model",
            registered_model_name=GROUP,
            input_example=np.asarray(x_test[:3]),
            pip_requirements=[f"xgboost=={xgboost.__version__}"],
        )
    client = mlflow.MlflowClient()
    number = str(info.registered_model_version)
    client.update_model_version(GROUP, number, f"ML pipeline v{version} model")
    client.set_model_version_tag(GROUP, number, "intended_use", INTENDED_USE)  # the model card shows it
    if version == 1:
        # The same trained model as a second registered model, for the pyfunc image.
        mlflow.register_model(info.model_uri, PYFUNC_MODEL)
    return str(run.info.run_id)


def review(version: str, status: str, why: str) -> None:
    """A reviewer's decision in SageMaker (Studio, the console or `aws sagemaker update-model-package`)."""
    import boto3
    import mlflow

    arn = mlflow.MlflowClient().get_model_version(GROUP, version).tags["sagemaker.model_package_arn"]
    boto3.client("sagemaker").update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus=status, ApprovalDescription=why
    )
    print(f"(reviewer, in SageMaker) version {version}: {status} - {why}")


def run_workshop() -> None:
    import boto3
    import mlflow

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    Path("mlsync.toml").write_text(CONFIG, encoding="utf-8")
    mlflow.set_experiment("ml-pipeline workshop")

    step(f"1. The model group: MLflow registered model {GROUP!r}")
    mlflow.MlflowClient().create_registered_model(GROUP, description=GROUP_DESCRIPTION)

    step("2. Train and register version 1 (XGBoost, training data v1.0)")
    train_version(1)

    step("3. Mirror it: group, package, metadata, statistics, model card")
    mlsync("plan", "--all")
    mlsync("push", "--all")
    mlsync("status", GROUP)

    step("4. A reviewer approves version 1 in SageMaker; MLflow records the review")
    review("1", "Approved", "Accuracy above the 0.9 bar; reviewed by the ML lead")
    mlsync("pull", GROUP)

    step("5. Version 2 in the same group: the workshop's versions table")
    train_version(2)
    mlsync("push", "--all")
    mlsync("status", GROUP)

    step("6. Version 2 is approved, misbehaves in production, and is rolled back")
    review("2", "Approved", "Better accuracy on the holdout set")
    mlsync("pull", GROUP)
    mlsync("rollback", GROUP, "--to", "1", "--reason", "v2 misclassifies the new intake batch")
    mlsync("status", GROUP)

    step("7. Check every package before deploying: both images")
    mlsync("verify", "--all")
    step("8. Push again: nothing to do")
    mlsync("push", "--all")


@contextmanager
def sagemaker() -> Iterator[None]:
    """The emulator in AWS_ENDPOINT_URL when one is given, else one started for the workshop."""
    if os.environ.get("AWS_ENDPOINT_URL"):
        yield
        return
    from mlflow_sagemaker_registry.emulator import EmulatorProcess

    with EmulatorProcess() as emulator:
        os.environ["AWS_ENDPOINT_URL"] = emulator.url
        yield


def main() -> None:
    work = Path(os.environ.get("WORKSHOP_DIR", Path.cwd() / "workshop-work")).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.chdir(work)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "workshop"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "workshop"),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(work / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(work / "no-aws-credentials"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    warnings.filterwarnings("ignore")
    with sagemaker():
        endpoint = os.environ["AWS_ENDPOINT_URL"]
        step(f"SageMaker emulator on {endpoint}; MLflow registry in {work.name}/mlflow.db")
        run_workshop()


if __name__ == "__main__":
    main()
