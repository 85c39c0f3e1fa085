"""Build an `Engine` over the real gateways (MLflow client, boto3) from `Settings`.

Kept apart from `engine.py` so that importing the engine (and the pure core under it) never imports
boto3 or mlflow; each trigger calls `connect()` once.
"""

from __future__ import annotations

from .config import Settings
from .engine import Engine
from .gateways.aws import aws_clients
from .gateways.s3 import S3Storage
from .gateways.sagemaker import SageMakerRegistry
from .images import load_sdk_framework_images
from .ports import Gateways
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
