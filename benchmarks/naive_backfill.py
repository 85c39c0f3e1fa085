"""The baseline of the backfill benchmark: a hand-written sequential script of the kind teams write today.

For each registered model in an MLflow registry: describe the SageMaker model package group, creating it
when missing; then for each version, oldest first: download the model's artifacts with MLflow, tar them
into `model.tar.gz`, upload it to S3 with boto3, and create a versioned model package in the group (an
`InferenceSpecification` with one fixed image URI, approval `PendingManualApproval`). One request at a
time, plain boto3 and MLflow: nothing of mlsync (it is what mlsync replaces).

    AWS_ENDPOINT_URL=http://127.0.0.1:5000 python benchmarks/naive_backfill.py \\
        --tracking-uri sqlite:///mlflow.db --s3-prefix s3://bucket/backfill --region us-east-1

boto3 reads `AWS_ENDPOINT_URL` (and the credentials) from the environment as usual. Importable:
`backfill(...)` does the work and returns what it did.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # before mlflow: nothing leaves 127.0.0.1

import argparse
import re
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import mlflow
from botocore.exceptions import ClientError
from mlflow.entities.model_registry import RegisteredModel

# A fixed serving image, as such scripts hard-code one (this is the shape of an ECR URI; the emulator,
# like SageMaker's CreateModelPackage, does not check that the image exists).
IMAGE_URI = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlflow-pyfunc:latest"


@dataclass
class Backfilled:
    """What one run did."""

    groups_created: int = 0
    packages_created: int = 0
    seconds: float = 0.0


def group_name(model_name: str) -> str:
    """The model's name made into a valid group name (letters, digits and single hyphens, 63 at most)."""
    return re.sub(r"-+", "-", re.sub(r"[^A-Za-z0-9]", "-", model_name)).strip("-")[:63]


def backfill(tracking_uri: str, s3_prefix: str, region: str, image: str = IMAGE_URI) -> Backfilled:
    """Mirror every version of every registered model into SageMaker, one request at a time."""
    started = time.perf_counter()
    done = Backfilled()
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    sagemaker = boto3.client("sagemaker", region_name=region)
    s3 = boto3.client("s3", region_name=region)
    bucket, _, prefix = s3_prefix.removeprefix("s3://").partition("/")
    for model in _registered_models(client):
        group = group_name(model.name)
        try:
            sagemaker.describe_model_package_group(ModelPackageGroupName=group)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ValidationException":  # SageMaker's "does not exist"
                raise
            sagemaker.create_model_package_group(
                ModelPackageGroupName=group, ModelPackageGroupDescription=f"MLflow model {model.name}"
            )
            done.groups_created += 1
        versions = client.search_model_versions(f"name = '{model.name}'", max_results=10_000)
        for version in sorted(versions, key=lambda v: int(v.version)):
            key = f"{prefix}/{group}/{version.version}/model.tar.gz".lstrip("/")
            with tempfile.TemporaryDirectory() as tmp:
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=client.get_model_version_download_uri(model.name, version.version),
                    dst_path=os.path.join(tmp, "model"),
                    tracking_uri=tracking_uri,
                )
                tarball = Path(tmp) / "model.tar.gz"
                with tarfile.open(tarball, "w:gz") as tar:
                    for path in sorted(Path(local).iterdir()):
                        tar.add(path, arcname=path.name)
                s3.upload_file(str(tarball), bucket, key)
            sagemaker.create_model_package(
                ModelPackageGroupName=group,
                ModelPackageDescription=f"MLflow model {model.name} version {version.version}",
                InferenceSpecification={
                    "Containers": [{"Image": image, "ModelDataUrl": f"s3://{bucket}/{key}"}],
                    "SupportedContentTypes": ["application/json"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
                ModelApprovalStatus="PendingManualApproval",
            )
            done.packages_created += 1
    done.seconds = time.perf_counter() - started
    return done


def _registered_models(client: mlflow.MlflowClient) -> list[RegisteredModel]:
    """Every registered model, following the pages."""
    models: list[RegisteredModel] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        models.extend(page)
        token = page.token
        if not token:
            return models


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracking-uri", required=True, help="the MLflow tracking (and registry) URI")
    parser.add_argument("--s3-prefix", required=True, help="s3://bucket/prefix for the model.tar.gz files")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--image", default=IMAGE_URI, help="the serving image URI of every package")
    arguments = parser.parse_args()
    done = backfill(arguments.tracking_uri, arguments.s3_prefix, arguments.region, arguments.image)
    print(
        f"naive backfill: {done.packages_created} packages, {done.groups_created} groups created "
        f"in {done.seconds:.2f} s"
    )


if __name__ == "__main__":
    main()
