"""Test support for mlsync and for code built on it: the ports in memory (in the spirit of `kopf.testing`).

An `Engine` over `memory_gateways()` reads and writes nothing but dicts, so a reconcile, a failure or a
review is a test of a few milliseconds::

    source, registry = MemorySource(), MemoryRegistry()
    source.add_version("churn", aliases=["champion"])
    engine = Engine(Settings(s3_prefix="s3://bucket/mlsync"), memory_gateways(source, registry))
    engine.push(["churn"])
    registry.review(registry.packages("churn")[0].arn, ApprovalStatus.REJECTED, "bias", by="alice")

Shipped inside the package on purpose, and stdlib only (no boto3, mlflow or click); `memory.py` says what
the fakes keep of the real services' rules and what they deliberately leave out.
"""

from .memory import (
    ACCOUNT_ID,
    MODEL_MLFLOW_VERSION,
    PYFUNC_ENVIRONMENT,
    REGION,
    AliasWrite,
    MemoryRegistry,
    MemorySource,
    MemoryStorage,
    TagWrite,
    memory_gateways,
)

__all__ = [
    "ACCOUNT_ID",
    "MODEL_MLFLOW_VERSION",
    "PYFUNC_ENVIRONMENT",
    "REGION",
    "AliasWrite",
    "MemoryRegistry",
    "MemorySource",
    "MemoryStorage",
    "TagWrite",
    "memory_gateways",
]
