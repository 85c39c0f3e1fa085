"""The emulator's conditions knobs: a latency every request pays, and a token bucket that throttles.

In process the throttle runs on a fake clock, so which call is throttled is exact; the latency is checked
by lower bounds (a wait is never shorter than asked) and by concurrent calls finishing together. One
`EmulatorProcess` proves the flags, the control API and the latency of what the server hands to moto (S3
here; STS takes the same path).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from mlflow_sagemaker_registry.emulator import EmulatorProcess, RegistryBackend, Throttle, emulated_aws
from mlflow_sagemaker_registry.emulator.__main__ import main
from mlflow_sagemaker_registry.emulator.errors import EmulatorError
from mlflow_sagemaker_registry.emulator.faults import THROTTLED

REGION = "us-east-1"
LIST = "ListModelPackageGroups"
PACKAGES = "ListModelPackages"
CREATE = "CreateModelPackageGroup"
ONE_ATTEMPT = Config(retries={"total_max_attempts": 1})
"""A client that shows the throttle's answer instead of retrying it."""
LATENCY = 0.2
"""Seconds of latency in the timing tests: long enough to tell one wait from two on a busy machine."""
CLIENTS = 4
"""Concurrent clients: served one after the other, they would take ``CLIENTS`` latencies at least."""


class FakeClock:
    """A monotonic clock that moves only when the test says."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def outcome(backend: RegistryBackend, operation: str = LIST) -> str:
    """``ok`` or the error code of one call (a read without parameters), as the wire layer makes it."""
    try:
        backend.handle(operation, {}, REGION)
    except EmulatorError as error:
        return error.code
    return "ok"


def timed(call: Callable[[], Any]) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def together(call: Callable[[], object]) -> float:
    """Seconds for ``CLIENTS`` threads to make ``call`` at once."""
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        started = time.monotonic()
        list(pool.map(lambda _: call(), range(CLIENTS)))
        return time.monotonic() - started


def answered(call: Callable[[], object]) -> None:
    """Make the call; an error answer (a group that does not exist) is an answer all the same."""
    with contextlib.suppress(ClientError):
        call()


def test_a_throttle_passes_its_burst_then_one_call_a_token() -> None:
    clock = FakeClock()
    backend = RegistryBackend(clock=clock)
    backend.throttle(2, burst=2, operations=LIST)
    assert [outcome(backend) for _ in range(3)] == ["ok", "ok", "ThrottlingException"]
    assert outcome(backend, PACKAGES) == "ok"  # not an operation of the bucket
    clock.now += 0.5  # one token at 2 a second
    assert [outcome(backend), outcome(backend)] == ["ok", "ThrottlingException"]
    clock.now += 60  # a long pause fills the bucket to its burst, no more
    assert [outcome(backend) for _ in range(3)] == ["ok", "ok", "ThrottlingException"]
    throttled = [call for call in backend.calls() if call.faults]
    assert {(call.operation, call.error, call.faults) for call in throttled} == {
        (LIST, "ThrottlingException", (THROTTLED,))
    }
    assert len(throttled) == 3


def test_a_call_passes_only_with_a_token_of_every_bucket_naming_it() -> None:
    clock = FakeClock()
    backend = RegistryBackend(clock=clock)
    backend.throttle(0, burst=2)  # every operation: two calls in all
    backend.throttle(0, burst=1, operations=[LIST])
    assert [outcome(backend), outcome(backend)] == ["ok", "ThrottlingException"]
    assert [outcome(backend, PACKAGES), outcome(backend, PACKAGES)] == ["ok", "ThrottlingException"]


def test_throttled_answers_are_sagemakers_http_400(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with emulated_aws(RegistryBackend(throttle=Throttle(0, burst=1))) as backend:
        sm = boto3.client("sagemaker", region_name=REGION, config=ONE_ATTEMPT)
        sm.list_model_package_groups()
        with pytest.raises(ClientError) as throttled:
            sm.list_model_package_groups()
    assert throttled.value.response["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert [call.faults for call in backend.calls()] == [(), (THROTTLED,)]


def test_clear_faults_and_reset_come_back_to_the_defaults() -> None:
    latency = 0.02
    default = Throttle(0, burst=2, operations=(LIST,))
    backend = RegistryBackend(latency_ms=latency * 1000, throttle=default, clock=FakeClock())
    assert timed(lambda: outcome(backend)) >= latency
    assert [outcome(backend), outcome(backend)] == ["ok", "ThrottlingException"]
    for back_to_the_defaults in (backend.clear_faults, backend.reset):
        backend.latency(0)
        backend.throttle(0, burst=1, operations=PACKAGES)
        assert [outcome(backend, PACKAGES), outcome(backend, PACKAGES)] == ["ok", "ThrottlingException"]
        back_to_the_defaults()
        assert [outcome(backend, PACKAGES), outcome(backend, PACKAGES)] == ["ok", "ok"]  # runtime rule gone
        assert timed(lambda: outcome(backend)) >= latency  # the default latency, and a full bucket
        assert [outcome(backend), outcome(backend)] == ["ok", "ThrottlingException"]


def test_the_latency_is_waited_outside_the_lock_and_marks_nothing() -> None:
    backend = RegistryBackend(latency_ms=LATENCY * 1000)
    assert LATENCY <= together(lambda: outcome(backend)) < CLIENTS * LATENCY
    assert [call.faults for call in backend.calls()] == [()] * CLIENTS


def test_in_process_every_service_pays_the_latency_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with emulated_aws() as backend:
        sm = boto3.client("sagemaker", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        sm.list_model_package_groups()  # the clients' first calls load what botocore loads lazily
        s3.list_buckets()
        backend.latency(LATENCY * 1000)
        assert LATENCY <= timed(sm.list_model_package_groups) < 2 * LATENCY
        assert LATENCY <= timed(s3.list_buckets) < 2 * LATENCY


def test_knobs_out_of_range_are_value_errors() -> None:
    backend = RegistryBackend()
    for knob in (
        lambda: backend.latency(-1),
        lambda: backend.throttle(-1),
        lambda: backend.throttle(1, burst=0),
        lambda: backend.throttle(1, operations="CreateModelPackages"),
        lambda: RegistryBackend(latency_ms=float("nan")),
    ):
        with pytest.raises(ValueError):
            knob()
    assert Throttle(2.5).options() == {"rate": 2.5, "burst": 3, "operations": "*"}
    assert Throttle(0.1, operations=(LIST, CREATE)).options()["operations"] == [CREATE, LIST]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--throttle-burst", "2"], "--throttle-burst needs --throttle-rate"),
        (["--latency-ms", "-5"], "a latency is a number of milliseconds >= 0"),
        (["--throttle-rate", "1", "--throttle-operations", "Nope"], "unknown operations ['Nope']"),
    ],
)
def test_the_command_refuses_conditions_it_cannot_mean(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--port", "0", *flags])
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_a_child_started_with_latency_and_a_throttle() -> None:
    throttle = Throttle(0, burst=1, operations=(LIST,))
    with EmulatorProcess(latency_ms=LATENCY * 1000, throttle=throttle) as emulator:
        sm = boto3.client("sagemaker", endpoint_url=emulator.url, region_name=REGION, config=ONE_ATTEMPT)
        s3 = boto3.client("s3", endpoint_url=emulator.url, region_name=REGION)
        describe = functools.partial(
            answered, functools.partial(sm.describe_model_package_group, ModelPackageGroupName="nothing")
        )
        assert timed(s3.list_buckets) >= LATENCY  # the flag's latency
        emulator.latency(0)
        describe()  # the client's first call loads what botocore loads lazily
        assert timed(s3.list_buckets) < LATENCY
        emulator.throttle(0, burst=1, operations=[CREATE])
        sm.create_model_package_group(ModelPackageGroupName="churn")
        with pytest.raises(ClientError, match="ThrottlingException"):
            sm.create_model_package_group(ModelPackageGroupName="fraud")
        with pytest.raises(ValueError, match="a throttle needs a rate >= 0"):
            emulator.throttle(-1)
        emulator.reset()  # back to the flags' latency and a full bucket; the runtime throttle gone
        for call in (describe, s3.list_buckets):
            assert LATENCY <= together(call) < CLIENTS * LATENCY, call  # concurrent clients wait together
        sm.list_model_package_groups()
        with pytest.raises(ClientError) as throttled:
            sm.list_model_package_groups()
        assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert emulator.calls_to(LIST)[-1].faults == (THROTTLED,)
        sm.create_model_package_group(ModelPackageGroupName="fraud")
