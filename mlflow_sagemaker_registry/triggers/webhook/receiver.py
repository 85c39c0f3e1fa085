"""`mlsync serve`: receive MLflow's signed registry webhooks and reconcile the models they touch.

For teams that cannot install the registry-store plugin on their tracking server or every client:
MLflow (3.3+, SQL backends) posts a signed delivery for each registry change, and this receiver turns
it into a `Job` for the shared reconcile queue and runner (reconcile.py), which run `Engine.push([model])`,
the same reconcile `mlsync push` runs.

A delivery goes through, in order (see docs/webhooks.md):

1. size: bodies over `MAX_BODY_BYTES` are refused (413) before they are read in full;
2. signature and freshness (401): `webhook_signature.verify`, with a constant-time compare, against
   the secret and, during a rotation, the previous ones;
3. deduplication (200 "duplicate"): MLflow delivers at least once, so a delivery id already accepted
   within the replay window is acknowledged and dropped (and a captured delivery cannot be replayed);
4. event (400): only the six registry events mlsync subscribes to are accepted;
5. echoes (202 "ignored"): a tag only mlsync writes (`mapping.OWN_TAGS`), or a tag write this
   receiver's engine just made (`OwnWrites`: a pulled `sagemaker.approval`), or every reconcile would
   trigger one more;
6. acknowledgement (202) at once; the model is queued on a `ReconcileQueue`, so a burst of changes to
   one model becomes one or two reconciles, run on worker threads, never on the HTTP event loop.

Rejections are logged with the delivery id, the peer and the reason, never a secret, a signature or
the body.
Stage transitions, deletes and renames fire no webhook: a full reconcile runs at startup (catching up
on deliveries missed while the receiver was down) and every `--reconcile-every`.

The HTTP server is uvicorn with a Starlette app: both come with every MLflow install (mlflow-skinny
requires them; `mlflow server` itself runs on uvicorn), and uvicorn is a production server with a
graceful shutdown, unlike Werkzeug's development server.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Hashable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ...engine import Engine
from ...errors import MlsyncError
from ...fleet import Fleet
from ...lambda_handler import answer_event
from ...ports import Source
from ..reconcile import Job, ReconcileQueue, Runner
from .payload import ModelEvent, TagWrite, parse_event
from .signature import (
    DEFAULT_WINDOW_SECONDS,
    DELIVERY_ID_HEADER,
    SignatureError,
    read_headers,
    verify,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
"""The largest payload, `model_version.created`, carries the version's tags and description: usually a
few KiB. A body refused for its size is not retried by MLflow; the next full reconcile covers it."""

WORKERS = 4
"""Models reconciled in parallel: enough that a long full reconcile does not hold up the others."""
QUIET_SECONDS = 0.5
"""A model is reconciled once its deliveries pause this long: MLflow sends a burst within milliseconds."""
MAX_WAIT_SECONDS = 5.0
"""...or at the latest this long after its first waiting delivery, so constant changes still mirror."""

MEMORY_CAPACITY = 100_000
"""The most delivery ids (or own tag writes) remembered at once, should a flood of validly signed
deliveries (or writes) within one window ever exceed what memory should hold; the oldest go first."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class Outcome:
    """The answer to one delivery: an HTTP status and a small JSON body (never the secret or the payload)."""

    status: int
    body: dict[str, str]


class Counters:
    """Thread-safe counts of what happened, for `GET /healthz`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, name: str) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class _Expiring(Generic[K, V]):
    """A map whose entries expire: swept every `sweep_every` seconds, and capped at `capacity` entries
    (the oldest dropped first). Not locked: its owners are."""

    def __init__(self, sweep_every: float, capacity: int) -> None:
        self._sweep_every = sweep_every
        self._capacity = capacity
        self._entries: dict[K, tuple[V, float]] = {}
        self._next_sweep = 0.0

    def get(self, key: K, now: float) -> V | None:
        """The value of a live entry, or None."""
        if now >= self._next_sweep:
            self._entries = {k: entry for k, entry in self._entries.items() if entry[1] > now}
            self._next_sweep = now + self._sweep_every
        entry = self._entries.get(key)
        return entry[0] if entry is not None and entry[1] > now else None

    def put(self, key: K, value: V, expires_at: float) -> None:
        self._entries.pop(key, None)  # to the end: the newest
        self._entries[key] = (value, expires_at)
        while len(self._entries) > self._capacity:
            del self._entries[next(iter(self._entries))]

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)


class DeliveryLog:
    """The ids of deliveries accepted within the replay window, to drop retries and replays.

    An id is kept until its signed timestamp leaves the window: after that, `verify` refuses the
    delivery as stale anyway, so memory is bounded by the deliveries of one window (and by `capacity`).
    """

    def __init__(self, window: float, capacity: int = MEMORY_CAPACITY) -> None:
        self._window = window
        self._ids: _Expiring[str, bool] = _Expiring(window / 10, capacity)
        self._lock = threading.Lock()

    def remember(self, delivery_id: str, signed_at: int, now: float) -> bool:
        """Record an id; False when it was recorded before (a retry or a replay)."""
        with self._lock:
            if self._ids.get(delivery_id, now) is not None:
                return False
            self._ids.put(delivery_id, True, signed_at + self._window)
            return True


class OwnWrites:
    """The MLflow version tags this receiver's engine set lately, so that their deliveries are known.

    A pull (and a push, which pulls too) writes the approval tag people also set (`sagemaker.approval`),
    so it cannot be filtered by key as `mapping.OWN_TAGS` are; MLflow then posts a
    `model_version_tag.set` for it, and reconciling for that finds nothing to do. So each write is
    expected once: the delivery of the same model, version, key and value is its echo and uses the
    expectation up. A delivery of another value for that tag is someone else's change: it is accepted
    and drops the expectation, so that a later change back to mlsync's value is not taken for the echo.
    An expectation lasts one signature window, after which its delivery would be refused as stale.
    Writes whose value was already there (the source skips them) leave an expectation that only an
    identical write, which changes nothing, can match.

    Args:
        window: Seconds an expectation lasts.
        clock: Monotonic seconds.
        capacity: The most expectations kept (the oldest go first).
    """

    def __init__(
        self,
        window: float = DEFAULT_WINDOW_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        capacity: int = MEMORY_CAPACITY,
    ) -> None:
        self._window = window
        self._clock = clock
        self._expected: _Expiring[tuple[str, str, str], str] = _Expiring(window / 10, capacity)
        self._lock = threading.Lock()

    def expect(self, model: str, version: str, tags: Mapping[str, str]) -> None:
        """Tags about to be written: expect one delivery each."""
        with self._lock:
            expires_at = self._clock() + self._window
            for key, value in tags.items():
                self._expected.put((model, version, key), value, expires_at)

    def cancel(self, model: str, version: str, tags: Mapping[str, str]) -> None:
        """The write failed: expect nothing of it."""
        with self._lock:
            now = self._clock()
            for key, value in tags.items():
                if self._expected.get((model, version, key), now) == value:
                    self._expected.pop((model, version, key))

    def is_echo(self, write: TagWrite) -> bool:
        """Whether a delivered tag write is the echo of an expected one (each is matched once)."""
        key = (write.model, write.version, write.key)
        with self._lock:
            expected = self._expected.get(key, self._clock())
            self._expected.pop(key)
        return expected == write.value


class RecordingSource:
    """A `ports.Source` that tells `OwnWrites` of each tag write, before making it (MLflow may post the
    delivery before the write returns); every other attribute is the wrapped source's."""

    def __init__(self, source: Source, writes: OwnWrites) -> None:
        self._source = source
        self._writes = writes

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        self._writes.expect(name, version, tags)
        try:
            self._source.set_version_tags(name, version, tags)
        except Exception:
            self._writes.cancel(name, version, tags)
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)


def recording_engine(engine: Engine, writes: OwnWrites) -> Engine:
    """The same engine, its MLflow tag writes told to `writes`."""
    source = RecordingSource(engine.gateways.source, writes)
    gateways = replace(engine.gateways, source=source)
    return Engine(engine.settings, gateways, target=engine.target, primary=engine.primary)


class WebhookReceiver:
    """Decides each delivery (steps 2-6 of the module docstring); independent of HTTP for testing.

    Args:
        secret: The webhook's HMAC secret.
        submit: Queues a reconcile.
        previous_secrets: Secrets also accepted while a rotation is under way (`verify`); a delivery
            signed with one is counted as `previous_secret`, so `/healthz` shows when they are unused.
        own_writes: The tag writes of the engine behind `submit`, whose deliveries are echoes.
        window: Seconds a delivery's timestamp may be away from `clock()`.
        clock: Wall-clock seconds, as MLflow's timestamps are.
    """

    def __init__(
        self,
        secret: str,
        submit: Callable[[Job], object],
        *,
        previous_secrets: Sequence[str] = (),
        own_writes: OwnWrites | None = None,
        window: float = DEFAULT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._previous_secrets = tuple(previous_secrets)
        self._submit = submit
        self._own_writes = own_writes
        self._window = window
        self._clock = clock
        self._deliveries = DeliveryLog(window)
        self.counters = Counters()

    def receive(self, headers: Mapping[str, str], body: bytes, peer: str) -> Outcome:
        """Verify, deduplicate and route one delivery; the answer to send back."""
        now = self._clock()
        try:
            signed = read_headers(headers)
            key = verify(
                self._secret, signed, body, now=now, window=self._window, previous=self._previous_secrets
            )
        except SignatureError as exc:
            # The caller learns only that it failed; the log says why.
            return self.reject(401, "invalid signature", str(exc), headers, peer)
        if key:
            self.counters.add("previous_secret")
            log.info(
                "delivery %s is signed with previous secret %d of %d",
                _quoted(signed.delivery_id),
                key,
                len(self._previous_secrets),
            )
        if not self._deliveries.remember(signed.delivery_id, signed.unix_time, now):
            self.counters.add("duplicate")
            log.info("dropped delivery %s from %s: already received", _quoted(signed.delivery_id), peer)
            return Outcome(200, {"status": "duplicate"})
        try:
            event = parse_event(body)
        except ValueError as exc:
            return self.reject(400, str(exc), str(exc), headers, peer)
        echo = self._echo(event)
        if echo is not None:
            self.counters.add("ignored")
            log.info(
                "ignored delivery %s: %s on model %r, %s",
                _quoted(signed.delivery_id),
                event.event,
                event.model,
                echo,
            )
            return Outcome(202, {"status": "ignored", "reason": echo})
        self._submit(event.job)
        self.counters.add("accepted")
        log.info(
            "accepted delivery %s: %s on model %r", _quoted(signed.delivery_id), event.event, event.model
        )
        return Outcome(202, {"status": "accepted"})

    def _echo(self, event: ModelEvent) -> str | None:
        """Why the delivery is mlsync's own doing, or None when it is news."""
        if event.is_own_tag:
            return "a tag mlsync writes itself"
        write = event.tag_write
        if write is not None and self._own_writes is not None and self._own_writes.is_echo(write):
            return "a tag mlsync just wrote"
        return None

    def reject(self, status: int, answer: str, reason: str, headers: Mapping[str, str], peer: str) -> Outcome:
        """Log a rejection (id, peer, reason: no secret, no body) and make its answer."""
        self.counters.add("rejected")
        log.warning(
            "rejected delivery %s from %s (HTTP %d): %s",
            _quoted(headers.get(DELIVERY_ID_HEADER)),
            peer,
            status,
            reason,
        )
        return Outcome(status, {"status": "rejected", "reason": answer})


def _quoted(value: str | None) -> str:
    """An untrusted header value fit for one log line (quoted, so no newline can forge a line)."""
    return repr(value[:64]) if value else "-"


class ReconcileService:
    """The work behind the receiver: coalesced reconciles of touched models, and full reconciles.

    Deliveries and the periodic timer feed one `ReconcileQueue` with `Job`s for one `Runner`: a full
    reconcile (`Job()`, every model) is queued at `start()` and every `every` seconds. `stop()` drains
    the queue for up to `drain_timeout` seconds and always waits for reconciles already running, so
    nothing is cut off half-applied; what never started is logged and left for the next full reconcile.
    """

    def __init__(
        self,
        runner: Runner,
        *,
        every: float | None,
        drain_timeout: float,
        workers: int = WORKERS,
        quiet: float = QUIET_SECONDS,
        max_wait: float = MAX_WAIT_SECONDS,
    ) -> None:
        self._runner = runner
        self._every = every
        self._drain_timeout = drain_timeout
        self._queue = ReconcileQueue(self._run, workers=workers, quiet=quiet, max_wait=max_wait)
        self._stopping = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="mlsync-reconcile-every", daemon=True)
        self.counters = Counters()

    def start(self) -> None:
        self._queue.submit(Job())
        if self._every is not None:
            self._ticker.start()

    def submit(self, job: Job) -> bool:
        """Queue a reconcile; False once stopping (a full reconcile will cover it)."""
        return self._queue.submit(job)

    def stop(self) -> list[Job]:
        """Stop the timer, drain the queue; the reconciles that never started."""
        self._stopping.set()
        if self._ticker.is_alive():
            self._ticker.join()
        left = self._queue.close(self._drain_timeout)
        if left:
            log.warning(
                "stopped with %d reconciles not started (%s); the next full reconcile covers them",
                len(left),
                ", ".join(job.describe() for job in left),
            )
        return left

    def stats(self) -> dict[str, int]:
        return {**self._queue.stats(), **self.counters.snapshot()}

    def _tick(self) -> None:
        while not self._stopping.wait(self._every):
            self._queue.submit(Job())

    def _run(self, job: Job) -> None:
        self.counters.add("succeeded" if self._runner.run(job) else "failed")


@dataclass(frozen=True)
class EventsRoute:
    """`POST /events`: SageMaker's EventBridge events, sent by an API destination with `token`.

    `answer` is the Lambda handler's own path (`lambda_handler.answer_event`), run on a worker thread:
    parse, find the package's model in SageMaker, pull it. A failed pull answers 503, so EventBridge
    retries the event; an ignored one 200, as retrying it would change nothing.
    """

    token: str
    answer: Callable[[object], Mapping[str, object]]


def create_app(
    receiver: WebhookReceiver,
    service: ReconcileService,
    max_body: int = MAX_BODY_BYTES,
    events: EventsRoute | None = None,
) -> Starlette:
    """`POST /webhook`, `GET /healthz` and, with `events`, `POST /events`; the service runs for the app's
    lifespan."""

    async def webhook(request: Request) -> JSONResponse:
        peer = request.client.host if request.client else "-"
        body = await _read_at_most(request, max_body)
        if body is None:
            outcome = receiver.reject(
                413, "body too large", f"body over {max_body} bytes", request.headers, peer
            )
        else:
            outcome = receiver.receive(request.headers, body, peer)
        return JSONResponse(outcome.body, status_code=outcome.status)

    async def sagemaker_event(request: Request) -> JSONResponse:
        assert events is not None  # the route exists only with its settings
        peer = request.client.host if request.client else "-"
        presented = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(presented.encode(), events.token.encode()):
            log.warning("rejected an EventBridge event from %s (HTTP 401): wrong or missing token", peer)
            return JSONResponse({"status": "rejected", "reason": "unauthorized"}, status_code=401)
        body = await _read_at_most(request, max_body)
        if body is None:
            return JSONResponse({"status": "rejected", "reason": "body too large"}, status_code=413)
        try:
            event = json.loads(body)
        except ValueError:
            return JSONResponse({"status": "rejected", "reason": "body is not JSON"}, status_code=400)
        outcome = dict(await anyio.to_thread.run_sync(events.answer, event))
        return JSONResponse(outcome, status_code=503 if outcome.get("status") == "failed" else 200)

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse(
            {"status": "ok", "deliveries": receiver.counters.snapshot(), "reconciles": service.stats()}
        )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(service.stop)

    routes = [Route("/webhook", webhook, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])]
    if events is not None:
        routes.append(Route("/events", sagemaker_event, methods=["POST"]))
    return Starlette(routes=routes, lifespan=lifespan)


async def _read_at_most(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed `limit` bytes (it is never read in full)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def http_server(app: Starlette) -> uvicorn.Server:
    """uvicorn without its own logging setup or access log, so the CLI's logging applies."""
    return uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))


def listen(host: str, port: int) -> socket.socket:
    """A listening socket; bound here, so that port 0 works and the URL printed is the real one.

    Made with protocol IPPROTO_TCP, not 0 as `socket.create_server` does: asyncio turns Nagle's algorithm
    off only on sockets that say they are TCP, and with it on, each response (headers and body written
    separately) waits for the client's delayed ACK, about 40 ms.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(socket.SOMAXCONN)
    except OSError as exc:
        listener.close()
        raise MlsyncError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return listener


def url_of(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    engines: Sequence[Engine],
    secret: str,
    *,
    host: str,
    port: int,
    reconcile_every: float | None,
    drain_timeout: float,
    announce: Callable[[str], Any],
    events_token: str | None = None,
    previous_secrets: Sequence[str] = (),
) -> None:
    """Run the receiver until SIGINT/SIGTERM, then shut down gracefully (see `ReconcileService`).

    `engines` are every target's, the primary first (`wiring.connect_target`): deliveries and the
    periodic reconcile go to each target (`fleet.Fleet`), SageMaker's events to the primary, the one
    reviews are pulled from. The engines' MLflow tag writes are recorded (`recording_engine`), so their
    deliveries are ignored.
    With `events_token`, SageMaker's EventBridge events are received on `/events` too (`EventsRoute`).
    Deliveries signed with one of `previous_secrets` are accepted too (a rotation, `WebhookReceiver`).
    """
    listener = listen(host, port)
    own_writes = OwnWrites()
    recording = [recording_engine(engine, own_writes) for engine in engines]
    primary = recording[0]
    fleet = Fleet(recording)
    runner = Runner(lambda: fleet, primary.gateways.source)
    service = ReconcileService(runner, every=reconcile_every, drain_timeout=drain_timeout)
    events = None
    if events_token:
        events = EventsRoute(events_token, lambda event: answer_event(event, lambda: (primary, runner)))
    receiver = WebhookReceiver(
        secret, service.submit, previous_secrets=previous_secrets, own_writes=own_writes
    )
    if previous_secrets:  # an old key still honoured is worth a reminder on every start
        log.warning(
            "accepting deliveries signed with %d previous webhook secret(s) too; unset "
            "MLSYNC_WEBHOOK_PREVIOUS_SECRETS once the rotation is over (docs/webhooks.md)",
            len(previous_secrets),
        )
    app = create_app(receiver, service, events=events)
    announce(f"listening on {url_of(listener)}")
    http_server(app).run(sockets=[listener])
