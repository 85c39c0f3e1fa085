"""The webhook receiver in process: payloads, deduplication, the decision per delivery, the reconcile
service over a fake engine, and the HTTP app served by uvicorn on a loopback port in a thread."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from starlette.applications import Starlette

from mlflow_sagemaker_registry.errors import SourceError, UnsafePlanError
from mlflow_sagemaker_registry.executor import Failure, Report
from mlflow_sagemaker_registry.planner import Plan
from mlflow_sagemaker_registry.triggers.webhook import (
    DeliveryLog,
    ReconcileService,
    WebhookReceiver,
    create_app,
    http_server,
    listen,
    url_of,
)
from mlflow_sagemaker_registry.triggers.webhook_payload import EVENTS, ModelEvent, parse_event
from mlflow_sagemaker_registry.triggers.webhook_signature import signed_headers

SECRET = "receiver-secret"
NOW = 1_750_000_000.0


def body(event: str = "model_version.created", **data: Any) -> bytes:
    entity, action = event.rsplit(".", 1)
    return json.dumps({"entity": entity, "action": action, "timestamp": "", "data": data}).encode()


def sent(payload: bytes, delivery_id: str = "d-1", at: float = NOW, secret: str = SECRET) -> dict[str, str]:
    return signed_headers(secret, payload, delivery_id, str(int(at)))


class FakeEngine:
    """Records pushes; can be slow, raise, or report failures for chosen models."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.pushes: list[tuple[str, ...] | None] = []
        self.errors: dict[str, Exception] = {}
        self.failing: set[str] = set()

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
def submitted() -> list[str]:
    return []


@pytest.fixture
def receiver(submitted: list[str]) -> WebhookReceiver:
    return WebhookReceiver(SECRET, submitted.append, clock=lambda: NOW)


def test_an_authentic_delivery_is_acknowledged_and_its_model_queued(
    receiver: WebhookReceiver, submitted: list[str]
) -> None:
    payload = body("model_version_alias.created", name="churn", alias="champion", version="3")

    outcome = receiver.receive(sent(payload), payload, "127.0.0.1")

    assert (outcome.status, outcome.body) == (202, {"status": "accepted"})
    assert submitted == ["churn"]
    assert receiver.counters.snapshot() == {"accepted": 1}


def test_a_retried_delivery_is_acknowledged_and_dropped(
    receiver: WebhookReceiver, submitted: list[str]
) -> None:
    payload = body(name="churn")
    outcomes = [receiver.receive(sent(payload), payload, "127.0.0.1") for _ in range(3)]

    assert [o.status for o in outcomes] == [202, 200, 200]
    assert outcomes[1].body == {"status": "duplicate"}
    assert submitted == ["churn"]
    assert receiver.counters.snapshot() == {"accepted": 1, "duplicate": 2}


def test_a_forged_delivery_is_refused_and_logged_without_secret_or_body(
    receiver: WebhookReceiver, submitted: list[str], caplog: pytest.LogCaptureFixture
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
    receiver: WebhookReceiver, submitted: list[str]
) -> None:
    payload = body(name="churn")
    assert receiver.receive(sent(payload, secret="guess"), payload, "-").status == 401
    assert receiver.receive(sent(payload), payload, "-").status == 202


@pytest.mark.parametrize("age", [301, -301], ids=["stale", "future"])
def test_a_delivery_outside_the_window_is_refused(
    receiver: WebhookReceiver, submitted: list[str], age: int, caplog: pytest.LogCaptureFixture
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
    receiver: WebhookReceiver, submitted: list[str], payload: bytes, reason: str
) -> None:
    outcome = receiver.receive(sent(payload), payload, "-")
    assert outcome.status == 400 and outcome.body["reason"].startswith(reason)
    assert submitted == []


def test_mlsyncs_own_tags_are_acknowledged_but_not_reconciled(
    receiver: WebhookReceiver, submitted: list[str]
) -> None:
    own = body("model_version_tag.set", name="churn", version="1", key="mlsync.sync_status", value="synced")
    theirs = body(
        "model_version_tag.set", name="churn", version="1", key="sagemaker.approval", value="Approved"
    )

    assert receiver.receive(sent(own, "d-1"), own, "-").body["status"] == "ignored"
    assert receiver.receive(sent(theirs, "d-2"), theirs, "-").body["status"] == "accepted"
    assert submitted == ["churn"]


# -- the reconcile service ----------------------------------------------------------------------


@contextmanager
def service(engine: FakeEngine, **options: Any) -> Iterator[ReconcileService]:
    running = ReconcileService(engine, **{"every": None, "drain_timeout": 5, "quiet": 0.02, **options})
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
            running.submit("churn")
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
    with service(engine) as running:
        settle(running, 1)
        for name in ("gone", "big", "throttled", "fine"):
            running.submit(name)
        settle(running, 5)
        stats = running.stats()
    assert (stats["succeeded"], stats["failed"]) == (2, 3)
    assert "reconciling model 'gone' failed: model 'gone' does not exist" in caplog.text
    assert "reconciling model 'big' failed: too many" in caplog.text
    assert (
        "reconciling model 'throttled': 1 of 0 actions failed, first throttled v1 UpdatePackage"
        in caplog.text
    )


def test_stop_waits_for_a_running_reconcile_and_reports_what_never_started(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = FakeEngine(delay=0.3)
    running = ReconcileService(engine, every=60, drain_timeout=0, quiet=0, workers=1)
    running.start()
    deadline = time.monotonic() + 5
    while running.stats()["running"] == 0:  # the startup reconcile
        assert time.monotonic() < deadline
        time.sleep(0.01)
    running.submit("churn")

    assert running.stop() == ["churn"]

    assert engine.pushes == [None] and running.stats()["succeeded"] == 1
    assert (
        "stopped with 1 reconciles not started (model 'churn'); the next full reconcile covers them"
        in caplog.text
    )
    assert running.submit("late") is False


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
    reconciles = ReconcileService(engine, every=None, drain_timeout=5, quiet=0.02)
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
    reconciles = ReconcileService(engine, every=None, drain_timeout=5, quiet=60)
    with serving(create_app(WebhookReceiver(SECRET, reconciles.submit), reconciles)):
        reconciles.submit("churn")  # would wait a minute for quiet, but the server stops first

    assert len(engine.pushes) == 2 and set(engine.pushes) == {None, ("churn",)}


def test_the_listening_socket_says_it_is_tcp() -> None:
    # So asyncio disables Nagle's algorithm on each connection: without it every ack waited ~40 ms
    # for the client's delayed ACK (benchmarks/bench_webhook.py showed p50 44 ms, now under 1 ms).
    with listen("127.0.0.1", 0) as listener:
        assert listener.proto == socket.IPPROTO_TCP


def test_the_url_printed_is_the_port_bound() -> None:
    with listen("127.0.0.1", 0) as listener:
        assert url_of(listener) == f"http://127.0.0.1:{listener.getsockname()[1]}"
