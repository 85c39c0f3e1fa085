"""``python -m mlflow_sagemaker_registry.emulator --host 127.0.0.1 --port N``: serve the emulator.

The first line on stdout is ``listening on http://<host>:<port>`` once the socket accepts connections;
``EmulatorProcess`` reads it to learn the port when started with ``--port 0``. With ``--events-file PATH``
each EventBridge event the emulator emits is also appended to PATH as one JSON line, for a consumer that
is neither in this process nor able to poll ``GET /_emulator/events``.

``--latency-ms`` and ``--throttle-rate``/``--throttle-burst``/``--throttle-operations`` set the conditions
the server starts with and comes back to on ``clear_faults`` and ``reset``: a fixed wait for every
request (SageMaker, S3, STS), as real round trips to AWS take, and a token bucket answering
``ThrottlingException`` once it is empty, as SageMaker's request limits do.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from .backend import RegistryBackend
from .events import Event
from .faults import EVERY_OPERATION, Throttle
from .server import make_emulator_server


def main(argv: list[str] | None = None, prog: str = "python -m mlflow_sagemaker_registry.emulator") -> None:
    """Serve until SIGINT or SIGTERM; `prog` names the command in `--help` (`mlsync emulator` runs this)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port to bind, 0: any free one (default 5000)")
    parser.add_argument("--verbose", action="store_true", help="log every request on stderr")
    parser.add_argument("--events-file", type=Path, help="append each EventBridge event to this file")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="milliseconds each request waits (default 0)"
    )
    parser.add_argument(
        "--throttle-rate", type=float, help="throttle SageMaker requests beyond this many a second"
    )
    parser.add_argument(
        "--throttle-burst", type=int, help="requests allowed at once (default: the rate, rounded up)"
    )
    parser.add_argument(
        "--throttle-operations",
        nargs="+",
        default=[EVERY_OPERATION],
        metavar="OPERATION",
        help=f"the SageMaker operations to throttle (default {EVERY_OPERATION!r}: all)",
    )
    args = parser.parse_args(argv)
    if args.throttle_rate is None and args.throttle_burst is not None:
        parser.error("--throttle-burst needs --throttle-rate")
    throttle = None
    if args.throttle_rate is not None:
        operations = args.throttle_operations
        chosen = EVERY_OPERATION if operations == [EVERY_OPERATION] else tuple(operations)
        throttle = Throttle(args.throttle_rate, args.throttle_burst, chosen)
    try:
        backend = RegistryBackend(latency_ms=args.latency_ms, throttle=throttle)
    except ValueError as exc:  # the message names the value out of range
        parser.error(str(exc))
    if args.events_file is not None:
        backend.subscribe(_appender(args.events_file))
    server = make_emulator_server(args.host, args.port, backend, verbose=args.verbose)
    signal.signal(signal.SIGTERM, _exit)
    print(f"listening on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _appender(path: Path) -> Callable[[Event], None]:
    """A subscriber appending each event to ``path`` as one JSON line; the file is closed after each, so
    the line is complete on disk by the time the request that emitted the event is answered."""

    def append(event: Event) -> None:
        with path.open("a", encoding="utf-8") as lines:
            lines.write(json.dumps(event) + "\n")

    return append


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


if __name__ == "__main__":
    main()
