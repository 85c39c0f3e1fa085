"""`mlsync emulator`: serve the SageMaker emulator on loopback, for trying mlsync and for testing with it.

The emulator is a supported part of mlsync (docs/emulator.md): the demo, the test suite and the
benchmarks run against it, and so can a team's own CI. Its dependencies (moto for S3 and STS, werkzeug,
regex) are the `emulator` extra, so a plain install stays light; this command says so when they are
missing. The options are `python -m mlflow_sagemaker_registry.emulator`'s (one implementation of both).
"""

from __future__ import annotations

import click

from ...extras import EMULATOR, needs
from .shell import errors


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.pass_context
def emulator(ctx: click.Context) -> None:
    """Serve a SageMaker Model Registry emulator (with S3 and STS) on 127.0.0.1 (`mlsync emulator --help`).

    Point boto3 at it with AWS_ENDPOINT_URL=http://127.0.0.1:<port>. Needs the `emulator` extra.
    """
    with errors(), needs(EMULATOR, "mlsync emulator"):
        from ...emulator.__main__ import main
    main(list(ctx.args), prog="mlsync emulator")
