"""The emulator's front door: validate, dispatch to the region's registry, log every call, inject faults.

One ``RegistryBackend`` serves every region of one account. All calls go through ``handle`` under one lock,
so a backend shared by the threads of a server (or of a test) sees each call whole. Every SageMaker request
that reaches it is logged, refused ones included, so a test can assert exactly what its code sent::

    assert backend.call_counts()["CreateModelPackage"] == 1
    (call,) = backend.calls_to("CreateModelPackage")
    assert call.params["ModelLifeCycle"] == {"Stage": "Production", "StageStatus": "Approved"}
"""

from __future__ import annotations

import abc
import copy
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import EmulatorError, InjectedFault, NotEmulatedError
from .registry import RegionRegistry
from .validation import validate_request

DEFAULT_ACCOUNT_ID = "123456789012"
_Operation = Callable[[RegionRegistry, dict[str, Any]], dict[str, Any]]
OPERATIONS: dict[str, _Operation] = {
    "CreateModelPackageGroup": RegionRegistry.create_model_package_group,
    "DescribeModelPackageGroup": RegionRegistry.describe_model_package_group,
    "ListModelPackageGroups": RegionRegistry.list_model_package_groups,
    "DeleteModelPackageGroup": RegionRegistry.delete_model_package_group,
    "CreateModelPackage": RegionRegistry.create_model_package,
    "DescribeModelPackage": RegionRegistry.describe_model_package,
    "BatchDescribeModelPackage": RegionRegistry.batch_describe_model_package,
    "ListModelPackages": RegionRegistry.list_model_packages,
    "UpdateModelPackage": RegionRegistry.update_model_package,
    "DeleteModelPackage": RegionRegistry.delete_model_package,
    "AddTags": RegionRegistry.add_tags,
    "ListTags": RegionRegistry.list_tags,
    "DeleteTags": RegionRegistry.delete_tags,
}
WRITE_OPERATIONS = frozenset(
    {
        "CreateModelPackageGroup",
        "DeleteModelPackageGroup",
        "CreateModelPackage",
        "UpdateModelPackage",
        "DeleteModelPackage",
        "AddTags",
        "DeleteTags",
    }
)
"""The operations that change the registry; every other one in ``OPERATIONS`` only reads."""


@dataclass(frozen=True)
class Call:
    """One SageMaker request as it arrived, and the error code it was answered with (None: success)."""

    operation: str
    params: Any
    region: str
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "params": self.params,
            "region": self.region,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Call:
        return cls(data["operation"], data["params"], data["region"], data["error"])


@dataclass
class _Fault:
    operation: str
    code: str
    message: str
    status: int
    remaining: int
    after_apply: bool


class CallLog(abc.ABC):
    """Questions about the call log, answered the same way in process and from a server process."""

    @abc.abstractmethod
    def calls(self) -> list[Call]:
        """Every SageMaker request received so far, oldest first."""

    def calls_to(self, operation: str) -> list[Call]:
        """The requests received for one operation, oldest first."""
        return [call for call in self.calls() if call.operation == operation]

    def call_counts(self) -> Counter[str]:
        """How many requests each operation received."""
        return Counter(call.operation for call in self.calls())


class RegistryBackend(CallLog):
    """An in-memory SageMaker Model Registry, stricter than moto's; see the package docs for the rules."""

    def __init__(self, account_id: str = DEFAULT_ACCOUNT_ID) -> None:
        self.account_id = account_id
        self._lock = threading.RLock()
        self._regions: dict[str, RegionRegistry] = {}
        self._calls: list[Call] = []
        self._faults: list[_Fault] = []

    def handle(self, operation: str, params: object, region: str) -> dict[str, Any]:
        """Answer one request like SageMaker: the output dict, or an ``EmulatorError`` raised."""
        with self._lock:
            error: str | None = None
            try:
                return self._answer(operation, params, region)
            except EmulatorError as exc:
                error = exc.code
                raise
            finally:
                self._calls.append(Call(operation, copy.deepcopy(params), region, error))

    def _answer(self, operation: str, params: object, region: str) -> dict[str, Any]:
        fault = self._take_fault(operation)
        if fault is not None and not fault.after_apply:
            raise InjectedFault(fault.code, fault.message, fault.status)
        checked = validate_request(operation, params)
        if operation not in OPERATIONS:
            raise NotEmulatedError(f"SageMaker.{operation} is not emulated; only the Model Registry is.")
        registry = self._regions.setdefault(region, RegionRegistry(self.account_id, region))
        answer = OPERATIONS[operation](registry, checked)
        if fault is not None:
            raise InjectedFault(fault.code, fault.message, fault.status)
        return answer

    # -- call log -----------------------------------------------------------------------------------

    def calls(self) -> list[Call]:
        """Every SageMaker request received so far, oldest first."""
        with self._lock:
            return list(self._calls)

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # -- faults -------------------------------------------------------------------------------------

    def inject_fault(
        self,
        operation: str,
        code: str = "ThrottlingException",
        *,
        message: str = "Rate exceeded",
        status: int = 400,
        times: int = 1,
        after_apply: bool = False,
    ) -> None:
        """Answer the next ``times`` calls of ``operation`` with an error.

        With ``after_apply`` the call takes effect before the error is returned, as when SageMaker acted
        but the answer was lost: botocore retries throttling and 5xx errors with the same ``ClientToken``,
        which is how a test proves that a create is not duplicated by a retry.
        """
        with self._lock:
            self._faults.append(_Fault(operation, code, message, status, times, after_apply))

    def _take_fault(self, operation: str) -> _Fault | None:
        for fault in self._faults:
            if fault.operation == operation and fault.remaining > 0:
                fault.remaining -= 1
                return fault
        return None

    def reset(self) -> None:
        """Forget every group, package, token, call and fault."""
        with self._lock:
            self._regions.clear()
            self._calls.clear()
            self._faults.clear()
