"""The README's demo: MLflow (SQLite) -> `mlsync push` -> SageMaker (the local emulator on 127.0.0.1).

1. starts the SageMaker emulator (S3 and STS through moto) on a free loopback port;
2. trains two small scikit-learn models and registers versions of each in a fresh SQLite registry;
3. promotes one version (alias `champion`) and moves another to the `Production` stage;
4. runs `mlsync push --all`, then `mlsync status` for both models, as a user would in a shell.

Nothing reaches real AWS: dummy credentials and `AWS_ENDPOINT_URL` point every call at the emulator.
Everything is written under ./demo-work (recreated on each run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

WORK = Path.cwd() / "demo-work"
BUCKET = "mlsync-demo"
CLASSIFIER = "iris classifier"
REGRESSOR = "diabetes_regressor.v2"


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def train_and_register() -> None:
    """Two models, two versions each, logged and registered the usual MLflow way."""
    import mlflow
    from sklearn.datasets import load_diabetes, load_iris
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import accuracy_score, f1_score, mean_squared_error, r2_score
    from sklearn.model_selection import train_test_split

    mlflow.set_experiment("mlsync demo")
    x_train, x_test, y_train, y_test = train_test_split(*load_iris(return_X_y=True), random_state=0)
    for c in (0.05, 1.0):
        with mlflow.start_run(run_name=f"iris C={c}"):
            model = LogisticRegression(C=c, max_iter=500).fit(x_train, y_train)
            predicted = model.predict(x_test)
            mlflow.log_params({"C": c, "max_iter": 500, "features": ["sepal length", "sepal width"]})
            mlflow.log_metrics(
                {
                    "accuracy": accuracy_score(y_test, predicted),
                    "f1_score": f1_score(y_test, predicted, average="weighted"),
                }
            )
            mlflow.sklearn.log_model(
                model, name="model", registered_model_name=CLASSIFIER, input_example=x_test[:2]
            )
    x_train, x_test, y_train, y_test = train_test_split(*load_diabetes(return_X_y=True), random_state=0)
    for alpha in (0.1, 10.0):
        with mlflow.start_run(run_name=f"diabetes alpha={alpha}"):
            model = Ridge(alpha=alpha).fit(x_train, y_train)
            predicted = model.predict(x_test)
            mlflow.log_params({"alpha": alpha, "solver": "auto"})
            mlflow.log_metrics(
                {
                    "rmse": float(mean_squared_error(y_test, predicted) ** 0.5),
                    "r2": r2_score(y_test, predicted),
                }
            )
            mlflow.sklearn.log_model(
                model, name="model", registered_model_name=REGRESSOR, input_example=x_test[:2]
            )

    client = mlflow.MlflowClient()
    client.set_registered_model_alias(CLASSIFIER, "champion", "2")
    client.transition_model_version_stage(REGRESSOR, "1", "Production")


def show_back_links() -> None:
    """Both directions of the link for one version: the MLflow tags and the package's metadata."""
    import boto3
    import mlflow

    tags = mlflow.MlflowClient().get_model_version(CLASSIFIER, "2").tags
    banner(f"MLflow {CLASSIFIER!r} v2 tags: {tags}")
    package = boto3.client("sagemaker").describe_model_package(
        ModelPackageName=tags["sagemaker.model_package_arn"]
    )
    metadata = package["CustomerMetadataProperties"]
    print(
        "SageMaker package metadata:",
        {k: v for k, v in sorted(metadata.items()) if not k.startswith("param.")},
    )
    print("ModelDataUrl:", package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"])


def mlsync(*args: str) -> None:
    """Run the installed `mlsync` command, as a user would."""
    command = [str(Path(sys.executable).with_name("mlsync")), *args]
    print("$ mlsync " + " ".join(f"'{a}'" if " " in a else a for a in args), flush=True)
    subprocess.run(command, check=False)


def main() -> None:
    from mlflow_sagemaker_registry.emulator import EmulatorProcess

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    os.chdir(WORK)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(WORK / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(WORK / "no-aws-credentials"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{WORK / 'mlflow.db'}",
            "MLSYNC_S3_PREFIX": f"s3://{BUCKET}/mlsync",
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    warnings.filterwarnings("ignore")

    with EmulatorProcess() as emulator:
        os.environ["AWS_ENDPOINT_URL"] = emulator.url
        banner(f"SageMaker emulator on {emulator.url}; MLflow registry in {WORK.name}/mlflow.db")
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)

        banner(
            "Training and registering 2 models x 2 versions; champion -> iris v2, diabetes v1 -> Production"
        )
        train_and_register()

        banner("Plan, then push")
        mlsync("plan", "--all")
        mlsync("push", "--all")

        banner("A second push has nothing to do")
        mlsync("push", "--all")

        banner("Status")
        mlsync("status", CLASSIFIER)
        print()
        mlsync("status", REGRESSOR)
        show_back_links()
        calls = emulator.call_counts()
        banner(
            "SageMaker calls received by the emulator: "
            + ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))
        )


if __name__ == "__main__":
    main()
