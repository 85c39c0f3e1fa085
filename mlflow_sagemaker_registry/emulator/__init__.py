"""A SageMaker Model Registry emulator that is stricter than moto, for tests, the demo and benchmarks.

It refuses what real SageMaker refuses (every constraint of botocore's service model, Tags on versioned
packages, duplicate groups, undocumented approval transitions), keeps what moto drops (``ModelLifeCycle``,
``SourceUri``, ``ModelCard``...), merges updates, honours ``ClientToken`` and implements the deletes. It
records who created and last updated a package (``CreatedBy``/``LastModifiedBy``, from the signing access
key) and emits the ``SageMaker Model Package State Change`` events SageMaker sends to EventBridge. Tests make
it misbehave on purpose (``FaultControls``: error rates, lost answers, a denied group, delays, a
``Throttle``), and benchmarks make every request pay a ``latency``. moto still serves S3 and STS. See
``docs/emulator.md``.

In process (no network)::

    with emulated_aws() as backend:
        boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName="churn")
        assert backend.call_counts()["CreateModelPackageGroup"] == 1
        backend.subscribe(lambda event: handler(event, None))  # a Lambda handler under test

As a server (``python -m mlflow_sagemaker_registry.emulator --port N``), or started from Python::

    with EmulatorProcess() as emulator:
        boto3.client("sagemaker", endpoint_url=emulator.url)
"""

from .backend import (
    DEFAULT_ACCOUNT_ID,
    WRITE_OPERATIONS,
    Call,
    CallLog,
    RegistryBackend,
    Subscriber,
    user_context,
)
from .events import Event
from .faults import FaultControls, Throttle
from .inprocess import emulated_aws
from .process import EmulatorProcess
from .server import EmulatorApp, make_emulator_server
from .validation import validate_request

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "WRITE_OPERATIONS",
    "Call",
    "CallLog",
    "EmulatorApp",
    "EmulatorProcess",
    "Event",
    "FaultControls",
    "RegistryBackend",
    "Subscriber",
    "Throttle",
    "emulated_aws",
    "make_emulator_server",
    "user_context",
    "validate_request",
]
