"""Build an `Engine` (and `mlsync doctor`'s probes) over the real gateways (MLflow client, boto3).

Kept apart from `engine.py` so that importing the engine (and the pure core under it) never imports
boto3 or mlflow; each trigger calls `connect()` once.
"""

from __future__ import annotations

import boto3

from .config import Settings
from .doctor import MlflowAnswer, Probes
from .engine import Engine
from .fleet import Fleet
from .gateways.aws import aws_clients, aws_errors, aws_session
from .gateways.probes import AwsProbes
from .gateways.s3 import S3Storage
from .gateways.sagemaker import SageMakerRegistry
from .images import load_sdk_framework_images
from .ports import Gateways
from .sources.mlflow_probe import probe_mlflow
from .sources.mlflow_registry import MlflowSource
from .sources.target_view import TargetView
from .targets import Target


def connect(settings: Settings) -> Engine:
    """An engine reading the configured MLflow registry and writing the primary target's AWS account
    (the one account and region of settings without `[[targets]]`)."""
    return connect_target(settings, settings.all_targets()[0])


def connect_target(settings: Settings, target: Target) -> Engine:
    """The engine of one target: its own boto3 session (profile or assumed role), region and prefixes.

    Raises:
        ConfigError: no region could be resolved for the target.
        GatewayError: its profile does not exist.
    """
    primary = target == settings.all_targets()[0]
    own = settings.for_target(target)
    with aws_errors("opening the AWS session of target", target.name):
        session = aws_session(target.profile, target.role_arn, target.external_id)
    clients = aws_clients(
        own.region, own.retry_mode, own.max_attempts, session=session, concurrency=own.concurrency
    )
    source = MlflowSource(own.tracking_uri, own.registry_uri, own.source_id, concurrency=own.concurrency)
    registry = SageMakerRegistry(clients.sagemaker, clients.sts)
    images = load_sdk_framework_images(clients.sagemaker.meta.region_name)
    # Without [[targets]] the source is MLflow's as it is: exactly a single-target setup's.
    viewed = TargetView(source, target, own.approval, primary=primary) if settings.targets else source
    gateways = Gateways(viewed, registry, S3Storage(clients.s3), images)
    return Engine(own, gateways, target=target, primary=primary)


def connect_all(settings: Settings) -> list[Engine]:
    """Every target's engine, the primary first (one without `[[targets]]`)."""
    return [connect_target(settings, target) for target in settings.all_targets()]


def connect_fleet(settings: Settings) -> Fleet:
    """Every target's engine behind one `Reconciler`, for the triggers that reconcile them all."""
    return Fleet(connect_all(settings))


class _DoctorProbes(AwsProbes):
    """`doctor.Probes`: AWS's questions from the gateway, MLflow's from the source."""

    def __init__(self, settings: Settings, session: boto3.Session | None = None) -> None:
        super().__init__(settings, session)
        self._for_mlflow = settings

    def mlflow(self) -> MlflowAnswer:
        return probe_mlflow(self._for_mlflow)


def doctor_probes(settings: Settings, target: Target | None = None) -> Probes:
    """What `mlsync doctor` asks MLflow and AWS, for these settings (one target's, `Settings.for_target`)
    and that target's credentials (default: boto3's chain); nothing is asked until a check runs.

    Raises:
        GatewayError: the target's profile does not exist.
    """
    if target is None:
        return _DoctorProbes(settings)
    with aws_errors("opening the AWS session of target", target.name):
        session = aws_session(target.profile, target.role_arn, target.external_id)
    return _DoctorProbes(settings, session)
