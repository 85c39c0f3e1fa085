"""The one error hierarchy of mlsync.

    MlsyncError                  base: everything mlsync raises on purpose
    ├── ConfigError              settings missing or malformed (exit code 2)
    │   └── MissingExtraError    a path needs an optional dependency that is not installed (names the extra)
    ├── MappingError             an MLflow version cannot be mirrored as it is (names model, version, fix)
    ├── UnsafePlanError          a plan changes too many approvals at once; rerun with --force (exit code 3)
    ├── RollbackError            `mlsync rollback` has nothing to roll back from, or no target (exit code 2)
    ├── SourceError              reading or tagging the MLflow registry failed
    └── GatewayError             a SageMaker or S3 call failed after botocore's retries
        └── NotFoundError        the group or package does not exist

Every message says what to do next: a user should never need the traceback.
"""

from __future__ import annotations


class MlsyncError(Exception):
    """Base of every error mlsync raises on purpose."""


class ConfigError(MlsyncError):
    """Settings are missing or malformed; the message names the setting and how to set it."""


class MissingExtraError(ConfigError):
    """A path needs an optional dependency that is not installed; the message names the extra to install.

    A setup problem like a missing setting (the same exit code); `extras.needs` raises it.
    """

    def __init__(self, message: str, extra: str) -> None:
        self.extra = extra
        super().__init__(message)


class MappingError(MlsyncError):
    """One MLflow version cannot be mirrored as it is.

    Raised by the pure mapping; the planner collects these per version so one bad version never stops
    the others from being mirrored.
    """

    def __init__(self, model_name: str, version: str, problem: str, fix: str) -> None:
        self.model_name = model_name
        self.version = version
        self.problem = problem
        self.fix = fix
        super().__init__(f"model {model_name!r} version {version}: {problem}. Fix: {fix}")


class UnsafePlanError(MlsyncError):
    """A plan would change the approval of many existing packages at once."""


class RollbackError(MlsyncError):
    """A rollback cannot be planned: nothing is deployed, or its target is unknown; the message says which."""


class SourceError(MlsyncError):
    """Reading from or tagging the MLflow registry failed."""


class GatewayError(MlsyncError):
    """A SageMaker or S3 call failed after botocore's own retries."""

    def __init__(self, message: str, code: str = "") -> None:
        self.code = code
        super().__init__(message)


class NotFoundError(GatewayError):
    """The model package group or package does not exist in SageMaker."""
