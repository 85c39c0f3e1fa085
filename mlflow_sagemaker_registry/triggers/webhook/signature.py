"""MLflow webhook signatures: the secret, signing and verifying (pure: no I/O, the clock passed in).

MLflow signs each delivery as `v1,<base64 HMAC-SHA256 of "<delivery id>.<timestamp>.<raw body>">` with
the webhook's secret (mlflow/webhooks/delivery.py), sending the id and the unix timestamp as headers.
Because the id and the timestamp are inside the signed content, an attacker cannot re-date a captured
delivery: checking the timestamp against a window bounds how long a replay is possible at all, and
remembering delivery ids for that window (the receiver's job) closes it.

During a secret rotation the receiver also accepts the previous secrets (`verify(previous=...)`): the
webhook signs with the new secret as soon as `mlsync webhook install` gives it one, while deliveries
signed with the old one may still be in flight or retried (docs/webhooks.md, "Rotating the secret").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SIGNATURE_VERSION = "v1"
DEFAULT_WINDOW_SECONDS = 300
"""How far a delivery's timestamp may be from our clock, either way (Standard Webhooks' default).

MLflow retries a delivery with the same headers (3 retries, 1-4 s apart, each attempt timing out after
30 s by default), so five minutes covers every retry and some clock skew without keeping replays
possible for long.
"""
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
SIGNATURE_HEADER = "X-MLflow-Signature"


class SignatureError(ValueError):
    """A delivery is not authentic or not fresh; the message says why, for the log only."""


@dataclass(frozen=True)
class SignedHeaders:
    """The three headers MLflow signs a delivery with, as sent."""

    delivery_id: str
    timestamp: str
    signature: str

    @property
    def unix_time(self) -> int:
        return int(self.timestamp)


def read_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """The signing headers of a delivery (names case-insensitive if `headers` is, as HTTP's are).

    Raises:
        SignatureError: one is missing, or the timestamp is not unix seconds.
    """
    values = [headers.get(name, "") for name in (DELIVERY_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)]
    if not all(values):
        raise SignatureError(f"missing {DELIVERY_ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
    signed = SignedHeaders(*values)
    if not signed.timestamp.isdigit():
        raise SignatureError(f"{TIMESTAMP_HEADER} is not unix seconds")
    return signed


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The `X-MLflow-Signature` value MLflow sends for this delivery."""
    content = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(secret: str, body: bytes, delivery_id: str, timestamp: str) -> dict[str, str]:
    """The headers MLflow sends with `body`: for tests, benchmarks and tools that play MLflow's part."""
    return {
        DELIVERY_ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, delivery_id, timestamp, body),
    }


def verify(
    secret: str,
    signed: SignedHeaders,
    body: bytes,
    *,
    now: float,
    window: float = DEFAULT_WINDOW_SECONDS,
    previous: Sequence[str] = (),
) -> int:
    """Accept a delivery signed with `secret` (or one of the `previous` secrets) at most `window` seconds
    from `now` either way, or raise.

    `previous` is for a rotation: MLflow signs with the webhook's one secret, and once the webhook is
    given the new one, deliveries signed with the old one may still be in flight or retried for a while.
    The signature header may carry several space-separated signatures (Standard Webhooks allows it
    during a key rotation); one matching `v1` signature is enough. Every secret is compared with every
    signature, each in constant time, so the time taken tells neither which secret nor which signature
    matched. The window is the same whichever secret signed.

    Returns:
        Which secret matched: 0 for `secret`, n for `previous[n - 1]` (to tell when the previous
        secrets are no longer used).

    Raises:
        SignatureError: the timestamp is outside the window, or no signature matches any secret.
    """
    skew = now - signed.unix_time
    if abs(skew) > window:
        age = "old" if skew > 0 else "in the future"
        raise SignatureError(f"timestamp is {abs(skew):.0f} s {age} (window {window:.0f} s)")
    prefix = f"{SIGNATURE_VERSION},"
    candidates = [c.encode() for c in signed.signature.split() if c.startswith(prefix)]
    if not candidates:
        raise SignatureError(f"no {SIGNATURE_VERSION} signature in {SIGNATURE_HEADER}")
    keys = (secret, *previous)
    expected = [sign(key, signed.delivery_id, signed.timestamp, body).encode() for key in keys]
    # Every secret against every candidate, never stopping at a match, so the time taken does not tell
    # which one matched.
    comparisons = [[hmac.compare_digest(e, candidate) for candidate in candidates] for e in expected]
    matched = [any(row) for row in comparisons]
    if not any(matched):
        raise SignatureError("signature does not match (wrong secret, or the body was altered)")
    return matched.index(True)
