"""Build an `Engine` (and `mlsync doctor`'s probes) over the real gateways (MLflow client, boto3).

Kept apart from `engine.py` so that importing the engine (and the pure core under it) never imports
boto3 or mlflow; each trigger calls `connect()` once.
"""

from __future__ import annotations

from .config import Settings
from .doctor import MlflowAnswer, Probes
from .engine import Engine
from .gateways.aws import aws_clients
from .gateways.probes import AwsProbes
from .gateways.s3 import S3Storage
from .gateways.sagemaker import SageMakerRegistry
from .images import load_sdk_framework_images
from .ports import Gateways
from .sources.mlflow_probe import probe_mlflow
from .sources.mlflow_registry import MlflowSource


def connect(settings: Settings) -> Engine:
    """An engine reading the configured MLflow registry and writing the configured AWS account."""
    clients = aws_clients(
        settings.region, settings.retry_mode, settings.max_attempts, concurrency=settings.concurrency
    )
    source = MlflowSource(
        settings.tracking_uri, settings.registry_uri, settings.source_id, concurrency=settings.concurrency
    )
    registry = SageMakerRegistry(clients.sagemaker, clients.sts)
    images = load_sdk_framework_images(clients.sagemaker.meta.region_name)
    return Engine(settings, Gateways(source, registry, S3Storage(clients.s3), images))


class _DoctorProbes(AwsProbes):
    """`doctor.Probes`: AWS's questions from the gateway, MLflow's from the source."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._for_mlflow = settings

    def mlflow(self) -> MlflowAnswer:
        return probe_mlflow(self._for_mlflow)


def doctor_probes(settings: Settings) -> Probes:
    """What `mlsync doctor` asks MLflow and AWS, for these settings; nothing is asked until a check runs."""
    return _DoctorProbes(settings)
