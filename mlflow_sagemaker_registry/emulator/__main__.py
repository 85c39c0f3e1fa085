"""``python -m mlflow_sagemaker_registry.emulator --host 127.0.0.1 --port N``: serve the emulator.

The first line on stdout is ``listening on http://<host>:<port>`` once the socket accepts connections;
``EmulatorProcess`` reads it to learn the port when started with ``--port 0``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from .server import make_emulator_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlflow_sagemaker_registry.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port to bind, 0: any free one (default 5000)")
    parser.add_argument("--verbose", action="store_true", help="log every request on stderr")
    args = parser.parse_args(argv)
    server = make_emulator_server(args.host, args.port, verbose=args.verbose)
    signal.signal(signal.SIGTERM, _exit)
    print(f"listening on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


if __name__ == "__main__":
    main()
