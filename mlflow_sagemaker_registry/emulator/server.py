"""One loopback HTTP server for SageMaker (this emulator), S3 and STS (moto), plus a control API.

Requests whose ``X-Amz-Target`` starts with ``SageMaker.`` go to our WSGI app; every other request goes to
moto's own server app, which tells S3 from STS by the SigV4 credential scope. Point boto3 at it with
``AWS_ENDPOINT_URL=http://127.0.0.1:<port>`` (or ``endpoint_url=``) and all three services work.

The control API lets tests and benchmarks in another process use the backend as in process:

    GET  /_emulator/health   {"ok": true}
    GET  /_emulator/calls    {"calls": [{"operation", "params", "region", "error", "faults"}, ...]}
    GET  /_emulator/events   {"events": [<EventBridge event>, ...]}, oldest first
    POST /_emulator/reset    forget all SageMaker state, calls, faults and events
    POST /_emulator/faults   {"operation": ..., "code": ..., "times": ..., "after_apply": ...}
    POST /_emulator/faults/<kind>   a fault rule: rate, denied_group, delay, throttle or latency (faults.py)
    DELETE /_emulator/faults forget every fault rule, end the waits, back to the default latency and throttle

The latency (``--latency-ms``, ``POST /_emulator/faults/latency``) applies to every request but the
control API's: the backend waits it for SageMaker's, this app before handing S3's and STS's to moto. The
server answers each connection in a thread of its own, so the waits of concurrent clients overlap.

The events are the ``SageMaker Model Package State Change`` events SageMaker would have sent to
EventBridge, so a test in another process can hand them to a Lambda handler as ``handler(event, None)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from .backend import RegistryBackend
from .wire import SageMakerApp, is_sagemaker

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

CONTROL_PREFIX = "/_emulator/"
_FAULT_RULES = "faults/"


class EmulatorApp:
    """The WSGI app of the server: control API, SageMaker, then moto for everything else."""

    def __init__(self, backend: RegistryBackend) -> None:
        self.backend = backend
        self._sagemaker = SageMakerApp(backend)
        self._moto: WSGIApplication = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self._control(Request(environ))(environ, start_response)
        if is_sagemaker(environ.get("HTTP_X_AMZ_TARGET")):
            return self._sagemaker(environ, start_response)
        self.backend.wait_latency()
        return self._moto(environ, start_response)

    def _control(self, request: Request) -> Response:
        route = (request.method, request.path[len(CONTROL_PREFIX) :])
        if route == ("GET", "health"):
            return _json({"ok": True})
        if route == ("GET", "calls"):
            return _json({"calls": [call.to_json() for call in self.backend.calls()]})
        if route == ("GET", "events"):
            return _json({"events": self.backend.events()})
        if route == ("POST", "reset"):
            self.backend.reset()
            return _json({})
        if route == ("POST", "faults"):
            fault: dict[str, Any] = request.get_json(force=True)
            self.backend.inject_fault(fault.pop("operation"), **fault)
            return _json({})
        if route == ("DELETE", "faults"):
            self.backend.clear_faults()
            return _json({})
        method, path = route
        if method == "POST" and path.startswith(_FAULT_RULES):
            try:
                self.backend.add_fault(path[len(_FAULT_RULES) :], request.get_json(force=True))
            except ValueError as exc:  # the message says what is wrong with the rule
                return _json({"message": str(exc)}, status=400)
            return _json({})
        return _json({"message": f"no control route {request.method} {request.path}"}, status=404)


class _QuietHandler(MotoRequestHandler):
    """moto's handler (it keeps S3 metadata headers intact) without a log line per request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def make_emulator_server(
    host: str, port: int, backend: RegistryBackend | None = None, *, verbose: bool = False
) -> BaseWSGIServer:
    """A threaded server for ``EmulatorApp``; ``port`` 0 picks a free port (see ``server.server_port``)."""
    handler = MotoRequestHandler if verbose else _QuietHandler
    app = EmulatorApp(backend or RegistryBackend())
    return make_server(host, port, app, threaded=True, request_handler=handler)


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")
