"""Faults a test injects into the emulator: a SageMaker having a bad day, or an IAM policy saying no.

mlsync's promises (one package per version, every version linked, a no-op after repair) are claims about
what happens *whatever SageMaker does*; these knobs make SageMaker do it, reproducibly. Besides
``inject_fault`` (the next N calls of one operation fail), each knob adds a rule that holds until
``clear_faults`` or ``reset``:

- ``fault_rate``: a seeded share of the calls of some operations fail (throttling, 5xx), as a busy
  SageMaker answers; with ``after_apply`` the change is made first and only the answer is lost
  (``lose_answers``): what botocore's retry with the same ``ClientToken`` and mlsync's adoption of an
  unlinked package by its metadata identity must survive;
- ``deny_group``: every call naming a group, by name or ARN, or one of its packages answers
  ``AccessDeniedException``, which is what an IAM policy denying that one group's ARN looks like;
- ``delay``: a call waits before it is answered (before or after it takes effect), so a test can kill a
  client at a known point, e.g. between ``CreateModelPackage`` and the MLflow tag that links it.

``FaultRules.decide`` runs under the backend's lock, once per call, so a seed gives the same faults for
the same sequence of calls; the waits happen outside the lock, so other clients are served meanwhile, and
``clear`` cuts them short. Each call's injected faults are named in the call log (``Call.faults``).
"""

from __future__ import annotations

import abc
import json
import random
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InjectedFault
from .registry import ARN

# What `Call.faults` names: the kinds of fault injected into one call.
ERROR = "error"  # answered with an error; nothing changed
LOST = "lost"  # the change was made, then answered with an error: the answer was lost
DENIED = "denied"  # refused as an IAM policy denying the group would
DELAYED = "delayed"  # answered late

EVERY_OPERATION = "*"
DEFAULT_RATE_CODES = ("ThrottlingException", "InternalFailure")
LOST_ANSWER_CODE = "InternalFailure"
ACCESS_DENIED = "AccessDeniedException"
_STATUS_OF_CODE = {"InternalFailure": 500, "ServiceUnavailable": 503}
"""The HTTP status of the codes SageMaker sends as 5xx; every other code is a 400, as throttling is."""

Operations = str | Iterable[str]
"""One operation name, several, or ``"*"`` for every operation."""


def status_of(code: str) -> int:
    """The HTTP status SageMaker answers ``code`` with: what decides whether botocore retries it."""
    return _STATUS_OF_CODE.get(code, 400)


class FaultControls(abc.ABC):
    """The fault knobs, the same in process (``RegistryBackend``) and across processes
    (``EmulatorProcess``): each builds one rule and hands it to ``add_fault`` as JSON-typed options."""

    @abc.abstractmethod
    def add_fault(self, kind: str, options: Mapping[str, Any]) -> None:
        """Add a rule of ``kind`` (a key of ``FaultRules.KINDS``) with every option given."""

    @abc.abstractmethod
    def clear_faults(self) -> None:
        """Forget every fault rule (``inject_fault``'s too) and answer the calls waiting on a delay now."""

    def fault_rate(
        self,
        operations: Operations,
        rate: float,
        *,
        codes: Iterable[str] = DEFAULT_RATE_CODES,
        seed: int = 0,
        after_apply: bool = False,
        retries_pass: bool = False,
    ) -> None:
        """Fail a share ``rate`` (0 to 1) of the calls of ``operations`` with one of ``codes``.

        Draws come from ``random.Random(seed)``, one a matching call, so the same calls get the same
        faults. ``InternalFailure`` and ``ServiceUnavailable`` are answered with HTTP 500 and 503, other
        codes with 400 (botocore retries ``ThrottlingException`` and 5xx). With ``after_apply`` the call
        takes effect first (see ``lose_answers``). With ``retries_pass`` a request identical to one this
        rule just failed passes once, as a transient fault would: botocore's retry of it then succeeds.
        """
        self.add_fault(
            "rate",
            {
                "operations": _json_operations(operations),
                "rate": rate,
                "codes": list(codes),
                "seed": seed,
                "after_apply": after_apply,
                "retries_pass": retries_pass,
            },
        )

    def lose_answers(
        self, operations: Operations, rate: float = 1.0, *, seed: int = 0, retries_pass: bool = False
    ) -> None:
        """Apply a share ``rate`` of the calls of ``operations``, then answer ``InternalFailure`` (500).

        SageMaker made the change but the client never heard: botocore retries the same request (the
        same ``ClientToken``), and a client out of retries must find the change on its next run.
        """
        self.fault_rate(
            operations,
            rate,
            codes=(LOST_ANSWER_CODE,),
            seed=seed,
            after_apply=True,
            retries_pass=retries_pass,
        )

    def deny_group(self, group_name: str, *, code: str = ACCESS_DENIED) -> None:
        """Refuse every call naming the group ``group_name`` (exactly, as IAM matches ARNs) or a package
        of it, with ``code`` and IAM's message naming the caller, the action and the resource.

        A group given by name or ARN, a package by ARN or ``<group>/<version>``, tags by the group's ARN,
        a batch describe listing one of its packages: all refused, before anything is validated or
        changed. Calls naming no group (``ListModelPackageGroups``) pass, as with a policy on the ARN.
        """
        self.add_fault("denied_group", {"group_name": group_name, "code": code})

    def delay(
        self, operations: Operations, seconds: float, *, times: int = 1, after_apply: bool = False
    ) -> None:
        """Answer the next ``times`` calls of ``operations`` ``seconds`` late.

        Without ``after_apply`` the call waits before it is handled (it takes effect late, even if its
        client is gone by then); with it the call takes effect and is logged at once, and only its answer
        waits, so a test that sees the call in the log knows the change is made and the client is
        waiting. ``clear_faults`` and ``reset`` end every wait.
        """
        self.add_fault(
            "delay",
            {
                "operations": _json_operations(operations),
                "seconds": seconds,
                "times": times,
                "after_apply": after_apply,
            },
        )


@dataclass(frozen=True)
class Injection:
    """What the rules decided for one call: an error to answer (before or after the change takes
    effect), how long to wait before handling it and before answering, and the kinds for the log."""

    error: InjectedFault | None = None
    after_apply: bool = False
    wait_before: float = 0.0
    wait_after: float = 0.0
    kinds: tuple[str, ...] = ()


NO_INJECTION = Injection()


@dataclass
class _Counted:
    operations: frozenset[str] | None  # None: every operation
    remaining: int
    after_apply: bool

    def takes(self, operation: str) -> bool:
        """Whether this rule applies to the call, using one of its ``remaining`` calls if so."""
        if self.remaining <= 0 or not _matches(self.operations, operation):
            return False
        self.remaining -= 1
        return True


@dataclass
class _CountedError(_Counted):
    code: str
    message: str
    status: int


@dataclass
class _Delay(_Counted):
    seconds: float


@dataclass
class _Rate:
    operations: frozenset[str] | None
    rate: float
    codes: tuple[str, ...]
    after_apply: bool
    retries_pass: bool
    draws: random.Random
    failed: set[str] = field(default_factory=set)  # requests (operation and params) this rule failed

    def code_for(self, operation: str, params: object) -> str | None:
        """The code to fail this call with, or None; draws from the seeded generator once per call."""
        if not _matches(self.operations, operation):
            return None
        request = json.dumps([operation, params], sort_keys=True, default=str)
        if self.retries_pass and request in self.failed:
            self.failed.discard(request)
            return None
        if self.draws.random() >= self.rate:
            return None
        self.failed.add(request)
        return self.draws.choice(self.codes)


@dataclass(frozen=True)
class _Denial:
    code: str


class FaultRules:
    """The fault rules of one backend; not thread-safe: the backend calls it under its lock."""

    def __init__(self, operations: Collection[str]) -> None:
        self._operations = frozenset(operations)
        self._errors: list[_CountedError] = []
        self._rates: list[_Rate] = []
        self._denials: dict[str, _Denial] = {}
        self._delays: list[_Delay] = []
        self._wake = threading.Event()

    # -- adding and clearing ------------------------------------------------------------------------

    def add(self, kind: str, options: Mapping[str, Any]) -> None:
        """Add a rule from JSON-typed options (``FaultControls`` builds them).

        Raises:
            ValueError: an unknown kind, a missing or unknown option, or a value out of range.
        """
        builder = self.KINDS.get(kind)
        if builder is None:
            raise ValueError(f"unknown fault kind {kind!r}: one of {', '.join(sorted(self.KINDS))}")
        try:
            builder(self, **options)
        except TypeError as exc:  # a missing or unexpected option
            raise ValueError(f"fault {kind!r}: {exc}") from None

    def count(
        self, operation: str, code: str, message: str, status: int, times: int, after_apply: bool
    ) -> None:
        """``inject_fault``: the next ``times`` calls of ``operation`` fail (its name is not checked)."""
        self._errors.append(_CountedError(frozenset({operation}), times, after_apply, code, message, status))

    def _add_rate(
        self,
        operations: str | list[str],
        rate: float,
        codes: list[str],
        seed: int,
        after_apply: bool,
        retries_pass: bool,
    ) -> None:
        if not 0 <= rate <= 1:
            raise ValueError(f"a fault rate is between 0 and 1, not {rate}")
        if not codes or not all(isinstance(code, str) and code for code in codes):
            raise ValueError(f"a fault rate needs at least one error code, not {codes!r}")
        chosen = self._chosen(operations)
        draws = random.Random(seed)
        self._rates.append(_Rate(chosen, rate, tuple(codes), after_apply, retries_pass, draws))

    def _add_denial(self, group_name: str, code: str) -> None:
        if not group_name:
            raise ValueError("deny_group needs a group name")
        self._denials[group_name] = _Denial(code)

    def _add_delay(self, operations: str | list[str], seconds: float, times: int, after_apply: bool) -> None:
        if seconds < 0 or times < 1:
            raise ValueError(f"a delay needs seconds >= 0 and times >= 1, not {seconds} and {times}")
        self._delays.append(_Delay(self._chosen(operations), times, after_apply, seconds))

    KINDS: Mapping[str, Callable[..., None]] = {
        "rate": _add_rate,
        "denied_group": _add_denial,
        "delay": _add_delay,
    }
    """What ``add`` builds for each kind: the routes of ``POST /_emulator/faults/<kind>``."""

    def clear(self) -> None:
        """Forget every rule, and wake the calls waiting on a delay."""
        self._errors.clear()
        self._rates.clear()
        self._denials.clear()
        self._delays.clear()
        self._wake.set()
        self._wake = threading.Event()

    def _chosen(self, operations: str | list[str]) -> frozenset[str] | None:
        """The operations a rule applies to (None: every one); an unknown name is refused, not ignored."""
        if operations == EVERY_OPERATION:
            return None
        names = frozenset([operations] if isinstance(operations, str) else operations)
        unknown = sorted(names - self._operations)
        if not names or unknown:
            raise ValueError(
                f"unknown operations {unknown}: name emulated operations, or {EVERY_OPERATION!r}"
            )
        return names

    # -- deciding -----------------------------------------------------------------------------------

    def decide(
        self, operation: str, params: object, *, region: str, account_id: str, caller: str
    ) -> Injection:
        """The faults of one call, in precedence: a denied group, then ``inject_fault``'s counted errors,
        then the rates in the order added; and independently the first delay that applies.

        ``caller`` is the ARN of the identity that signed the call, for the denial's message.
        """
        error, after_apply, kinds = self._error(operation, params, region, account_id, caller)
        delay = next((rule for rule in self._delays if rule.takes(operation)), None)
        if delay is not None:
            kinds = (DELAYED, *kinds)
        if error is None and delay is None:
            return NO_INJECTION
        return Injection(
            error=error,
            after_apply=after_apply,
            wait_before=delay.seconds if delay is not None and not delay.after_apply else 0.0,
            wait_after=delay.seconds if delay is not None and delay.after_apply else 0.0,
            kinds=kinds,
        )

    def _error(
        self, operation: str, params: object, region: str, account_id: str, caller: str
    ) -> tuple[InjectedFault | None, bool, tuple[str, ...]]:
        for group, resource in named_groups(params, region, account_id):
            denial = self._denials.get(group)
            if denial is not None:
                message = (
                    f"User: {caller} is not authorized to perform: sagemaker:{operation} on resource: "
                    f"{resource} with an explicit deny in an identity-based policy"
                )
                return InjectedFault(denial.code, message, status_of(denial.code)), False, (DENIED,)
        counted = next((rule for rule in self._errors if rule.takes(operation)), None)
        if counted is not None:
            fault = InjectedFault(counted.code, counted.message, counted.status)
            return fault, counted.after_apply, (LOST if counted.after_apply else ERROR,)
        for rate in self._rates:
            code = rate.code_for(operation, params)
            if code is not None:
                fault = InjectedFault(code, f"injected {code} (fault rate {rate.rate})", status_of(code))
                return fault, rate.after_apply, (LOST if rate.after_apply else ERROR,)
        return None, False, ()

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the rules are cleared meanwhile; call it outside the lock."""
        if seconds > 0:
            self._wake.wait(seconds)


def named_groups(params: object, region: str, account_id: str) -> list[tuple[str, str]]:
    """(group name, resource ARN) of each group or package a request names, as IAM would see them.

    Groups come by name or ARN (``ModelPackageGroupName``), packages by ARN or ``<group>/<version>``
    (``ModelPackageName``, ``ModelPackageArn``, ``ModelPackageArnList``), tags by ARN (``ResourceArn``).
    Read from the raw request, so a call is denied before it is validated, as IAM acts first.
    """
    if not isinstance(params, Mapping):
        return []
    named: list[tuple[str, object]] = [
        (key, params.get(key))
        for key in ("ModelPackageGroupName", "ModelPackageName", "ModelPackageArn", "ResourceArn")
    ]
    listed = params.get("ModelPackageArnList")
    if isinstance(listed, list):
        named += [("ModelPackageArn", arn) for arn in listed]
    found = []
    for key, value in named:
        if not isinstance(value, str):
            continue
        match = ARN.fullmatch(value)
        if match is not None:
            kind, resource, arn = match["kind"], match["id"], value
        elif key == "ResourceArn":
            continue
        else:
            kind = "model-package-group" if key == "ModelPackageGroupName" else "model-package"
            resource, arn = value, f"arn:aws:sagemaker:{region}:{account_id}:{kind}/{value}"
        group = resource if kind == "model-package-group" else resource.rpartition("/")[0]
        if group:
            found.append((group, arn))
    return found


def _matches(operations: frozenset[str] | None, operation: str) -> bool:
    return operations is None or operation in operations


def _json_operations(operations: Operations) -> str | list[str]:
    return operations if isinstance(operations, str) else sorted(operations)
