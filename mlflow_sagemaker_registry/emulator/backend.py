"""The emulator's front door: validate, dispatch to the region's registry, log every call, inject faults,
emit SageMaker's EventBridge events.

One ``RegistryBackend`` serves every region of every account: a request is answered in the account of the
access key that signed it, as moto's STS and IAM know it (``moto_account``: an assumed role's keys belong to
the role's account; any other key to ``account_id``). All calls go through ``handle`` under one lock,
so a backend shared by the threads of a server (or of a test) sees each call whole. Every SageMaker request
that reaches it is logged, refused ones included, so a test can assert exactly what its code sent::

    assert backend.call_counts()["CreateModelPackage"] == 1
    (call,) = backend.calls_to("CreateModelPackage")
    assert call.params["ModelLifeCycle"] == {"Stage": "Production", "StageStatus": "Approved"}

``handle`` also receives the caller's access key id (the wire layer reads it from the SigV4 credential
scope) and records it as the ``CreatedBy``/``LastModifiedBy`` of what the call creates or updates, so a test
acts as a reviewer by signing with another access key. Real SageMaker reports the caller's IAM or STS
identity, or the Studio user profile; the emulator checks no credentials, so ``user_context`` is a
stand-in: ``IamIdentity{Arn: arn:aws:iam::<account>:user/<access key id>, PrincipalId: <access key id>}``.

Each create and update of a versioned package emits a ``SageMaker Model Package State Change`` event
(``events``), as SageMaker sends to EventBridge; refused requests emit nothing. The backend keeps them like
its call log (``events()``) and hands each to the ``subscribe``d callbacks, for in-process listeners such
as a Lambda handler under test::

    backend.subscribe(lambda event: handler(event, None))

Tests make SageMaker misbehave through the fault knobs of ``faults``: ``inject_fault`` (the next calls of
one operation), ``fault_rate`` and ``lose_answers`` (a seeded share of calls), ``deny_group`` (an IAM
policy denying one group), ``delay`` (an answer held back) and ``throttle`` (a token bucket). Each faulted
call is marked in the log. ``latency`` makes every request pay a round trip; a backend built with
``latency_ms=`` or ``throttle=`` comes back to them on ``clear_faults`` and ``reset``.
"""

from __future__ import annotations

import abc
import copy
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import EmulatorError, NotEmulatedError
from .events import Event, package_state_change
from .faults import THROTTLING_CODE, THROTTLING_MESSAGE, FaultControls, FaultRules, Injection, Throttle
from .registry import RegionRegistry
from .validation import validate_request

DEFAULT_ACCOUNT_ID = "123456789012"


def moto_account(access_key_id: str | None, default: str) -> str:
    """The account an access key belongs to in moto (the role's account for keys an ``AssumeRole`` gave
    out), ``default`` for keys moto does not know and for unsigned requests."""
    if access_key_id is None:
        return default
    # The emulator's own dependency, imported when used; moto answers its default for a key it does not know.
    from moto.core.models import DEFAULT_ACCOUNT_ID as MOTO_DEFAULT_ACCOUNT
    from moto.iam.models import get_account_id_from

    found: str = get_account_id_from(access_key_id)
    return default if found == MOTO_DEFAULT_ACCOUNT else found


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
    "PutModelPackageGroupPolicy": RegionRegistry.put_model_package_group_policy,
    "GetModelPackageGroupPolicy": RegionRegistry.get_model_package_group_policy,
    "DeleteModelPackageGroupPolicy": RegionRegistry.delete_model_package_group_policy,
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
        "PutModelPackageGroupPolicy",
        "DeleteModelPackageGroupPolicy",
    }
)
"""The operations that change the registry; every other one in ``OPERATIONS`` only reads."""
Subscriber = Callable[[Event], object]
"""An in-process listener: called with (a copy of) each event the backend emits."""


def user_context(account_id: str, access_key_id: str | None) -> dict[str, Any]:
    """The emulator's stand-in for the ``UserContext`` of a caller known by its access key id.

    Real SageMaker reports the IAM or STS identity that signed the request (or the Studio user profile
    and domain); the emulator checks no credentials, so the access key id is the identity: an IAM user of
    that name in the backend's account. An unsigned request has no caller: ``{}``.
    """
    if access_key_id is None:
        return {}
    return {
        "IamIdentity": {
            "Arn": f"arn:aws:iam::{account_id}:user/{access_key_id}",
            "PrincipalId": access_key_id,
        }
    }


@dataclass(frozen=True)
class Call:
    """One SageMaker request as it arrived, and the error code it was answered with (None: success).

    ``faults`` names what a test injected into this call (``faults.ERROR``, ``LOST``, ``DENIED``,
    ``DELAYED``), so a test can tell an injected failure from one its code provoked.
    """

    operation: str
    params: Any
    region: str
    error: str | None
    faults: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "params": self.params,
            "region": self.region,
            "error": self.error,
            "faults": list(self.faults),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Call:
        faults = tuple(data.get("faults", ()))
        return cls(data["operation"], data["params"], data["region"], data["error"], faults)


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


class RegistryBackend(CallLog, FaultControls):
    """An in-memory SageMaker Model Registry, stricter than moto's; see the package docs for the rules,
    and ``faults`` for the fault knobs (``inject_fault``, ``fault_rate``, ``lose_answers``,
    ``deny_group``, ``delay``, ``throttle``, ``latency``).

    ``latency_ms`` and ``throttle`` are the conditions the backend starts with and ``clear_faults`` and
    ``reset`` come back to (the server's ``--latency-ms`` and ``--throttle-*`` flags); ``clock`` is the
    monotonic clock in seconds the throttles' token buckets refill by, for a test to replace.

    Raises:
        ValueError: a latency or throttle out of range.
    """

    def __init__(
        self,
        account_id: str = DEFAULT_ACCOUNT_ID,
        *,
        latency_ms: float = 0.0,
        throttle: Throttle | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account_id = account_id
        self._lock = threading.RLock()
        self._regions: dict[tuple[str, str], RegionRegistry] = {}  # by (account, region)
        self._calls: list[Call] = []
        self._faults = FaultRules(OPERATIONS, latency_ms=latency_ms, throttle=throttle, clock=clock)
        self._events: list[Event] = []
        self._undelivered: deque[Event] = deque()
        self._subscribers: list[Subscriber] = []
        self._delivery = threading.Lock()

    def handle(
        self, operation: str, params: object, region: str, caller: str | None = None
    ) -> dict[str, Any]:
        """Answer one request like SageMaker: the output dict, or an ``EmulatorError`` raised.

        ``caller`` is the access key id that signed the request (``None``: unsigned). The events the call
        emits go to the subscribers before it returns (or raises), after the lock is released so that a
        subscriber may call the backend again; see ``subscribe``. The latency and a delay injected for
        the call are waited out with the lock released too, so other requests are answered meanwhile.
        """
        account = moto_account(caller, self.account_id)
        with self._lock:
            injection = self._faults.decide(
                operation, params, region=region, account_id=account, caller=self._caller_arn(account, caller)
            )
        injection.hold(injection.wait_before)
        try:
            return self._logged(operation, params, account, region, caller, injection)
        finally:
            try:
                self._deliver()
            finally:
                injection.hold(injection.wait_after)

    def _logged(
        self,
        operation: str,
        params: object,
        account: str,
        region: str,
        caller: str | None,
        injection: Injection,
    ) -> dict[str, Any]:
        with self._lock:
            error: str | None = None
            try:
                return self._answer(operation, params, account, region, caller, injection)
            except EmulatorError as exc:
                error = exc.code
                raise
            finally:
                self._calls.append(Call(operation, copy.deepcopy(params), region, error, injection.kinds))

    def _answer(
        self,
        operation: str,
        params: object,
        account: str,
        region: str,
        caller: str | None,
        injection: Injection,
    ) -> dict[str, Any]:
        if injection.error is not None and not injection.after_apply:
            raise injection.error
        checked = validate_request(operation, params)
        if operation not in OPERATIONS:
            raise NotEmulatedError(f"SageMaker.{operation} is not emulated; only the Model Registry is.")
        registry = self._regions.setdefault((account, region), RegionRegistry(account, region))
        registry.caller = user_context(account, caller)
        try:
            answer = OPERATIONS[operation](registry, checked)
        finally:
            changes = registry.take_changes()  # none if the operation refused the request
        for change in changes:
            event = package_state_change(
                change.fields, change.updated_fields, account_id=account, region=region
            )
            self._events.append(event)
            self._undelivered.append(event)
        if injection.error is not None:
            raise injection.error
        return answer

    def wait_latency(self) -> None:
        """Wait the latency out, outside the lock, for a request the backend does not answer itself (the
        server's S3 and STS requests, which moto answers); ``handle`` waits it for SageMaker's."""
        with self._lock:
            injection = self._faults.latency_wait()
        injection.hold(injection.wait_before)

    def _caller_arn(self, account: str, caller: str | None) -> str:
        """The ARN an IAM message names the caller by (``anonymous`` for an unsigned request)."""
        identity: dict[str, str] = user_context(account, caller).get("IamIdentity", {})
        return identity.get("Arn", "anonymous")

    # -- call log -----------------------------------------------------------------------------------

    def calls(self) -> list[Call]:
        """Every SageMaker request received so far, oldest first."""
        with self._lock:
            return list(self._calls)

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # -- events -------------------------------------------------------------------------------------

    def events(self) -> list[Event]:
        """Every event emitted so far, oldest first (copies: JSON types only)."""
        with self._lock:
            return copy.deepcopy(self._events)

    def clear_events(self) -> None:
        with self._lock:
            self._events.clear()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` with a copy of each event emitted from now on; returns the unsubscribe.

        Events are delivered one at a time, in the order they were emitted, by the thread of the request
        that emitted them before that request returns, unless another thread is delivering then: that
        one delivers them. Delivery runs outside the backend's lock, so a callback may call SageMaker (the
        backend) again, from its thread or others; the events such a call emits are delivered after the
        callback returns, never re-entrantly, much as EventBridge delivers later. A callback's exception
        propagates to the SageMaker request being answered (its change stays applied); the events left
        then go out with the next request. ``reset`` keeps the subscribers: they are the test's wiring,
        not SageMaker state.
        """
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _deliver(self) -> None:
        # One thread delivers at a time, so every subscriber sees the emitted order. A thread that finds
        # another one (or itself, from a subscriber) delivering leaves its events to that one's loop,
        # which looks again after letting go: waiting here could deadlock on a subscriber that waits for
        # this thread.
        while self._delivery.acquire(blocking=False):
            try:
                while (event := self._next_undelivered()) is not None:
                    for callback in list(self._subscribers):
                        callback(copy.deepcopy(event))
            finally:
                self._delivery.release()
            with self._lock:
                if not self._undelivered:
                    return

    def _next_undelivered(self) -> Event | None:
        with self._lock:
            return self._undelivered.popleft() if self._undelivered else None

    # -- faults -------------------------------------------------------------------------------------

    def inject_fault(
        self,
        operation: str,
        code: str = THROTTLING_CODE,
        *,
        message: str = THROTTLING_MESSAGE,
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
            self._faults.count(operation, code, message, status, times, after_apply)

    def add_fault(self, kind: str, options: Mapping[str, Any]) -> None:
        """Add a fault rule (``fault_rate``, ``lose_answers``, ``deny_group``, ``delay``, ``throttle`` and
        ``latency`` build them).

        Raises:
            ValueError: an unknown kind or operation, a missing or unknown option, a value out of range.
        """
        with self._lock:
            self._faults.add(kind, options)

    def clear_faults(self) -> None:
        """Forget every fault rule, come back to the latency and throttle the backend was built with (its
        bucket full), and answer the calls waiting on a delay now."""
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Forget every group, package, token, call, fault and event (the subscribers stay), and come
        back to the latency and throttle the backend was built with, as ``clear_faults``."""
        with self._lock:
            self._regions.clear()
            self._calls.clear()
            self._faults.clear()  # also ends the delays being waited out
            self._events.clear()
            self._undelivered.clear()
