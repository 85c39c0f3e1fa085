"""SageMaker's wire protocol (AWS JSON 1.1) in front of a ``RegistryBackend``.

A request is ``POST /`` with ``X-Amz-Target: SageMaker.<Operation>`` and a JSON object body; the answer is a
JSON object with timestamps as epoch seconds (what botocore's JSON parser expects), or an error
``{"__type": <code>, "message": <text>}`` with HTTP 400. The region and the caller's access key id are read
from the SigV4 credential scope of the ``Authorization`` header
(``Credential=<access key id>/<date>/<region>/sagemaker/aws4_request``), so one backend can serve clients
of several regions and tell a reviewer's client from the pipeline's by its access key. Signatures are not
checked.

``answer`` is shared by the in-process router (botocore's ``before-send`` event) and the WSGI app used by
the server, so both modes speak exactly the same protocol.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request, Response

from .backend import RegistryBackend
from .errors import EmulatorError, SerializationError, UnknownOperationError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "SageMaker."
DEFAULT_REGION = "us-east-1"
_CREDENTIAL_SCOPE = re.compile(r"Credential=(?P<access_key_id>[^/,\s]+)/\d{8}/(?P<region>[^/]+)/")


@dataclass(frozen=True)
class Signer:
    """Who signed a request (``None``: unsigned) and for which region, from its SigV4 credential scope."""

    access_key_id: str | None
    region: str


@dataclass(frozen=True)
class WireResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def answer(
    backend: RegistryBackend, target: str | None, body: bytes, authorization: str | None
) -> WireResponse:
    """Answer one SageMaker JSON request as SageMaker would."""
    try:
        if target is None or not is_sagemaker(target):
            raise UnknownOperationError(f"Unknown target {target!r}: expected SageMaker.<Operation>")
        signer = signer_of(authorization)
        operation = target[len(TARGET_PREFIX) :]
        result = backend.handle(operation, _parse(body), signer.region, signer.access_key_id)
    except EmulatorError as error:
        return _response(error.status, {"__type": error.code, "message": error.message})
    return _response(200, result)


def signer_of(authorization: str | None) -> Signer:
    """The access key id and region of a SigV4 ``Authorization`` header (unsigned: none, ``us-east-1``)."""
    match = _CREDENTIAL_SCOPE.search(authorization or "")
    return Signer(match["access_key_id"], match["region"]) if match else Signer(None, DEFAULT_REGION)


def region_of(authorization: str | None) -> str:
    """The region a SigV4-signed request was signed for (``us-east-1`` if unsigned)."""
    return signer_of(authorization).region


def is_sagemaker(target: str | None) -> bool:
    """Whether an ``X-Amz-Target`` header names a SageMaker operation."""
    return target is not None and target.startswith(TARGET_PREFIX)


class SageMakerApp:
    """A WSGI app answering SageMaker JSON requests from ``backend``."""

    def __init__(self, backend: RegistryBackend) -> None:
        self.backend = backend

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        reply = answer(
            self.backend,
            request.headers.get("X-Amz-Target"),
            request.get_data(),
            request.headers.get("Authorization"),
        )
        response = Response(reply.body, status=reply.status, headers=reply.headers)
        return response(environ, start_response)


def _parse(body: bytes) -> object:
    if not body.strip():
        return {}
    try:
        params = json.loads(body)
    except ValueError as error:
        raise SerializationError(f"The request body is not valid JSON: {error}") from None
    if not isinstance(params, dict):
        raise SerializationError("The request body must be a JSON object.")
    return params


def _response(status: int, payload: dict[str, object]) -> WireResponse:
    headers = {"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": str(uuid.uuid4())}
    return WireResponse(status, headers, json.dumps(payload, default=_epoch).encode())


def _epoch(value: object) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")  # pragma: no cover - a backend bug
