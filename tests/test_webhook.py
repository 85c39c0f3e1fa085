"""The webhook receiver in process: payloads, deduplication, echoes of mlsync's own tag writes, the
decision per delivery, the reconcile service over a fake engine, and the HTTP app served by uvicorn on a
loopback port in a thread."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import boto3
import mlflow
import pytest
from mlflow_models import log_version
from starlette.applications import Starlette

from mlflow_sagemaker_registry.config import load_settings
from mlflow_sagemaker_registry.emulator import emulated_aws
from mlflow_sagemaker_registry.errors import SourceError, UnsafePlanError
from mlflow_sagemaker_registry.executor import Failure, Report
from mlflow_sagemaker_registry.mapping.identity import group_name
from mlflow_sagemaker_registry.mapping.tags import OWN_TAGS, TAG_SYNC_STATUS
from mlflow_sagemaker_registry.planner import Plan
from mlflow_sagemaker_registry.triggers.reconcile import Job, Runner
from mlflow_sagemaker_registry.triggers.webhook.payload import EVENTS, ModelEvent, TagWrite, parse_event
from mlflow_sagemaker_registry.triggers.webhook.receiver import (
    DeliveryLog,
    OwnWrites,
    ReconcileService,
    RecordingSource,
    WebhookReceiver,
    create_app,
    http_server,
    listen,
    recording_engine,
    url_of,
)
from mlflow_sagemaker_registry.triggers.webhook.signature import signed_headers
from mlflow_sagemaker_registry.wiring import connect

SECRET = "receiver-secret"
NOW = 1_750_000_000.0


def body(event: str = "model_version.created", **data: Any) -> bytes:
    entity, action = event.rsplit(".", 1)
    return json.dumps({"entity": entity, "action": action, "timestamp": "", "data": data}).encode()


def sent(payload: bytes, delivery_id: str = "d-1", at: float = NOW, secret: str = SECRET) -> dict[str, str]:
    return signed_headers(secret, payload, delivery_id, str(int(at)))


class FakeEngine:
    """Records pushes; can be slow, raise, or report failures for chosen models.

    A `reconcile.Reconciler` (the receiver never pulls nor retires) and the MLflow tags it writes to.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.pushes: list[tuple[str, ...] | None] = []
        self.errors: dict[str, Exception] = {}
        self.failing: set[str] = set()
        self.tagged: list[tuple[str, str, dict[str, str]]] = []

    def runner(self) -> Runner:
        return Runner(lambda: self, self)

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        self.tagged.append((name, version, dict(tags)))

    def pull(self, names: Sequence[str] | None = None) -> tuple[Plan, Report]:
        raise AssertionError("the receiver never pulls")

    def retire(self, name: str, versions: Sequence[str] = ()) -> Report:
        raise AssertionError("the receiver never retires")

    def push(self, names: Sequence[str] | None = None) -> tuple[Plan, Report]:
        self.pushes.append(None if names is None else tuple(names))
        time.sleep(self.delay)
        name = names[0] if names else ""
        if name in self.errors:
            raise self.errors[name]
        failures = [Failure(name, "1", "UpdatePackage", "throttled")] if name in self.failing else []
        return Plan(), Report(failures=failures)


# -- payloads -----------------------------------------------------------------------------------


@pytest.mark.parametrize("event", EVENTS)
def test_every_subscribed_event_names_its_model(event: str) -> None:
    assert parse_event(body(event, name="churn", key="k")) == ModelEvent(event, "churn", "k")


def test_a_delivery_naming_a_version_is_a_job_touching_it() -> None:
    event = parse_event(body("model_version_tag.set", name="churn", version="3", key="k", value="v"))

    assert event == ModelEvent("model_version_tag.set", "churn", "k", "3", "v")
    assert event.job == Job("churn", versions=frozenset({"3"}))
    assert event.tag_write == TagWrite("churn", "3", "k", "v")
    assert parse_event(body("registered_model.created", name="churn")).job == Job("churn")
    # Only a tag set is a tag write; a field of the wrong type is no field.
    assert (
        parse_event(body("model_version_tag.deleted", name="churn", version="3", key="k")).tag_write is None
    )
    assert parse_event(body("model_version.created", name="churn", version=3)).job == Job("churn")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "no data object"),
        (b'{"entity": "model_version", "action": "created", "data": []}', "no data object"),
        (body("prompt.created", name="p"), "unsupported event 'prompt.created'"),
        (body("model_version.deleted", name="m"), "unsupported event"),
        (body("model_version.created"), "has no model name"),
        (body("model_version.created", name=""), "has no model name"),
        (body("model_version.created", name=7), "has no model name"),
    ],
)
def test_anything_else_is_refused_with_a_reason(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_event(payload)


def test_only_setting_mlsyncs_own_tags_is_its_own_doing() -> None:
    assert parse_event(body("model_version_tag.set", name="m", key="mlsync.sync_status")).is_own_tag
    assert parse_event(body("model_version_tag.set", name="m", key="sagemaker.model_package_arn")).is_own_tag
    assert all(parse_event(body("model_version_tag.set", name="m", key=key)).is_own_tag for key in OWN_TAGS)
    assert not parse_event(body("model_version_tag.set", name="m", key="sagemaker.approval")).is_own_tag
    assert not parse_event(body("model_version_tag.deleted", name="m", key="mlsync.sync_status")).is_own_tag


# -- deduplication ------------------------------------------------------------------------------


def test_delivery_log_remembers_ids_while_they_could_still_verify() -> None:
    log = DeliveryLog(window=300)
    assert log.remember("a", int(NOW), NOW)
    assert not log.remember("a", int(NOW), NOW + 299)
    # Once the signed timestamp is out of the window, `verify` refuses the delivery before this log.
    assert log.remember("a", int(NOW), NOW + 301)


def test_delivery_log_drops_the_oldest_ids_beyond_its_capacity() -> None:
    log = DeliveryLog(window=300, capacity=2)
    for delivery_id in "abc":
        assert log.remember(delivery_id, int(NOW), NOW)
    assert log.remember("a", int(NOW), NOW)  # forgotten: the oldest
    assert not log.remember("c", int(NOW), NOW)


# -- the decision per delivery ------------------------------------------------------------------


@pytest.fixture
def submitted() -> list[Job]:
    return []


@pytest.fixture
def own_writes() -> OwnWrites:
    return OwnWrites()


@pytest.fixture
def receiver(submitted: list[Job], own_writes: OwnWrites) -> WebhookReceiver:
    return WebhookReceiver(SECRET, submitted.append, own_writes=own_writes, clock=lambda: NOW)


def test_an_authentic_delivery_is_acknowledged_and_its_model_queued(
    receiver: WebhookReceiver, submitted: list[Job]
) -> None:
    payload = body("model_version_alias.created", name="churn", alias="champion", version="3")

    outcome = receiver.receive(sent(payload), payload, "127.0.0.1")

    assert (outcome.status, outcome.body) == (202, {"status": "accepted"})
    assert submitted == [Job("churn", versions=frozenset({"3"}))]
    assert receiver.counters.snapshot() == {"accepted": 1}


def test_a_retried_delivery_is_acknowledged_and_dropped(
    receiver: WebhookReceiver, submitted: list[Job]
) -> None:
    payload = body(name="churn")
    outcomes = [receiver.receive(sent(payload), payload, "127.0.0.1") for _ in range(3)]

    assert [o.status for o in outcomes] == [202, 200, 200]
    assert outcomes[1].body == {"status": "duplicate"}
    assert submitted == [Job("churn")]
    assert receiver.counters.snapshot() == {"accepted": 1, "duplicate": 2}


def test_a_forged_delivery_is_refused_and_logged_without_secret_or_body(
    receiver: WebhookReceiver, submitted: list[Job], caplog: pytest.LogCaptureFixture
) -> None:
    payload = body(name="secret-model-name")
    caplog.set_level(logging.INFO)

    outcome = receiver.receive(sent(payload, secret="guess"), payload, "10.1.2.3")

    assert (outcome.status, outcome.body) == (401, {"status": "rejected", "reason": "invalid signature"})
    assert submitted == []
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "rejected delivery 'd-1' from 10.1.2.3 (HTTP 401): signature does not match (wrong secret, "
        "or the body was altered)"
    )
    assert SECRET not in caplog.text and "guess" not in caplog.text and "secret-model-name" not in caplog.text


def test_a_forged_delivery_does_not_burn_the_genuine_id(
    receiver: WebhookReceiver, submitted: list[Job]
) -> None:
    payload = body(name="churn")
    assert receiver.receive(sent(payload, secret="guess"), payload, "-").status == 401
    assert receiver.receive(sent(payload), payload, "-").status == 202


@pytest.mark.parametrize("age", [301, -301], ids=["stale", "future"])
def test_a_delivery_outside_the_window_is_refused(
    receiver: WebhookReceiver, submitted: list[Job], age: int, caplog: pytest.LogCaptureFixture
) -> None:
    payload = body(name="churn")
    assert receiver.receive(sent(payload, at=NOW - age), payload, "-").status == 401
    assert submitted == [] and "301 s" in caplog.text


def test_an_unsigned_delivery_is_refused_and_its_id_quoted_in_the_log(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    forged_line = "x\nERROR forged log line"
    outcome = receiver.receive({"X-MLflow-Delivery-Id": forged_line}, b"{}", "-")
    assert outcome.status == 401
    assert "'x\\nERROR forged log line'" in caplog.text and "\nERROR forged" not in caplog.text


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(b"nope", "body is not JSON"), (body("prompt.created", name="p"), "unsupported event 'prompt.created'")],
)
def test_an_authentic_but_unusable_delivery_is_a_400(
    receiver: WebhookReceiver, submitted: list[Job], payload: bytes, reason: str
) -> None:
    outcome = receiver.receive(sent(payload), payload, "-")
    assert outcome.status == 400 and outcome.body["reason"].startswith(reason)
    assert submitted == []


def test_mlsyncs_own_tags_are_acknowledged_but_not_reconciled(
    receiver: WebhookReceiver, submitted: list[Job]
) -> None:
    own = body("model_version_tag.set", name="churn", version="1", key="mlsync.sync_status", value="synced")
    theirs = body(
        "model_version_tag.set", name="churn", version="1", key="sagemaker.approval", value="Approved"
    )

    assert receiver.receive(sent(own, "d-1"), own, "-").body["status"] == "ignored"
    assert receiver.receive(sent(theirs, "d-2"), theirs, "-").body["status"] == "accepted"
    assert submitted == [Job("churn", versions=frozenset({"1"}))]


def tag_set(key: str, value: str, version: str = "1") -> bytes:
    return body("model_version_tag.set", name="churn", version=version, key=key, value=value)


def test_the_echo_of_a_tag_mlsync_just_wrote_is_acknowledged_once_but_not_reconciled(
    receiver: WebhookReceiver, submitted: list[Job], own_writes: OwnWrites
) -> None:
    own_writes.expect("churn", "1", {"sagemaker.approval": "Approved"})  # a pull wrote it
    echo = tag_set("sagemaker.approval", "Approved")

    outcome = receiver.receive(sent(echo, "d-1"), echo, "-")
    again = receiver.receive(sent(echo, "d-2"), echo, "-")  # someone set the same value: news

    assert (outcome.status, outcome.body) == (202, {"status": "ignored", "reason": "a tag mlsync just wrote"})
    assert again.body == {"status": "accepted"}
    assert submitted == [Job("churn", versions=frozenset({"1"}))]
    assert receiver.counters.snapshot() == {"ignored": 1, "accepted": 1}


@pytest.mark.parametrize(
    "delivered",
    [
        tag_set("sagemaker.approval", "Rejected"),  # someone else's value
        tag_set("sagemaker.approval", "Approved", version="2"),  # another version
        tag_set("team", "Approved"),  # another tag
        body("model_version_tag.deleted", name="churn", version="1", key="sagemaker.approval"),
    ],
    ids=["value", "version", "key", "deleted"],
)
def test_anything_but_the_same_tag_write_is_news(
    receiver: WebhookReceiver, submitted: list[Job], own_writes: OwnWrites, delivered: bytes
) -> None:
    own_writes.expect("churn", "1", {"sagemaker.approval": "Approved"})

    assert receiver.receive(sent(delivered), delivered, "-").body == {"status": "accepted"}
    assert len(submitted) == 1


def test_another_value_first_drops_the_expectation_so_a_change_back_is_news() -> None:
    writes = OwnWrites()
    writes.expect("churn", "1", {"sagemaker.approval": "Approved"})

    assert not writes.is_echo(TagWrite("churn", "1", "sagemaker.approval", "Rejected"))  # someone else
    assert not writes.is_echo(TagWrite("churn", "1", "sagemaker.approval", "Approved"))  # and back


def test_an_expectation_lasts_one_window() -> None:
    now = [0.0]
    writes = OwnWrites(window=300, clock=lambda: now[0])
    writes.expect("churn", "1", {"k": "v", "other": "w"})

    now[0] = 299.0
    assert writes.is_echo(TagWrite("churn", "1", "k", "v"))
    now[0] = 301.0  # its delivery would be refused as stale by now
    assert not writes.is_echo(TagWrite("churn", "1", "other", "w"))


class Tags:
    """The tag-writing part of an MLflow source; refuses writes while `down`."""

    def __init__(self) -> None:
        self.down = False
        self.written: list[tuple[str, str, dict[str, str]]] = []

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        if self.down:
            raise SourceError("MLflow is unreachable")
        self.written.append((name, version, dict(tags)))

    def identity(self) -> str:
        return "registry"


def test_the_recording_source_expects_each_write_and_passes_the_rest_through() -> None:
    tags, writes = Tags(), OwnWrites()
    source: Any = RecordingSource(tags, writes)  # a ports.Source by delegation

    source.set_version_tags("churn", "1", {"sagemaker.approval": "Approved"})
    tags.down = True
    with pytest.raises(SourceError):
        source.set_version_tags("churn", "2", {"sagemaker.approval": "Approved"})

    assert tags.written == [("churn", "1", {"sagemaker.approval": "Approved"})]
    assert source.identity() == "registry"
    assert writes.is_echo(TagWrite("churn", "1", "sagemaker.approval", "Approved"))
    # A failed write makes no delivery: the same value set by someone else later is news.
    assert not writes.is_echo(TagWrite("churn", "2", "sagemaker.approval", "Approved"))


def test_a_pulled_approval_comes_back_as_an_echo_and_is_not_reconciled_again(
    mlflow_uri: str, receiver: WebhookReceiver, submitted: list[Job], own_writes: OwnWrites
) -> None:
    """Real MLflow (SQLite) and the in-process SageMaker emulator: a reviewer approves in SageMaker, the
    receiver's engine pulls the approval into MLflow's `sagemaker.approval` tag, and the deliveries MLflow
    posts for the tags it wrote are all acknowledged as "ignored"."""
    with emulated_aws():
        boto3.client("s3").create_bucket(Bucket="echo")
        log_version("churn", seed=1)
        engine = recording_engine(
            connect(load_settings({"s3_prefix": "s3://echo/mlsync"}, env={})), own_writes
        )
        engine.push(["churn"])
        sagemaker = boto3.client("sagemaker")
        (package,) = sagemaker.list_model_packages(ModelPackageGroupName=group_name("churn"))[
            "ModelPackageSummaryList"
        ]
        sagemaker.update_model_package(
            ModelPackageArn=package["ModelPackageArn"], ModelApprovalStatus="Approved"
        )
        tags_before = dict(mlflow.MlflowClient().get_model_version("churn", "1").tags)

        engine.pull(["churn"])

    tags = mlflow.MlflowClient().get_model_version("churn", "1").tags
    assert tags["sagemaker.approval"] == "Approved"
    written = {key: value for key, value in tags.items() if tags_before.get(key) != value}
    assert "sagemaker.approval" in written
    answers = {}
    for n, (key, value) in enumerate(sorted(written.items())):  # what MLflow posts for each write
        echo = tag_set(key, value)
        answers[key] = receiver.receive(sent(echo, f"echo-{n}"), echo, "-").body
    assert {answer["status"] for answer in answers.values()} == {"ignored"}
    assert answers["sagemaker.approval"]["reason"] == "a tag mlsync just wrote"  # people set it too
    assert submitted == []
    # A reviewer's next change in MLflow is news again.
    change = tag_set("sagemaker.approval", "Rejected")
    assert receiver.receive(sent(change, "change"), change, "-").body["status"] == "accepted"


# -- the reconcile service ----------------------------------------------------------------------


@contextmanager
def service(engine: FakeEngine, **options: Any) -> Iterator[ReconcileService]:
    running = ReconcileService(
        engine.runner(), **{"every": None, "drain_timeout": 5, "quiet": 0.02, **options}
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


def settle(running: ReconcileService, runs: int) -> None:
    deadline = time.monotonic() + 5
    while running.stats()["runs"] < runs or running.stats()["running"]:
        assert time.monotonic() < deadline, running.stats()
        time.sleep(0.01)


def test_the_service_reconciles_everything_at_start_then_each_model_submitted() -> None:
    engine = FakeEngine()
    with service(engine) as running:
        settle(running, 1)
        for _ in range(5):
            running.submit(Job("churn"))
        settle(running, 2)
    assert engine.pushes == [None, ("churn",)]


def test_the_service_reconciles_everything_again_every_period() -> None:
    engine = FakeEngine()
    with service(engine, every=0.05) as running:
        settle(running, 3)
    assert engine.pushes[:3] == [None, None, None]


def test_failed_reconciles_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    engine = FakeEngine()
    engine.errors = {"gone": SourceError("model 'gone' does not exist"), "big": UnsafePlanError("too many")}
    engine.failing = {"throttled"}
    caplog.set_level(logging.INFO)  # failed actions were logged by the executor; the summary is INFO
    with service(engine) as running:
        settle(running, 1)
        for name in ("gone", "big", "throttled", "fine"):
            running.submit(Job(name))
        settle(running, 5)
        stats = running.stats()
    assert (stats["succeeded"], stats["failed"]) == (2, 3)
    assert "reconciling model 'gone' failed: model 'gone' does not exist" in caplog.text
    assert "reconciling model 'big' failed: too many" in caplog.text
    assert (
        "reconciling model 'throttled': 1 of 0 actions failed, first throttled v1 UpdatePackage"
        in caplog.text
    )


def test_a_failed_reconcile_is_recorded_on_the_version_the_delivery_named() -> None:
    engine = FakeEngine()
    engine.errors = {"churn": UnsafePlanError("too many")}
    with service(engine) as running:
        settle(running, 1)
        running.submit(Job("churn", versions=frozenset({"3"})))
        settle(running, 2)
    assert engine.tagged == [("churn", "3", {TAG_SYNC_STATUS: "failed: too many"})]


def test_stop_waits_for_a_running_reconcile_and_reports_what_never_started(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = FakeEngine(delay=0.3)
    running = ReconcileService(engine.runner(), every=60, drain_timeout=0, quiet=0, workers=1)
    running.start()
    deadline = time.monotonic() + 5
    while running.stats()["running"] == 0:  # the startup reconcile
        assert time.monotonic() < deadline
        time.sleep(0.01)
    running.submit(Job("churn"))

    assert running.stop() == [Job("churn")]

    assert engine.pushes == [None] and running.stats()["succeeded"] == 1
    assert (
        "stopped with 1 reconciles not started (model 'churn'); the next full reconcile covers them"
        in caplog.text
    )
    assert running.submit(Job("late")) is False


# -- HTTP ---------------------------------------------------------------------------------------


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@contextmanager
def serving(app: Starlette) -> Iterator[tuple[str, int]]:
    """`app` on uvicorn in a thread, on a free loopback port, until the block ends; yields (host, port)."""
    listener = listen("127.0.0.1", 0)
    uvicorn_server = http_server(app)
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uvicorn_server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.01)
    try:
        yield listener.getsockname()[:2]
    finally:
        uvicorn_server.should_exit = True
        thread.join(10)


@pytest.fixture
def server(engine: FakeEngine) -> Iterator[tuple[str, int]]:
    reconciles = ReconcileService(engine.runner(), every=None, drain_timeout=5, quiet=0.02)
    with serving(
        create_app(WebhookReceiver(SECRET, reconciles.submit), reconciles, max_body=1024)
    ) as address:
        yield address


def request(
    server: tuple[str, int], method: str, path: str, data: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection(*server, timeout=10)
    try:
        connection.request(
            method, path, body=data, headers=headers or {}, encode_chunked=not isinstance(data, bytes | None)
        )
        response = connection.getresponse()
        answer = response.read()
        return response.status, json.loads(answer) if answer.startswith(b"{") else {}
    finally:
        connection.close()


def test_http_delivery_is_acknowledged_with_202_and_reconciled(
    server: tuple[str, int], engine: FakeEngine
) -> None:
    payload = body(name="churn")
    at = time.time()

    status, answer = request(server, "POST", "/webhook", payload, sent(payload, at=at))

    assert (status, answer) == (202, {"status": "accepted"})
    deadline = time.monotonic() + 5
    while ("churn",) not in engine.pushes:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    health = request(server, "GET", "/healthz")
    assert health[0] == 200 and health[1]["status"] == "ok"
    assert health[1]["deliveries"] == {"accepted": 1}


def test_a_body_over_the_limit_is_refused_before_it_is_read(server: tuple[str, int]) -> None:
    payload = body(name="x" * 2000)
    assert request(server, "POST", "/webhook", payload, sent(payload, at=time.time())) == (
        413,
        {"status": "rejected", "reason": "body too large"},
    )


def test_a_chunked_body_over_the_limit_is_refused_too(server: tuple[str, int]) -> None:
    chunks = iter([b"{" + b" " * 600, b" " * 600 + b"}"])
    status, answer = request(server, "POST", "/webhook", chunks)
    assert (status, answer["reason"]) == (413, "body too large")


def test_only_post_webhook_and_get_healthz_exist(server: tuple[str, int]) -> None:
    assert request(server, "GET", "/webhook")[0] == 405
    assert request(server, "POST", "/healthz")[0] == 405
    assert request(server, "GET", "/")[0] == 404


def test_the_app_starts_and_drains_the_service_with_the_server(engine: FakeEngine) -> None:
    reconciles = ReconcileService(engine.runner(), every=None, drain_timeout=5, quiet=60)
    with serving(create_app(WebhookReceiver(SECRET, reconciles.submit), reconciles)):
        reconciles.submit(Job("churn"))  # would wait a minute for quiet, but the server stops first

    assert len(engine.pushes) == 2 and set(engine.pushes) == {None, ("churn",)}


def test_the_listening_socket_says_it_is_tcp() -> None:
    # So asyncio disables Nagle's algorithm on each connection: without it every ack waited ~40 ms
    # for the client's delayed ACK (benchmarks/bench_webhook.py showed p50 44 ms, now under 1 ms).
    with listen("127.0.0.1", 0) as listener:
        assert listener.proto == socket.IPPROTO_TCP


def test_the_url_printed_is_the_port_bound() -> None:
    with listen("127.0.0.1", 0) as listener:
        assert url_of(listener) == f"http://127.0.0.1:{listener.getsockname()[1]}"


# -- secret rotation ----------------------------------------------------------------------------

PREVIOUS = "receiver-previous-secret"


@pytest.fixture
def rotating(submitted: list[Job]) -> WebhookReceiver:
    """A receiver in the middle of a rotation: the new secret, and the old one still accepted."""
    return WebhookReceiver(SECRET, submitted.append, previous_secrets=(PREVIOUS,), clock=lambda: NOW)


def test_a_delivery_signed_with_the_previous_secret_is_accepted_and_counted(
    rotating: WebhookReceiver, submitted: list[Job]
) -> None:
    old, new = body(name="churn"), body(name="fraud")

    assert rotating.receive(sent(old, "d-1", secret=PREVIOUS), old, "-").body == {"status": "accepted"}
    assert rotating.receive(sent(new, "d-2"), new, "-").body == {"status": "accepted"}

    assert submitted == [Job("churn"), Job("fraud")]
    # `previous_secret` tells the operator when the old secret is no longer used and can be dropped.
    assert rotating.counters.snapshot() == {"accepted": 2, "previous_secret": 1}


def test_a_delivery_id_is_deduplicated_whichever_secret_signed_it(
    rotating: WebhookReceiver, submitted: list[Job]
) -> None:
    payload = body(name="churn")

    first = rotating.receive(sent(payload, "d-1", secret=PREVIOUS), payload, "-")
    retried = rotating.receive(sent(payload, "d-1"), payload, "-")

    assert (first.status, retried.status) == (202, 200)
    assert submitted == [Job("churn")]


def test_a_stale_delivery_is_refused_whichever_secret_signed_it(
    rotating: WebhookReceiver, submitted: list[Job]
) -> None:
    payload = body(name="churn")
    for n, secret in enumerate((SECRET, PREVIOUS)):
        assert (
            rotating.receive(sent(payload, f"d-{n}", at=NOW - 301, secret=secret), payload, "-").status == 401
        )
    assert submitted == []


def test_no_log_line_shows_a_secret_or_a_signature(
    engine: FakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Every kind of answer over HTTP, with every logger (uvicorn's included) at DEBUG."""
    caplog.set_level(logging.DEBUG)
    reconciles = ReconcileService(engine.runner(), every=None, drain_timeout=5, quiet=0.02)
    receiver = WebhookReceiver(SECRET, reconciles.submit, previous_secrets=(PREVIOUS,))
    now = time.time()
    good, unusable, big = body(name="churn"), b"not json", body(name="x" * 2000)
    deliveries = [
        (good, sent(good, "current", at=now)),  # 202
        (good, sent(good, "previous", at=now, secret=PREVIOUS)),  # 202
        (good, sent(good, "previous", at=now, secret=PREVIOUS)),  # 200 duplicate
        (good, sent(good, "forged", at=now, secret="guess")),  # 401
        (good, sent(good, "stale", at=now - 3600, secret=PREVIOUS)),  # 401
        (unusable, sent(unusable, "unusable", at=now)),  # 400
        (big, sent(big, "big", at=now)),  # 413
    ]
    with serving(create_app(receiver, reconciles, max_body=1024)) as address:
        statuses = [request(address, "POST", "/webhook", data, headers)[0] for data, headers in deliveries]

    assert statuses == [202, 202, 200, 401, 401, 400, 413]
    assert "accepted delivery 'previous'" in caplog.text and "rejected delivery 'forged'" in caplog.text
    signatures = {headers["X-MLflow-Signature"] for _, headers in deliveries}
    digests = {signature.removeprefix("v1,") for signature in signatures}
    for secret in (SECRET, PREVIOUS, "guess", *signatures, *digests):
        assert secret not in caplog.text
