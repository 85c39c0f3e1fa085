"""Webhook signatures: compatible with MLflow's signer, and strict about everything a forger controls."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature

from mlflow_sagemaker_registry.config import Settings, load_settings
from mlflow_sagemaker_registry.errors import ConfigError
from mlflow_sagemaker_registry.triggers.webhook.signature import (
    DEFAULT_WINDOW_SECONDS,
    SIGNATURE_HEADER,
    SignatureError,
    SignedHeaders,
    read_headers,
    sign,
    signed_headers,
    verify,
)

SECRET = "s3cret"
BODY = b'{"entity": "model_version", "action": "created", "data": {"name": "churn \\u00fc"}}'
NOW = 1_750_000_000


def headers(secret: str = SECRET, body: bytes = BODY, timestamp: int = NOW) -> SignedHeaders:
    return read_headers(signed_headers(secret, body, "d-1", str(timestamp)))


def test_sign_matches_mlflows_own_signer() -> None:
    # MLflow's private signer, so that a change of MLflow's scheme fails here first.
    assert sign(SECRET, "d-1", str(NOW), BODY) == _generate_hmac_signature(
        SECRET, "d-1", str(NOW), BODY.decode()
    )


def test_verify_accepts_an_authentic_fresh_delivery() -> None:
    verify(SECRET, headers(), BODY, now=NOW)


@pytest.mark.parametrize(
    ("secret", "body"),
    [("wrong", BODY), (SECRET, BODY + b" "), (SECRET, BODY.replace(b"churn", b"fraud"))],
    ids=["wrong secret", "body extended", "body altered"],
)
def test_verify_refuses_a_wrong_secret_or_an_altered_body(secret: str, body: bytes) -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, headers(secret), body, now=NOW)


def test_the_delivery_id_and_timestamp_are_signed() -> None:
    signed = headers()
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, SignedHeaders("d-2", signed.timestamp, signed.signature), BODY, now=NOW)
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, SignedHeaders(signed.delivery_id, str(NOW + 1), signed.signature), BODY, now=NOW)


@pytest.mark.parametrize(
    ("offset", "message"),
    [(DEFAULT_WINDOW_SECONDS + 1, "301 s old"), (-DEFAULT_WINDOW_SECONDS - 1, "301 s in the future")],
)
def test_verify_refuses_timestamps_outside_the_window(offset: int, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify(SECRET, headers(timestamp=NOW - offset), BODY, now=NOW)


@pytest.mark.parametrize("offset", [DEFAULT_WINDOW_SECONDS, -DEFAULT_WINDOW_SECONDS])
def test_verify_accepts_the_edges_of_the_window(offset: int) -> None:
    verify(SECRET, headers(timestamp=NOW - offset), BODY, now=NOW)


def test_one_matching_signature_among_several_is_enough() -> None:
    signed = headers()
    rotated = f"v1,{'A' * 44} {signed.signature} v2,whatever"
    verify(SECRET, SignedHeaders(signed.delivery_id, signed.timestamp, rotated), BODY, now=NOW)


@pytest.mark.parametrize("signature", ["v2,abc", "abc", "v1"], ids=["other version", "no version", "bare"])
def test_a_header_without_a_v1_signature_is_refused(signature: str) -> None:
    with pytest.raises(SignatureError, match="no v1 signature"):
        verify(SECRET, SignedHeaders("d-1", str(NOW), signature), BODY, now=NOW)


def test_read_headers_takes_the_three_headers_as_sent() -> None:
    sent = signed_headers(SECRET, BODY, "d-1", str(NOW))
    assert read_headers(sent) == SignedHeaders("d-1", str(NOW), sent[SIGNATURE_HEADER])


@pytest.mark.parametrize("missing", ["X-MLflow-Delivery-Id", "X-MLflow-Timestamp", "X-MLflow-Signature"])
def test_read_headers_refuses_a_missing_or_empty_header(missing: str) -> None:
    sent = signed_headers(SECRET, BODY, "d-1", str(NOW))
    with pytest.raises(SignatureError, match="missing"):
        read_headers({k: v for k, v in sent.items() if k != missing})
    with pytest.raises(SignatureError, match="missing"):
        read_headers({**sent, missing: ""})


@pytest.mark.parametrize("timestamp", ["1.5", "-1", "2025-01-01T00:00:00Z", " 1"])
def test_read_headers_refuses_a_timestamp_that_is_not_unix_seconds(timestamp: str) -> None:
    with pytest.raises(SignatureError, match="not unix seconds"):
        read_headers(signed_headers(SECRET, BODY, "d-1", timestamp))


def test_require_secret_names_the_variable() -> None:
    assert Settings(webhook_secret="k").require_webhook_secret() == "k"
    with pytest.raises(ConfigError, match="MLSYNC_WEBHOOK_SECRET"):
        Settings(webhook_secret="").require_webhook_secret()


def test_the_secret_is_not_in_the_settings_repr() -> None:
    assert "k3y" not in repr(Settings(webhook_secret="k3y"))


# -- rotation: the previous secrets -------------------------------------------------------------

OLD, OLDER = "old-s3cret", "older-s3cret"


def test_verify_says_which_secret_signed() -> None:
    assert verify(SECRET, headers(), BODY, now=NOW, previous=(OLD, OLDER)) == 0
    assert verify(SECRET, headers(OLD), BODY, now=NOW, previous=(OLD, OLDER)) == 1
    assert verify(SECRET, headers(OLDER), BODY, now=NOW, previous=(OLD, OLDER)) == 2


def test_a_previous_secret_is_refused_once_it_is_dropped() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, headers(OLD), BODY, now=NOW)
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, headers("neither"), BODY, now=NOW, previous=(OLD,))


def test_the_window_is_the_same_for_a_previous_secret() -> None:
    stale = headers(OLD, timestamp=NOW - DEFAULT_WINDOW_SECONDS - 1)
    with pytest.raises(SignatureError, match="301 s old"):
        verify(SECRET, stale, BODY, now=NOW, previous=(OLD,))


def test_every_secret_is_compared_with_every_signature_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A match on the current secret and the first signature must not cut the work short: the time
    # taken would tell an attacker how close a guess came.
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    signed = headers()
    several = SignedHeaders(signed.delivery_id, signed.timestamp, f"{signed.signature} v1,{'A' * 44}")

    assert verify(SECRET, several, BODY, now=NOW, previous=(OLD, OLDER)) == 0
    assert len(compared) == 3 * 2


def test_previous_secrets_come_comma_separated_from_the_environment_or_as_an_array(tmp_path: Path) -> None:
    from_env = load_settings(env={"MLSYNC_WEBHOOK_PREVIOUS_SECRETS": f" {OLD} ,{OLDER},"}, cwd=tmp_path)
    assert from_env.webhook_previous_secrets == (OLD, OLDER)
    (tmp_path / "mlsync.toml").write_text(f'webhook_previous_secrets = ["{OLD}"]\n')
    assert load_settings(env={}, cwd=tmp_path).webhook_previous_secrets == (OLD,)
    assert load_settings(env={}, cwd=tmp_path / "nowhere").webhook_previous_secrets == ()


def test_an_empty_previous_secret_is_refused(tmp_path: Path) -> None:
    # An empty HMAC key is one anybody can sign with.
    (tmp_path / "mlsync.toml").write_text(f'webhook_previous_secrets = ["{OLD}", " "]\n')
    with pytest.raises(ConfigError, match="previous webhook secret is empty"):
        load_settings(env={}, cwd=tmp_path)


def test_the_previous_secrets_are_not_in_the_settings_repr() -> None:
    assert OLD not in repr(Settings(webhook_secret="k3y", webhook_previous_secrets=(OLD,)))
