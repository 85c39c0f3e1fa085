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
  client at a known point, e.g. between ``CreateModelPackage`` and the MLflow tag that links it;
- ``throttle``: a token bucket (a rate a second, a burst) over some operations; a call finding it empty
  is answered ``ThrottlingException``, as a SageMaker enforcing its request limits answers.

Besides the rules, ``latency`` sets a fixed wait for every request (SageMaker's here; the server's S3 and
STS requests too), so a benchmark on loopback pays something like real AWS round trips. It is not a fault:
calls are not marked for it.

A backend can be built with a default latency and throttle (``python -m ...emulator --latency-ms 50
--throttle-rate 5``): ``clear`` and ``reset`` go back to those defaults, with a full bucket, so a test
suite that resets between tests keeps the conditions the process was started with.

``FaultRules.decide`` runs under the backend's lock, once per call, so a seed gives the same faults for
the same sequence of calls; the waits happen outside the lock, so other clients are served meanwhile, and
``clear`` cuts them short. Each call's injected faults are named in the call log (``Call.faults``).
"""

from __future__ import annotations

import abc
import json
import math
import random
import threading
import time
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
THROTTLED = "throttled"  # refused by a throttle's empty token bucket

EVERY_OPERATION = "*"
THROTTLING_CODE = "ThrottlingException"
THROTTLING_MESSAGE = "Rate exceeded"
"""What SageMaker answers a client over its request rate (HTTP 400)."""
DEFAULT_RATE_CODES = (THROTTLING_CODE, "InternalFailure")
LOST_ANSWER_CODE = "InternalFailure"
ACCESS_DENIED = "AccessDeniedException"
_STATUS_OF_CODE = {"InternalFailure": 500, "ServiceUnavailable": 503}
"""The HTTP status of the codes SageMaker sends as 5xx; every other code is a 400, as throttling is."""

Operations = str | Iterable[str]
"""One operation name, several, or ``"*"`` for every operation."""

# The kinds of rule ``FaultRules.add`` builds from JSON options: the routes ``POST /_emulator/faults/<kind>``.
RATE = "rate"
DENIED_GROUP = "denied_group"
DELAY = "delay"
THROTTLE = "throttle"
LATENCY = "latency"


def status_of(code: str) -> int:
    """The HTTP status SageMaker answers ``code`` with: what decides whether botocore retries it."""
    return _STATUS_OF_CODE.get(code, 400)


@dataclass(frozen=True)
class Throttle:
    """A token bucket over ``operations``: it holds up to ``burst`` tokens (None: a second's worth of
    ``rate``, at least 1), starts full and gains ``rate`` tokens a second; each call takes one, and a call
    finding less than one is throttled. One bucket is shared by all the operations it names, as an
    account-wide limit is; per-operation limits are one ``Throttle`` each."""

    rate: float
    burst: int | None = None
    operations: str | tuple[str, ...] = EVERY_OPERATION

    def options(self) -> dict[str, Any]:
        """The JSON options of the rule (``FaultControls.add_fault``), the default burst resolved."""
        burst = self.burst if self.burst is not None else max(1, math.ceil(self.rate))
        return {"rate": self.rate, "burst": burst, "operations": _json_operations(self.operations)}


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
            RATE,
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
        self.add_fault(DENIED_GROUP, {"group_name": group_name, "code": code})

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
            DELAY,
            {
                "operations": _json_operations(operations),
                "seconds": seconds,
                "times": times,
                "after_apply": after_apply,
            },
        )

    def throttle(
        self, rate: float, *, burst: int | None = None, operations: Operations = EVERY_OPERATION
    ) -> None:
        """Throttle ``operations`` with a token bucket of ``rate`` tokens a second and ``burst`` at most.

        The bucket starts full (``burst`` calls pass at once; None: ``ceil(rate)``, at least 1), then a
        call passes each ``1 / rate`` seconds; the others are answered ``ThrottlingException`` (HTTP
        400, which botocore retries) and marked ``throttled`` in the call log. Each call adds a bucket of
        its own; a call passes only if every bucket naming its operation has a token, and then takes one
        from each.
        """
        chosen = operations if isinstance(operations, str) else tuple(operations)
        self.add_fault(THROTTLE, Throttle(rate, burst, chosen).options())

    def latency(self, ms: float) -> None:
        """Make every request wait ``ms`` milliseconds before it is handled, replacing the latency set
        before (0: none): SageMaker's requests, and on the server S3's and STS's too.

        The wait happens outside the backend's lock, so concurrent clients wait concurrently, as they
        would on real round trips. It is no fault: the call log does not mark it.
        """
        self.add_fault(LATENCY, {"ms": ms})


@dataclass(frozen=True)
class Injection:
    """What the rules decided for one call: an error to answer (before or after the change takes
    effect), how long to wait before handling it and before answering, and the kinds for the log."""

    error: InjectedFault | None = None
    after_apply: bool = False
    wait_before: float = 0.0
    wait_after: float = 0.0
    kinds: tuple[str, ...] = ()
    wake: threading.Event = field(default_factory=threading.Event)
    """Set by ``clear`` to cut this call's waits short. Taken when the call is decided, so a clear
    between the decision and the wait still reaches it (``clear`` replaces the rules' own event)."""

    def hold(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the rules are cleared meanwhile; call it outside the lock."""
        if seconds > 0:
            self.wake.wait(seconds)


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


@dataclass
class _Bucket:
    operations: frozenset[str] | None
    rate: float
    burst: int
    tokens: float
    filled_at: float

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last refill, up to ``burst``."""
        self.tokens = min(self.burst, self.tokens + (now - self.filled_at) * self.rate)
        self.filled_at = now


class FaultRules:
    """The fault rules of one backend; not thread-safe: the backend calls it under its lock.

    ``latency_ms`` and ``throttle`` are the defaults ``clear`` comes back to; ``clock`` is the monotonic
    clock (seconds) the token buckets refill by, which a test may replace to throttle deterministically.

    Raises:
        ValueError: a default out of range (see ``add``).
    """

    def __init__(
        self,
        operations: Collection[str],
        *,
        latency_ms: float = 0.0,
        throttle: Throttle | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._operations = frozenset(operations)
        self._clock = clock
        self._errors: list[_CountedError] = []
        self._rates: list[_Rate] = []
        self._denials: dict[str, _Denial] = {}
        self._delays: list[_Delay] = []
        self._buckets: list[_Bucket] = []
        self._latency = 0.0  # seconds
        self._wake = threading.Event()
        self._defaults: list[tuple[str, Mapping[str, Any]]] = [(LATENCY, {"ms": latency_ms})]
        if throttle is not None:
            self._defaults.append((THROTTLE, throttle.options()))
        self._add_defaults()

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

    def _add_throttle(self, operations: str | list[str], rate: float, burst: int) -> None:
        if not 0 <= rate < math.inf or isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"a throttle needs a rate >= 0 and a whole burst >= 1, not {rate} and {burst}")
        self._buckets.append(_Bucket(self._chosen(operations), rate, burst, burst, self._clock()))

    def _set_latency(self, ms: float) -> None:
        if not 0 <= ms < math.inf:
            raise ValueError(f"a latency is a number of milliseconds >= 0, not {ms}")
        self._latency = ms / 1000

    KINDS: Mapping[str, Callable[..., None]] = {
        RATE: _add_rate,
        DENIED_GROUP: _add_denial,
        DELAY: _add_delay,
        THROTTLE: _add_throttle,
        LATENCY: _set_latency,
    }
    """What ``add`` builds for each kind: the routes of ``POST /_emulator/faults/<kind>``."""

    def clear(self) -> None:
        """Forget every rule, come back to the default latency and throttle (its bucket full), and wake
        the calls waiting on a delay or the latency."""
        self._errors.clear()
        self._rates.clear()
        self._denials.clear()
        self._delays.clear()
        self._buckets.clear()
        self._add_defaults()
        self._wake.set()
        self._wake = threading.Event()

    def _add_defaults(self) -> None:
        for kind, options in self._defaults:
            self.add(kind, options)

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
        """The faults of one call, in precedence: a denied group, then the throttles, then
        ``inject_fault``'s counted errors, then the rates in the order added; and independently the first
        delay that applies, plus the latency before the call is handled.

        ``caller`` is the ARN of the identity that signed the call, for the denial's message.
        """
        error, after_apply, kinds = self._error(operation, params, region, account_id, caller)
        delay = next((rule for rule in self._delays if rule.takes(operation)), None)
        held_before = held_after = 0.0
        if delay is not None:
            kinds = (DELAYED, *kinds)
            held_after, held_before = (delay.seconds, 0.0) if delay.after_apply else (0.0, delay.seconds)
        return Injection(
            error=error,
            after_apply=after_apply,
            wait_before=self._latency + held_before,
            wait_after=held_after,
            kinds=kinds,
            wake=self._wake,
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
        if self._throttled(operation):
            fault = InjectedFault(THROTTLING_CODE, THROTTLING_MESSAGE, status_of(THROTTLING_CODE))
            return fault, False, (THROTTLED,)
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

    def _throttled(self, operation: str) -> bool:
        """Whether a bucket naming ``operation`` is empty; if none is, the call takes a token of each."""
        buckets = [bucket for bucket in self._buckets if _matches(bucket.operations, operation)]
        now = self._clock()
        for bucket in buckets:
            bucket.refill(now)
        if any(bucket.tokens < 1 for bucket in buckets):
            return True
        for bucket in buckets:
            bucket.tokens -= 1
        return False

    def latency_wait(self) -> Injection:
        """A call's wait of the latency alone (cut short by ``clear`` as any wait); decided under the
        lock, waited outside it."""
        return Injection(wait_before=self._latency, wake=self._wake)


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
