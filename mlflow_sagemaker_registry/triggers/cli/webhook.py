"""`mlsync serve` and `mlsync webhook install|test`: the shell over the webhook receiver.

Registered on the `mlsync` group at the end of cli.py, and sharing its group options, `Settings` and
exit codes. The receiver (uvicorn, Starlette: the `serve` extra) and mlflow are imported only when a
command runs, so the other commands neither pay for them nor need the extra.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

import click

from ...extras import SERVE, needs
from ..webhook.install import DEFAULT_NAME, install_webhook, send_test_event
from ..webhook.payload import EVENTS
from .shell import Context, errors

DEFAULT_PORT = 8000
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NUMBER = re.compile(r"\d+(\.\d+)?")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str) -> float:
    """Seconds in `90`, `90s`, `5m`, `1h30m` or `1.5d`.

    Raises:
        ValueError: anything else.
    """
    text = text.strip()
    if _NUMBER.fullmatch(text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"{text!r} is not a duration: use seconds or e.g. 30s, 5m, 1h30m, 1d")
    return sum(float(number) * _SECONDS[unit] for number, unit in parts)


def _duration(allow_zero: bool) -> Callable[[click.Context, click.Parameter, str | None], float | None]:
    """A click callback turning an option's text into seconds (None when the option is not given)."""

    def convert(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
        if value is None:
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        if seconds == 0 and not allow_zero:
            raise click.BadParameter("must be more than zero")
        return seconds

    return convert


def _events(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """`--events a,b --events c` as (a, b, c); all of `EVENTS` when none is given."""
    events = tuple(e.strip() for value in values for e in value.split(",") if e.strip())
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: choose from {', '.join(EVENTS)}")
    return events or EVENTS


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
@click.option(
    "--reconcile-every",
    metavar="DURATION",
    callback=_duration(allow_zero=False),
    help="Also reconcile every model this often (e.g. 10m): stage transitions fire no webhook.",
)
@click.option(
    "--drain-timeout",
    metavar="DURATION",
    callback=_duration(allow_zero=True),
    default="30s",
    show_default=True,
    help="On shutdown, how long queued reconciles may still start (running ones always finish).",
)
@click.pass_obj
def serve(obj: Context, host: str, port: int, reconcile_every: float | None, drain_timeout: float) -> None:
    """Receive MLflow's signed webhooks on POST /webhook and reconcile the models they touch.

    The secret is MLSYNC_WEBHOOK_SECRET; during a rotation, deliveries signed with one of
    MLSYNC_WEBHOOK_PREVIOUS_SECRETS (comma-separated) are accepted too. A full reconcile runs at
    startup (catching up on what changed while the receiver was down) and every --reconcile-every. With
    MLSYNC_EVENTS_TOKEN set, SageMaker's EventBridge events (through an API destination) are received on
    POST /events too. Stops gracefully on SIGINT or SIGTERM.
    """
    with errors():
        with needs(SERVE, "mlsync serve"):
            from ..webhook.receiver import serve as run
        settings = obj.settings()
        secret = settings.require_webhook_secret()
        settings.require_s3_prefix()
        run(
            obj.engines(settings),
            secret,
            host=host,
            port=port,
            reconcile_every=reconcile_every,
            drain_timeout=drain_timeout,
            announce=click.echo,
            events_token=settings.events_token,
            previous_secrets=settings.webhook_previous_secrets,
        )


@click.group()
def webhook() -> None:
    """Manage mlsync's webhook on the MLflow tracking server (point --tracking-uri at the server)."""


@webhook.command()
@click.option(
    "--url", required=True, help="Where MLflow posts: the receiver's https URL, ending in /webhook."
)
@click.option(
    "--events",
    metavar="EVENT[,EVENT...]",
    multiple=True,
    callback=_events,
    help="Events to subscribe to, repeated or comma-separated (default: all six mlsync handles).",
)
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="The webhook's name on the server.")
@click.pass_obj
def install(obj: Context, url: str, events: tuple[str, ...], name: str) -> None:
    """Create the webhook, or update it (URL, events, secret) when one with this name exists."""
    with errors():
        installed = install_webhook(obj.settings(), url, events, name)
    action = "created" if installed.created else "updated"
    click.echo(f"{action} webhook {name!r} ({installed.webhook_id}): {url} on {', '.join(events)}")


@webhook.command("test")
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="The webhook's name on the server.")
@click.option("--event", type=click.Choice(EVENTS), help="The event to send (default: the webhook's first).")
@click.pass_obj
def send_test(obj: Context, name: str, event: str | None) -> None:
    """Have MLflow send the webhook a signed example event; exit 1 unless the receiver accepts it."""
    with errors():
        result = send_test_event(obj.settings(), name, event)
    if result.success:
        click.echo(f"delivered: HTTP {result.status} {result.body}".rstrip())
        return
    click.echo(f"failed: HTTP {result.status or '-'} {result.error or result.body}".rstrip(), err=True)
    sys.exit(1)  # cli.EXIT_FAILED, not importable here: cli.py imports this module
