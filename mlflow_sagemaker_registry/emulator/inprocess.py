"""Emulate AWS inside the test process: SageMaker from our backend, S3 and STS from moto, no network.

botocore fires ``before-send.<service>.<Operation>`` just before sending each request, and the first handler
that returns a response wins. moto answers on the generic ``before-send`` event; our router listens on
``before-send.sagemaker``, which botocore calls first because it is more specific, so the first answer to
every SageMaker request is ours. botocore still calls the remaining handlers, so the router then points the
request at an ``.invalid`` URL that moto does not serve, and moto passes. Both handlers are registered in
``botocore.handlers.BUILTIN_HANDLERS`` (at import, switched on by ``emulated_aws``), so every session created
afterwards, including boto3's default session that ``mock_aws`` resets, carries them.

As a safety net, moto is told to serve only ``moto_services``: a SageMaker request from a client that was
created before this module was imported would fail loudly instead of reaching moto's laxer SageMaker.

The backend's latency (``RegistryBackend(latency_ms=...)``, ``latency``) is waited by the backend for
SageMaker requests and by a generic ``before-send`` handler for every other service's, as the server
waits it before handing those to moto.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.handlers import BUILTIN_HANDLERS
from moto import mock_aws

from . import wire
from .backend import RegistryBackend

DEFAULT_MOTO_SERVICES = ("s3", "sts")
ANSWERED_URL = "http://answered-by-mlsync-emulator.invalid/"


class _Body(io.BytesIO):
    """A response body botocore can stream, as urllib3's would."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.read()


class _SageMakerRouter:
    """The ``before-send.sagemaker`` handler: answers from ``backend`` while one is set."""

    def __init__(self) -> None:
        self.backend: RegistryBackend | None = None

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        backend = self.backend
        if backend is None:
            return None
        reply = wire.answer(
            backend,
            _header(request, "X-Amz-Target"),
            _bytes(request.body),
            _header(request, "Authorization"),
        )
        url = request.url
        # botocore still calls the other before-send handlers; this URL makes moto's pass on the request.
        request.url = ANSWERED_URL
        headers = HTTPHeaders()
        for name, value in reply.headers.items():
            headers[name] = value
        return AWSResponse(url, reply.status, headers, _Body(reply.body))


_SAGEMAKER_SENDS = "before-send.sagemaker"


def _wait_latency(event_name: str, **_: Any) -> None:
    """The ``before-send`` handler making the requests moto answers wait the backend's latency too."""
    backend = _ROUTER.backend
    if backend is not None and not event_name.startswith(f"{_SAGEMAKER_SENDS}."):  # the backend waits those
        backend.wait_latency()


_ROUTER = _SageMakerRouter()
_ACTIVATION = threading.Lock()
BUILTIN_HANDLERS.append((_SAGEMAKER_SENDS, _ROUTER))
BUILTIN_HANDLERS.append(("before-send", _wait_latency))


@contextlib.contextmanager
def emulated_aws(
    backend: RegistryBackend | None = None, *, moto_services: Sequence[str] | None = DEFAULT_MOTO_SERVICES
) -> Iterator[RegistryBackend]:
    """Route the SageMaker requests of every boto3 client created inside to ``backend``, the rest to moto.

    Yields the backend (a new one unless given) so the test can read its call log. ``moto_services`` are
    the moto services allowed besides (``None``: all of them). Only one emulation can be active at a time.
    """
    backend = backend or RegistryBackend()
    with _ACTIVATION:
        if _ROUTER.backend is not None:
            raise RuntimeError("emulated_aws() is already active; nest the backend, not the emulation")
        _ROUTER.backend = backend
    try:
        services = None if moto_services is None else list(moto_services)
        with mock_aws(config={"core": {"service_whitelist": services}}):
            yield backend
    finally:
        _ROUTER.backend = None


def _header(request: AWSPreparedRequest, name: str) -> str | None:
    value = request.headers.get(name)
    return value.decode() if isinstance(value, bytes) else value


def _bytes(body: object) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    raise TypeError(f"unexpected request body {type(body).__name__}")  # pragma: no cover - always bytes
