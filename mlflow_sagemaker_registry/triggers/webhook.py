"""`mlsync serve`: receive MLflow's signed registry webhooks and reconcile the models they touch.

For teams that cannot install the registry-store plugin on their tracking server or every client:
MLflow (3.3+, SQL backends) posts a signed delivery for each registry change, and this receiver turns
it into `Engine.push([model])`, the same reconcile `mlsync push` runs.

A delivery goes through, in order (see docs/webhooks.md):

1. size: bodies over `MAX_BODY_BYTES` are refused (413) before they are read in full;
2. signature and freshness (401): `webhook_signature.verify`, with a constant-time compare;
3. deduplication (200 "duplicate"): MLflow delivers at least once, so a delivery id already accepted
   within the replay window is acknowledged and dropped (and a captured delivery cannot be replayed);
4. event (400): only the six registry events mlsync subscribes to are accepted;
5. acknowledgement (202) at once; the model is queued on a `CoalescingQueue`, so a burst of changes to
   one model becomes one or two reconciles, run on worker threads, never on the HTTP event loop.

Rejections are logged with the delivery id, the peer and the reason, never the secret or the body.
Version tags mlsync writes itself are acknowledged and ignored, or every reconcile would trigger a
second one. Stage transitions, deletes and renames fire no webhook: a full reconcile runs at startup
(catching up on deliveries missed while the receiver was down) and every `--reconcile-every`.

The HTTP server is uvicorn with a Starlette app: both come with every MLflow install (mlflow-skinny
requires them; `mlflow server` itself runs on uvicorn), and uvicorn is a production server with a
graceful shutdown, unlike Werkzeug's development server.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..errors import MlsyncError
from ..executor import Report
from ..planner import Plan
from .webhook_payload import parse_event
from .webhook_queue import CoalescingQueue
from .webhook_signature import (
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


class Pusher(Protocol):
    """What the receiver needs of `Engine`."""

    def push(self, names: Sequence[str] | None = None) -> tuple[Plan, Report]: ...


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


class DeliveryLog:
    """The ids of deliveries accepted within the replay window, to drop retries and replays.

    An id is kept until its signed timestamp leaves the window: after that, `verify` refuses the
    delivery as stale anyway, so memory is bounded by the deliveries of one window (and by `capacity`,
    dropping the oldest ids first, should a flood of validly signed deliveries ever exceed it).
    """

    def __init__(self, window: float, capacity: int = 100_000) -> None:
        self._window = window
        self._capacity = capacity
        self._expiry: dict[str, float] = {}
        self._next_sweep = 0.0
        self._lock = threading.Lock()

    def remember(self, delivery_id: str, signed_at: int, now: float) -> bool:
        """Record an id; False when it was recorded before (a retry or a replay)."""
        with self._lock:
            if now >= self._next_sweep:
                self._expiry = {key: at for key, at in self._expiry.items() if at > now}
                self._next_sweep = now + self._window / 10
            if self._expiry.get(delivery_id, now) > now:
                return False
            self._expiry[delivery_id] = signed_at + self._window
            while len(self._expiry) > self._capacity:
                del self._expiry[next(iter(self._expiry))]
            return True


class WebhookReceiver:
    """Decides each delivery (steps 2-5 of the module docstring); independent of HTTP for testing.

    Args:
        secret: The webhook's HMAC secret.
        submit: Queues a reconcile of a model.
        window: Seconds a delivery's timestamp may be away from `clock()`.
        clock: Wall-clock seconds, as MLflow's timestamps are.
    """

    def __init__(
        self,
        secret: str,
        submit: Callable[[str], object],
        *,
        window: float = DEFAULT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._submit = submit
        self._window = window
        self._clock = clock
        self._deliveries = DeliveryLog(window)
        self.counters = Counters()

    def receive(self, headers: Mapping[str, str], body: bytes, peer: str) -> Outcome:
        """Verify, deduplicate and route one delivery; the answer to send back."""
        now = self._clock()
        try:
            signed = read_headers(headers)
            verify(self._secret, signed, body, now=now, window=self._window)
        except SignatureError as exc:
            # The caller learns only that it failed; the log says why.
            return self.reject(401, "invalid signature", str(exc), headers, peer)
        if not self._deliveries.remember(signed.delivery_id, signed.unix_time, now):
            self.counters.add("duplicate")
            log.info("dropped delivery %s from %s: already received", _quoted(signed.delivery_id), peer)
            return Outcome(200, {"status": "duplicate"})
        try:
            event = parse_event(body)
        except ValueError as exc:
            return self.reject(400, str(exc), str(exc), headers, peer)
        if event.is_own_tag:
            self.counters.add("ignored")
            return Outcome(202, {"status": "ignored", "reason": "a tag mlsync writes itself"})
        self._submit(event.model)
        self.counters.add("accepted")
        log.info(
            "accepted delivery %s: %s on model %r", _quoted(signed.delivery_id), event.event, event.model
        )
        return Outcome(202, {"status": "accepted"})

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

    A full reconcile is queued at `start()` and every `every` seconds. `stop()` drains the queue for up
    to `drain_timeout` seconds and always waits for reconciles already running, so nothing is cut off
    half-applied; what never started is logged and left for the next full reconcile.
    """

    def __init__(
        self,
        engine: Pusher,
        *,
        every: float | None,
        drain_timeout: float,
        workers: int = WORKERS,
        quiet: float = QUIET_SECONDS,
        max_wait: float = MAX_WAIT_SECONDS,
    ) -> None:
        self._engine = engine
        self._every = every
        self._drain_timeout = drain_timeout
        # Queue keys are model names, and None for a full reconcile (as in `Engine.push(None)`).
        self._queue: CoalescingQueue[str | None] = CoalescingQueue(
            self._reconcile, workers=workers, quiet=quiet, max_wait=max_wait, name="mlsync-reconcile"
        )
        self._stopping = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="mlsync-reconcile-every", daemon=True)
        self.counters = Counters()

    def start(self) -> None:
        self._queue.start()
        self._queue.submit(None)
        if self._every is not None:
            self._ticker.start()

    def submit(self, model: str) -> bool:
        """Queue a reconcile of one model; False once stopping (a full reconcile will cover it)."""
        return self._queue.submit(model)

    def stop(self) -> list[str | None]:
        """Stop the timer, drain the queue; the reconciles that never started (None: all models)."""
        self._stopping.set()
        if self._ticker.is_alive():
            self._ticker.join()
        left = self._queue.close(self._drain_timeout)
        if left:
            names = [_describe(key) for key in left]
            log.warning(
                "stopped with %d reconciles not started (%s); the next full reconcile covers them",
                len(left),
                ", ".join(names),
            )
        return left

    def stats(self) -> dict[str, int]:
        return {**self._queue.stats(), **self.counters.snapshot()}

    def _tick(self) -> None:
        while not self._stopping.wait(self._every):
            self._queue.submit(None)

    def _reconcile(self, model: str | None) -> None:
        what = _describe(model)
        try:
            plan, report = self._engine.push(None if model is None else [model])
        except MlsyncError as exc:
            self.counters.add("failed")
            log.error("reconciling %s failed: %s", what, exc)
            return
        if report.ok:
            self.counters.add("succeeded")
            log.info("reconciled %s: %d actions, %d problems", what, len(plan.actions), len(plan.problems))
        else:
            self.counters.add("failed")
            first = report.failures[0]
            log.error(
                "reconciling %s: %d of %d actions failed, first %s v%s %s: %s",
                what,
                len(report.failures),
                len(plan.actions),
                first.model_name,
                first.version,
                first.action,
                first.message,
            )


def _describe(model: str | None) -> str:
    return "every model" if model is None else f"model {model!r}"


def create_app(
    receiver: WebhookReceiver, service: ReconcileService, max_body: int = MAX_BODY_BYTES
) -> Starlette:
    """`POST /webhook` and `GET /healthz`; the service runs for the app's lifespan."""

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

    return Starlette(
        routes=[Route("/webhook", webhook, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])],
        lifespan=lifespan,
    )


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
    engine: Pusher,
    secret: str,
    *,
    host: str,
    port: int,
    reconcile_every: float | None,
    drain_timeout: float,
    announce: Callable[[str], Any],
) -> None:
    """Run the receiver until SIGINT/SIGTERM, then shut down gracefully (see `ReconcileService`)."""
    service = ReconcileService(engine, every=reconcile_every, drain_timeout=drain_timeout)
    app = create_app(WebhookReceiver(secret, service.submit), service)
    listener = listen(host, port)
    announce(f"listening on {url_of(listener)}")
    http_server(app).run(sockets=[listener])
