"""Every rule of the pure mapping (docs/mapping.md), checked against SageMaker's own limits.

The limits are restated here from botocore's sagemaker service-2.json (shape names in the comments) and
checked with the `regex` module's `\\p{..}` classes, not with the helpers under test, so a test fails if
the mapping drifts away from the API.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
import random
import re
import struct
import unicodedata
from typing import Any

import pytest
import regex

from mlflow_sagemaker_registry.config import ApprovalRules, Settings
from mlflow_sagemaker_registry.domain import (
    ApprovalStatus,
    Dataset,
    Document,
    Lifecycle,
    ModelCard,
    PackageSpec,
    SourceModel,
    SourceVersion,
)
from mlflow_sagemaker_registry.errors import ConfigError, MappingError
from mlflow_sagemaker_registry.mapping import desired_group, desired_package, sync_status
from mlflow_sagemaker_registry.mapping.approval import decide_approval, settle_approval
from mlflow_sagemaker_registry.mapping.documents import (
    document_uri,
    headline_metric,
    json_metric,
    make_document,
    quality_statistics,
    run_record,
)
from mlflow_sagemaker_registry.mapping.identity import (
    KEY_MODEL,
    KEY_SERVER,
    KEY_VERSION,
    client_token,
    decode_identity,
    encode_identity,
    group_name,
    identity_key,
    identity_of,
    legacy_group_name,
)
from mlflow_sagemaker_registry.mapping.limits import api_length, fits_key, fits_value, is_metadata_text
from mlflow_sagemaker_registry.mapping.metadata import (
    DATASET_PREFIX,
    KEY_DOCUMENT,
    KEY_OMITTED,
    KEY_RUN,
    KEY_TRAINING_DATASET,
    KEY_TRAINING_DATASET_VERSION,
    KEY_USER,
    METRIC_PREFIX,
    PARAM_PREFIX,
    customer_metadata,
    format_metric,
    metadata_properties,
    owned_keys,
)
from mlflow_sagemaker_registry.mapping.model_card import KEY_MODEL_CARD, card_digest, model_card

# botocore sagemaker/2017-07-24/service-2.json
ENTITY_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")  # EntityName, max 63
METADATA_CHAR = regex.compile(r"[\p{L}\p{Z}\p{N}_.:/=+\-@]")  # CustomerMetadataKey / -Value
ENTITY_DESCRIPTION = regex.compile(r"[\p{L}\p{M}\p{Z}\p{S}\p{N}\p{P}]*")  # EntityDescription, max 1024
CLIENT_TOKEN = re.compile(r"[a-zA-Z0-9-]{1,36}")  # ClientToken
CONTENT_DIGEST = re.compile(r"[Ss][Hh][Aa]256:[0-9a-fA-F]{64}")  # ContentDigest

PREFIX = "s3://bucket/mlsync"
SOURCE = "sqlite:////srv/mlflow.db"
REJECTED_CHARS = "[](){},'\"%!#?~*&<>;$^|\\`\n\t\r"


def h8(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def valid_group(name: str) -> bool:
    return len(name) <= 63 and ENTITY_NAME.fullmatch(name) is not None


def valid_metadata(text: str, limit: int) -> bool:
    return 1 <= utf16(text) <= limit and all(METADATA_CHAR.fullmatch(ch) for ch in text)


def settings(**overrides: Any) -> Settings:
    return Settings(**{"s3_prefix": PREFIX, **overrides})


def version(**fields: Any) -> SourceVersion:
    return SourceVersion(**{"model_name": "churn", "version": "1", **fields})


def a_document() -> Document:
    return make_document(PREFIX, {"x": 1})


# --- group names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["churn", "fraud-model", "a1", "a--b", "x" * 63, "0"])
def test_a_valid_lowercase_group_name_is_kept_as_it_is(name: str) -> None:
    assert group_name(name) == name
    assert legacy_group_name(name) is None


def test_names_that_differ_only_in_case_get_groups_that_differ_ignoring_case() -> None:
    """SageMaker compares group names without case: `Churn` beside `churn` would be refused or merged."""
    names = ["churn", "Churn", "CHURN", "cHuRn"]
    groups = [group_name(name) for name in names]
    assert groups[0] == "churn"
    assert len({group.lower() for group in groups}) == len(names)
    assert all(group.startswith(name + "-") for name, group in zip(names[1:], groups[1:], strict=True))
    # The plain name such a model had before (mlsync < 0.2) is what the engine looks for on upgrade.
    assert legacy_group_name("Churn") == "Churn"
    assert legacy_group_name("Churn", "team") == "team-Churn"
    assert legacy_group_name("fraud model") is None  # it always had a hashed name


def test_prefix_is_joined_with_a_dash_when_the_result_is_valid() -> None:
    assert group_name("churn", "team-a") == "team-a-churn"


@pytest.mark.parametrize(
    ("name", "readable"),
    [
        ("my model", "my-model"),
        ("my_model", "my-model"),
        ("my.model", "my-model"),
        ("my  _. model", "my-model"),
        ("-leading and trailing-", "leading-and-trailing"),
        ("café", "cafe"),
        ("Ünïcode Ñame", "Unicode-Name"),
        ("x" * 64, "x" * 54),
    ],
)
def test_an_invalid_name_becomes_readable_plus_eight_hex_of_its_sha256(name: str, readable: str) -> None:
    assert group_name(name) == f"{readable}-{h8(name)}"


@pytest.mark.parametrize("name", ["模型", "", "___", "😀"])
def test_a_name_with_nothing_readable_becomes_mlflow_plus_hash(name: str) -> None:
    assert group_name(name) == f"mlflow-{h8(name)}"
    assert group_name(name, "team") == f"team-{h8(name)}"


def test_prefix_goes_before_the_readable_form() -> None:
    assert group_name("my model", "team") == f"team-my-model-{h8('my model')}"


def test_a_valid_name_too_long_with_its_prefix_is_cut_and_hashed() -> None:
    name = "x" * 60
    result = group_name(name, "team")
    assert result == f"team-{'x' * 49}-{h8(name)}"
    assert len(result) == 63


def test_runs_of_dashes_cannot_make_a_name_longer_than_63() -> None:
    # The pattern alone accepts any number of dashes; the 63-character limit is separate.
    name = "a" + "-" * 70 + "b"
    assert ENTITY_NAME.fullmatch(name)
    assert group_name(name) == f"a-b-{h8(name)}"


def test_a_cut_never_leaves_a_dash_before_the_hash() -> None:
    name = "x" * 53 + " y"  # the 54-character cut lands on the dash
    assert group_name(name) == f"{'x' * 53}-{h8(name)}"


def test_names_that_sanitize_alike_get_different_groups() -> None:
    names = ["my model", "my_model", "my.model", "my  model", "my-model!", "My Model"]
    groups = [group_name(n) for n in names]
    assert len(set(groups)) == len(names)
    assert all(g.lower().startswith("my-model-") for g in groups)


def _random_name(rng: random.Random) -> str:
    alphabet = "abcXYZ019-_. /:@()[]{}%'\"\n\tüéß模型😀\u00a0\u200d"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))


def test_every_generated_name_gives_a_valid_unique_group() -> None:
    rng = random.Random(20240601)
    names = {_random_name(rng) for _ in range(3000)} | {"a" * n for n in range(1, 130)}
    for prefix in ("", "p", "team-a", "x" * 31):
        groups: dict[str, str] = {}
        for name in names:
            result = group_name(name, prefix)
            assert valid_group(result), (name, prefix, result)
            if prefix:
                assert result.startswith(prefix + "-")
            assert groups.setdefault(result, name) == name, f"{name!r} and {groups[result]!r} share {result}"


# --- metadata character class and limits ----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["abc", "ABC xyz", "é", "模型", "١٢٣", "Ⅻ", "\u00a0", "_.:/=+-@", "s3://b/k=1+2@x", "Ωmega-3.5"],
)
def test_letters_numbers_separators_and_the_symbols_are_metadata_text(text: str) -> None:
    assert is_metadata_text(text)
    assert fits_value(text)
    assert fits_key(text)


@pytest.mark.parametrize("char", [*REJECTED_CHARS, "😀", "\u200d", "\x00", "€", "^"])
def test_brackets_commas_quotes_percent_and_controls_are_not(char: str) -> None:
    assert not is_metadata_text(f"a{char}b")
    assert not fits_value(f"a{char}b")
    assert not fits_key(f"a{char}b")


def test_the_character_class_is_exactly_sagemakers() -> None:
    for code in range(0x30000):
        char = chr(code)
        if unicodedata.category(char) in ("Cn", "Cs"):
            continue
        assert is_metadata_text(char) == bool(METADATA_CHAR.fullmatch(char)), hex(code)


def test_empty_text_fits_neither_key_nor_value() -> None:
    assert not fits_value("")
    assert not fits_key("")


def test_length_limits_key_128_value_256() -> None:
    assert fits_key("k" * 128)
    assert not fits_key("k" * 129)
    assert fits_value("v" * 256)
    assert not fits_value("v" * 257)


def test_lengths_count_utf16_units_like_sagemakers_java_front_end() -> None:
    astral = "\U00020000"  # CJK Extension B: a letter, two UTF-16 units
    assert unicodedata.category(astral) == "Lo"
    assert api_length(astral) == 2
    assert api_length("abc模型") == 5
    assert fits_value(astral * 128)
    assert not fits_value(astral * 129)
    assert fits_key(astral * 64)
    assert not fits_key(astral * 65)


# --- identity encoding ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["churn", "sqlite:////srv/mlflow.db", "模型 v2", "x" * 256])
def test_an_identity_that_fits_is_recorded_raw(text: str) -> None:
    assert encode_identity(text) == text
    assert decode_identity(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "my model (v2)",
        "b64:abc",
        "b64:",
        "b64:sha256=0123",
        "",
        "a,b",
        "https://user@host/x?y=1&z=%20",
        "(" * 150,
        "😀 emoji",
        "\U00020000 (x)",
    ],
)
def test_other_identities_are_base64_and_round_trip(text: str) -> None:
    encoded = encode_identity(text)
    assert encoded == "b64:" + base64.b64encode(text.encode()).decode()
    assert valid_metadata(encoded, 256)
    assert decode_identity(encoded) == text


def test_a_raw_value_starting_with_the_prefix_is_never_taken_as_encoded() -> None:
    assert encode_identity("b64:Y2h1cm4=") != "b64:Y2h1cm4="
    assert decode_identity(encode_identity("b64:Y2h1cm4=")) == "b64:Y2h1cm4="


@pytest.mark.parametrize("text", ["x" * 257, "model (x) " + "a" * 200, "😀" * 100])
def test_an_identity_too_long_to_encode_is_hashed_and_stays_hashed(text: str) -> None:
    encoded = encode_identity(text)
    assert encoded == "b64:sha256=" + hashlib.sha256(text.encode()).hexdigest()
    assert valid_metadata(encoded, 256)
    assert decode_identity(encoded) == encoded


def test_every_generated_identity_encodes_to_a_valid_value() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        text = _random_name(rng) * rng.randint(1, 3)
        encoded = encode_identity(text)
        assert valid_metadata(encoded, 256), text
        if not encoded.startswith("b64:sha256="):
            assert decode_identity(encoded) == text


def test_identity_key_is_what_identity_of_reads_back() -> None:
    assert identity_key(SOURCE, "churn", "3") == (SOURCE, "churn", "3")
    long_name = "model (x) " + "a" * 200
    for source, name in [(SOURCE, "churn"), (SOURCE, long_name), ("s" * 300, "a b (c)")]:
        v = version(model_name=name, version="3")
        metadata, _ = customer_metadata(v, source, a_document())
        assert identity_of(metadata) == identity_key(source, name, "3")
    assert identity_key(SOURCE, long_name, "3")[1] == encode_identity(long_name)


def test_identity_of_reads_the_three_keys() -> None:
    metadata = {KEY_SERVER: encode_identity("a (b)"), KEY_MODEL: "churn", KEY_VERSION: "4", "x": "y"}
    assert identity_of(metadata) == ("a (b)", "churn", "4")


@pytest.mark.parametrize("missing", [KEY_SERVER, KEY_MODEL, KEY_VERSION])
def test_identity_of_is_none_without_all_three_keys(missing: str) -> None:
    metadata = {KEY_SERVER: SOURCE, KEY_MODEL: "churn", KEY_VERSION: "4"}
    del metadata[missing]
    assert identity_of(metadata) is None


@pytest.mark.parametrize("broken", ["b64:Y", "b64:YQ", "b64:" + base64.b64encode(b"\xff\xfe").decode()])
def test_identity_of_is_none_for_undecodable_values(broken: str) -> None:
    assert identity_of({KEY_SERVER: SOURCE, KEY_MODEL: broken, KEY_VERSION: "4"}) is None


# --- client token -----------------------------------------------------------------------------------


def test_client_token_is_deterministic_and_fits_the_api() -> None:
    token = client_token(SOURCE, "churn", "1")
    assert token == client_token(SOURCE, "churn", "1")
    assert len(token) == 36
    assert CLIENT_TOKEN.fullmatch(token)


def test_client_token_differs_by_source_model_and_version() -> None:
    tokens = {
        client_token(SOURCE, "churn", "1"),
        client_token("other", "churn", "1"),
        client_token(SOURCE, "fraud", "1"),
        client_token(SOURCE, "churn", "2"),
        client_token(SOURCE, "churn", "11"),
        client_token(SOURCE + "c", "hurn", "1"),
    }
    assert len(tokens) == 6


def test_client_token_is_the_one_desired_package_uses() -> None:
    spec = desired_package(version(version="7"), "churn", SOURCE, settings())
    assert spec.client_token == client_token(SOURCE, "churn", "7")


# --- metrics ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        (1e-300, "1e-300"),
        (0.1, "0.1"),
        (-0.0, "-0.0"),
        (3.0, "3.0"),
        (1e300, "1e+300"),
        (5e-324, "5e-324"),
        (0.30000000000000004, "0.30000000000000004"),
    ],
)
def test_format_metric_spells_values_exactly(value: float, text: str) -> None:
    assert format_metric(value) == text
    assert fits_value(text)
    back = float(text)
    assert (math.isnan(back) and math.isnan(value)) or (
        back == value and math.copysign(1, back) == math.copysign(1, value)
    )


def test_format_metric_round_trips_every_bit_pattern() -> None:
    rng = random.Random(3)
    for _ in range(5000):
        value = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        text = format_metric(value)
        assert fits_value(text), text
        if math.isnan(value):
            assert text == "NaN"
        else:
            assert float(text) == value


def test_json_metric_keeps_finite_floats_and_spells_the_rest() -> None:
    assert json_metric(0.1) == 0.1
    assert json_metric(-2.5) == -2.5
    assert json_metric(math.nan) == "NaN"
    assert json_metric(math.inf) == "Infinity"
    assert json_metric(-math.inf) == "-Infinity"


# --- run record and documents -----------------------------------------------------------------------

PARAMS = {
    "lr": "0.01",
    "layers": "[64, 32]",
    "empty": "",
    "quote": 'say "hi", 50%',
    "multiline": "a\nb\r\n\tc",
    "unicode": "模型 😀 ü",
    "long": "z" * 10_000,
}
METRICS = {
    "nan": math.nan,
    "inf": math.inf,
    "ninf": -math.inf,
    "tiny": 1e-300,
    "tenth": 0.1,
    "negzero": -0.0,
    "big": 1.7976931348623157e308,
}


def _strict_loads(body: bytes) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(body, parse_constant=refuse)


def test_run_record_document_recovers_every_param_and_metric_exactly() -> None:
    v = version(
        run_id="abc123",
        description="first line\nsecond",
        params=PARAMS,
        metrics=METRICS,
        datasets=(
            Dataset(
                "train", "d1", "s3", '{"uri": "s3://data/train.csv"}', "training", (("version", "v1.0"),)
            ),
            Dataset("eval", "d2"),
        ),
        user="ana@example.com",
        run_link="http://mlflow/#/experiments/1/runs/abc123",
    )
    document = make_document(PREFIX, run_record(v))
    record = _strict_loads(document.body)
    assert record == {
        "format": "mlsync.run/1",
        "registered_model": "churn",
        "version": "1",
        "run_id": "abc123",
        "description": "first line\nsecond",
        "params": PARAMS,
        "metrics": {
            **{k: v for k, v in METRICS.items() if math.isfinite(v)},
            **{
                "nan": "NaN",
                "inf": "Infinity",
                "ninf": "-Infinity",
            },
        },
        "datasets": [
            {
                "name": "train",
                "digest": "d1",
                "source_type": "s3",
                "source": '{"uri": "s3://data/train.csv"}',
                "context": "training",
                "tags": {"version": "v1.0"},
            },
            {"name": "eval", "digest": "d2", "source_type": "", "source": "", "context": "", "tags": {}},
        ],
        "user": "ana@example.com",
        "run_link": "http://mlflow/#/experiments/1/runs/abc123",
    }
    for name, value in METRICS.items():
        back = float(record["metrics"][name])
        assert (math.isnan(back) and math.isnan(value)) or (
            back == value and math.copysign(1, back) == math.copysign(1, value)
        )


def test_run_record_of_a_version_without_run() -> None:
    record = run_record(version())
    assert record["run_id"] is None
    assert record["params"] == {} and record["metrics"] == {} and record["datasets"] == []
    assert record["user"] is None and record["run_link"] is None


def test_documents_are_content_addressed_utf8_json_with_a_sha256_digest() -> None:
    document = make_document(PREFIX, {"b": "模型", "a": [1, 2]})
    digest = hashlib.sha256(document.body).hexdigest()
    assert document.s3_uri == f"{PREFIX}/documents/{digest}.json"
    assert document.s3_uri == document_uri(PREFIX, document.body)
    assert document.digest == f"sha256:{digest}"
    assert CONTENT_DIGEST.fullmatch(document.digest)
    assert document.content_type == "application/json"
    assert "模型".encode() in document.body
    assert (
        document.body
        == json.dumps({"a": [1, 2], "b": "模型"}, sort_keys=True, ensure_ascii=False, indent=1).encode()
    )
    assert make_document(PREFIX, {"a": [1, 2], "b": "模型"}) == document
    assert make_document(PREFIX, {"a": [1, 3], "b": "模型"}).s3_uri != document.s3_uri


def test_a_document_refuses_non_finite_numbers() -> None:
    with pytest.raises(ValueError):
        make_document(PREFIX, {"x": math.nan})


# --- quality statistics -----------------------------------------------------------------------------


def _stat(value: float | str) -> dict[str, float | str]:
    return {"value": value, "standard_deviation": "NaN"}


def test_regression_metrics_become_regression_statistics() -> None:
    metrics = {"rmse": 0.5, "mean_absolute_error": 0.3, "r2_score": 0.9, "mse": 0.25, "custom": 7.0}
    assert quality_statistics(metrics) == {
        "regression_metrics": {"rmse": _stat(0.5), "mae": _stat(0.3), "r2": _stat(0.9), "mse": _stat(0.25)},
        "mlflow_metrics": {
            "custom": 7.0,
            "mean_absolute_error": 0.3,
            "mse": 0.25,
            "r2_score": 0.9,
            "rmse": 0.5,
        },
    }


def test_classification_metrics_become_binary_classification_statistics() -> None:
    metrics = {
        "accuracy_score": 0.9,
        "precision_score": 0.8,
        "recall_score": 0.7,
        "f1_score": 0.75,
        "roc_auc": 0.95,
        "log_loss": 0.3,
    }
    stats = quality_statistics(metrics)
    assert stats is not None
    assert stats["binary_classification_metrics"] == {
        "accuracy": _stat(0.9),
        "precision": _stat(0.8),
        "recall": _stat(0.7),
        "f1": _stat(0.75),
        "auc": _stat(0.95),
        "log_loss": _stat(0.3),
    }
    assert set(stats) == {"binary_classification_metrics", "mlflow_metrics"}


def test_the_section_with_most_recognised_metrics_is_the_problem_type() -> None:
    stats = quality_statistics({"accuracy": 0.9, "f1": 0.8, "rmse": 0.1})
    assert stats is not None
    assert set(stats) == {"binary_classification_metrics", "mlflow_metrics"}
    assert stats["mlflow_metrics"] == {"accuracy": 0.9, "f1": 0.8, "rmse": 0.1}
    stats = quality_statistics({"accuracy": 0.9, "mae": 0.2, "rmse": 0.1})
    assert stats is not None
    assert set(stats) == {"regression_metrics", "mlflow_metrics"}


@pytest.mark.parametrize(
    ("metrics", "tags", "section"),
    [
        ({"accuracy": 0.9, "f1_weighted": 0.8}, {}, "multiclass_classification_metrics"),
        ({"test_weighted_f1": 0.8, "rmse": 1.0, "mae": 1.0}, {}, "multiclass_classification_metrics"),
        (
            {"f1_score": 0.8},
            {"problem_type": "multiclass_classification"},
            "multiclass_classification_metrics",
        ),
        ({"accuracy": 0.9, "rmse": 0.1}, {"problem_type": "regression"}, "regression_metrics"),
        ({"f1_weighted": 0.8}, {"problem_type": "binary_classification"}, "binary_classification_metrics"),
        ({"f1_score": 0.8}, {"problem_type": "ranking"}, "binary_classification_metrics"),
    ],
)
def test_the_problem_type_comes_from_a_tag_then_from_class_averaged_metric_names(
    metrics: dict[str, float], tags: dict[str, str], section: str
) -> None:
    stats = quality_statistics(metrics, tags)
    assert stats is not None and set(stats) == {section, "mlflow_metrics"}


def test_a_section_holds_only_metrics_of_its_kind() -> None:
    stats = quality_statistics({"accuracy": 0.9, "weighted_f1": 0.8, "rmse": 0.1})
    assert stats is not None
    assert stats["multiclass_classification_metrics"] == {"accuracy": _stat(0.9), "weighted_f1": _stat(0.8)}
    stats = quality_statistics({"accuracy": 0.9, "rmse": 0.1}, {"problem_type": "regression"})
    assert stats is not None and stats["regression_metrics"] == {"rmse": _stat(0.1)}


def test_the_version_tag_names_the_problem_type_over_its_runs() -> None:
    tagged = version(
        metrics={"f1_score": 0.8},
        run_tags={"problem_type": "regression"},
        tags={"problem_type": "multiclass_classification"},
    )
    spec = desired_package(tagged, "churn", SOURCE, settings())
    assert spec.quality_statistics is not None
    assert b"multiclass_classification_metrics" in spec.quality_statistics.body


def test_statistics_do_not_depend_on_metric_order() -> None:
    metrics = {"rmse": 0.1, "accuracy": 0.9, "test_f1": 0.5, "training_mae": 0.2}
    assert quality_statistics(metrics) == quality_statistics(dict(reversed(list(metrics.items()))))


@pytest.mark.parametrize(
    ("metrics", "section", "name", "value"),
    [
        ({"training_accuracy_score": 0.99, "test_accuracy_score": 0.9}, "binary", "accuracy", 0.9),
        ({"train_rmse": 0.1, "val_rmse": 0.2}, "regression", "rmse", 0.2),
        ({"training_f1_score": 0.9, "eval_f1_score": 0.6}, "binary", "f1", 0.6),
        ({"train_mae": 0.1, "validation_mae": 0.4}, "regression", "mae", 0.4),
        ({"test_r2": 0.5, "r2": 0.7}, "regression", "r2", 0.7),
        ({"training_accuracy_score": 0.99}, "binary", "accuracy", 0.99),
    ],
)
def test_held_out_metrics_win_over_training_ones(
    metrics: dict[str, float], section: str, name: str, value: float
) -> None:
    stats = quality_statistics(metrics)
    key = "regression_metrics" if section == "regression" else "binary_classification_metrics"
    assert stats is not None
    assert stats[key] == {name: _stat(value)}


def test_non_finite_statistics_are_spelled_as_strings_and_stay_strict_json() -> None:
    stats = quality_statistics({"rmse": math.nan, "mae": math.inf})
    assert stats is not None
    assert stats["regression_metrics"] == {"rmse": _stat("NaN"), "mae": _stat("Infinity")}
    assert _strict_loads(make_document(PREFIX, stats).body) == stats


@pytest.mark.parametrize(
    "metrics", [{}, {"loss": 0.1}, {"pretest_accuracy": 0.9}, {"test_accuracy_extra": 1.0}, {"Accuracy": 1.0}]
)
def test_statistics_are_none_when_nothing_is_recognised(metrics: dict[str, float]) -> None:
    assert quality_statistics(metrics) is None


def test_headline_metric_prefers_the_configured_one() -> None:
    assert headline_metric({"loss": 0.3, "accuracy": 0.9}, "loss") == ("loss", 0.3)
    assert headline_metric({"accuracy": 0.9}, "loss") is None


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"rmse": 0.1, "accuracy_score": 0.9}, ("accuracy_score", 0.9)),
        ({"training_accuracy_score": 0.99, "test_accuracy_score": 0.9}, ("test_accuracy_score", 0.9)),
        ({"mae": 0.2, "r2": 0.5, "f1": 0.3}, ("f1", 0.3)),
        ({"mae": 0.2, "train_rmse": 0.5}, ("train_rmse", 0.5)),
        ({"loss": 0.1}, None),
        ({}, None),
    ],
)
def test_headline_metric_takes_the_first_recognised_one(
    metrics: dict[str, float], expected: tuple[str, float] | None
) -> None:
    assert headline_metric(metrics) == expected


# --- customer metadata ------------------------------------------------------------------------------


def test_identity_keys_come_first_with_exact_values() -> None:
    document = a_document()
    v = version(model_name="my model (v2)", version="12", run_id="r1", user="ana@example.com")
    metadata, omitted = customer_metadata(v, "src (x)", document)
    assert list(metadata)[:6] == [KEY_MODEL, KEY_VERSION, KEY_SERVER, KEY_DOCUMENT, KEY_RUN, KEY_USER]
    assert metadata[KEY_MODEL] == encode_identity("my model (v2)")
    assert metadata[KEY_VERSION] == "12"
    assert metadata[KEY_SERVER] == encode_identity("src (x)")
    assert metadata[KEY_DOCUMENT] == document.s3_uri
    assert metadata[KEY_RUN] == "r1"
    assert metadata[KEY_USER] == "ana@example.com"
    assert list(metadata)[-1] == KEY_OMITTED
    assert metadata[KEY_OMITTED] == "0"
    assert omitted == 0
    assert len(metadata) == 7


def test_no_run_and_a_user_that_does_not_fit_leave_their_keys_out() -> None:
    metadata, _ = customer_metadata(version(user="Ana (admin)"), SOURCE, a_document())
    assert KEY_RUN not in metadata
    assert KEY_USER not in metadata
    metadata, _ = customer_metadata(version(user=None), SOURCE, a_document())
    assert KEY_USER not in metadata


def test_budget_order_is_datasets_then_metrics_then_params_by_name() -> None:
    v = version(
        run_id="r1",
        user="ana",
        datasets=tuple(Dataset(f"ds{i}", f"digest{i}") for i in range(10)),
        metrics={f"m{i:02d}": float(i) for i in range(30)},
        params={f"p{i:02d}": str(i) for i in range(30)},
    )
    metadata, omitted = customer_metadata(v, SOURCE, a_document())
    assert len(metadata) == 48  # two entries are kept for the flavor and model class staging adds
    keys = list(metadata)
    # 6 identity keys, 10 datasets, 30 metrics, then params until 47, then the omitted count.
    assert keys[6:16] == [f"{DATASET_PREFIX}ds{i}" for i in range(10)]
    assert keys[16:46] == [f"{METRIC_PREFIX}m{i:02d}" for i in range(30)]
    assert keys[46:47] == [f"{PARAM_PREFIX}p00"]
    assert omitted == 29
    assert metadata[KEY_OMITTED] == "29"
    assert metadata[f"{DATASET_PREFIX}ds3"] == "digest3"
    assert metadata[f"{METRIC_PREFIX}m07"] == "7.0"


def test_budget_sorts_metrics_and_params_by_name_not_insertion() -> None:
    v = version(metrics={"z": 1.0, "a": 2.0}, params={"y": "1", "b": "2"})
    keys = list(customer_metadata(v, SOURCE, a_document())[0])
    assert keys[4:8] == ["metric.a", "metric.z", "param.b", "param.y"]


def test_items_that_do_not_fit_are_counted_and_use_no_budget() -> None:
    v = version(
        params={
            "list": "[1, 2]",
            "empty": "",
            "k" * 128: "x",
            "unicode": "Ünïcödé 模型",
            "v256": "v" * 256,
            "v257": "v" * 257,
        },
        metrics={"nan": math.nan, "bad,name": 1.0},
    )
    metadata, omitted = customer_metadata(v, SOURCE, a_document())
    assert omitted == 5  # list, empty, the 134-character key, v257, bad,name
    assert metadata[KEY_OMITTED] == "5"
    assert metadata["param.unicode"] == "Ünïcödé 模型"
    assert metadata["param.v256"] == "v" * 256
    assert metadata["metric.nan"] == "NaN"
    assert not any(k in metadata for k in ("param.list", "param.empty", "param.v257", "metric.bad,name"))


def test_a_second_dataset_with_the_same_name_is_omitted_not_overwritten() -> None:
    v = version(datasets=(Dataset("dataset", "train1"), Dataset("dataset", "eval22")))
    metadata, omitted = customer_metadata(v, SOURCE, a_document())
    assert metadata["dataset.dataset"] == "train1"
    assert omitted == 1
    assert metadata[KEY_OMITTED] == "1"


def test_configured_keys_come_right_after_identity_with_values_from_each_source() -> None:
    configured = {
        "Algorithm": "param:algorithm",
        "Accuracy": "metric:accuracy",
        "Created by": "user",
        "Training dataset version": "training_dataset_version",
        "Team": "run_tag:team",
        "Owner": "tag:owner",
        "Missing": "param:nope",
    }
    v = version(
        params={"algorithm": "XGBoost"},
        metrics={"accuracy": 0.912},
        user="Lambda Preprocessing Pipeline",
        run_tags={"team": "ml"},
        tags={"owner": "ana"},
        datasets=(Dataset("train", "t1", context="training", tags=(("version", "v1.0"),)),),
    )
    metadata, omitted = customer_metadata(v, SOURCE, a_document(), configured)
    keys = list(metadata)
    assert keys[5:11] == ["Algorithm", "Accuracy", "Created by", "Training dataset version", "Team", "Owner"]
    assert [metadata[k] for k in keys[5:11]] == [
        "XGBoost",
        "0.912",
        "Lambda Preprocessing Pipeline",
        "v1.0",
        "ml",
        "ana",
    ]
    assert "Missing" not in metadata and omitted == 0


def test_the_training_dataset_name_and_version_come_first_after_identity() -> None:
    v = version(
        datasets=(
            Dataset("holdout", "h1", context="evaluation", tags=(("version", "v0.9"),)),
            Dataset("train", "t1", context="training", tags=(("owner", "ml"), ("version", "v1.0"))),
            Dataset("train", "t1", context="evaluation"),
        ),
        metrics={"accuracy": 0.912},
    )
    metadata, omitted = customer_metadata(v, SOURCE, a_document())
    keys = list(metadata)
    assert keys[4:8] == [
        KEY_TRAINING_DATASET,
        KEY_TRAINING_DATASET_VERSION,
        "dataset.holdout",
        "dataset.train",
    ]
    assert (metadata[KEY_TRAINING_DATASET], metadata[KEY_TRAINING_DATASET_VERSION]) == ("train", "v1.0")
    assert omitted == 0  # the same dataset in two contexts is one dataset.<name> entry


def test_no_training_context_no_training_keys_and_a_version_only_when_tagged() -> None:
    untagged = customer_metadata(version(datasets=(Dataset("d", "x"),)), SOURCE, a_document())[0]
    assert KEY_TRAINING_DATASET not in untagged
    training = customer_metadata(
        version(datasets=(Dataset("d", "x", context="training"),)), SOURCE, a_document()
    )[0]
    assert training[KEY_TRAINING_DATASET] == "d" and KEY_TRAINING_DATASET_VERSION not in training


def test_generated_metadata_always_fits_sagemaker() -> None:
    rng = random.Random(11)
    for _ in range(40):
        v = version(
            model_name=_random_name(rng) or "m",
            run_id="r" * 32,
            user=_random_name(rng) or None,
            params={_random_name(rng): _random_name(rng) for _ in range(rng.randint(0, 80))},
            metrics={_random_name(rng): rng.choice([math.nan, math.inf, rng.random()]) for _ in range(40)},
            datasets=tuple(Dataset(_random_name(rng), _random_name(rng)) for _ in range(rng.randint(0, 5))),
        )
        metadata, omitted = customer_metadata(v, _random_name(rng), a_document())
        assert 1 <= len(metadata) <= 50  # CustomerMetadataMap
        for key, value in metadata.items():
            assert valid_metadata(key, 128), key
            assert valid_metadata(value, 256), value
        assert metadata[KEY_OMITTED] == str(omitted)
        candidates = len(v.params) + len(v.metrics) + len(v.datasets)
        # 4 identity keys, the run id, maybe the user, and the omitted count around what was kept.
        assert len(metadata) - 6 - (KEY_USER in metadata) + omitted == candidates


def test_owned_keys_are_mlsyncs_prefixes_only_sorted() -> None:
    keys = [
        "team",
        "mlsync.omitted",
        "param.lr",
        "metric.x",
        "dataset.d",
        "mlflow.version",
        "Param.x",
        "owner",
    ]
    assert owned_keys(keys) == ["dataset.d", "metric.x", "mlflow.version", "mlsync.omitted", "param.lr"]


# --- approval ---------------------------------------------------------------------------------------

DEFAULT = ApprovalRules()


@pytest.mark.parametrize(
    ("stage", "status", "lifecycle"),
    [
        ("Production", ApprovalStatus.APPROVED, Lifecycle("Production", "Approved")),
        ("Archived", ApprovalStatus.REJECTED, Lifecycle("Archived", "Rejected")),
        ("Staging", ApprovalStatus.PENDING, Lifecycle("PreProduction", "PendingApproval")),
        ("None", ApprovalStatus.PENDING, Lifecycle("Development", "PendingApproval")),
        ("Custom", ApprovalStatus.PENDING, None),
    ],
)
def test_stage_decides_by_default(stage: str, status: ApprovalStatus, lifecycle: Lifecycle | None) -> None:
    decision = decide_approval(version(stage=stage), DEFAULT)
    assert decision.status == status
    assert decision.lifecycle == lifecycle
    assert decision.reason == f"stage {stage}"


def test_a_configured_alias_beats_the_stage() -> None:
    decision = decide_approval(version(stage="Archived", aliases=("champion",)), DEFAULT)
    assert decision.status == ApprovalStatus.APPROVED
    assert decision.lifecycle == Lifecycle("Production", "Approved")
    assert decision.reason == "alias @champion"


def test_an_unconfigured_alias_is_ignored() -> None:
    decision = decide_approval(version(stage="Archived", aliases=("challenger",)), DEFAULT)
    assert decision.status == ApprovalStatus.REJECTED
    assert decision.reason == "stage Archived"
    assert decision.lifecycle == Lifecycle("Archived", "Rejected")


def test_the_tag_beats_alias_and_stage() -> None:
    v = version(stage="Production", aliases=("champion",), tags={"sagemaker.approval": "Rejected"})
    decision = decide_approval(v, DEFAULT)
    assert decision.status == ApprovalStatus.REJECTED
    assert decision.lifecycle == Lifecycle("Production", "Rejected")
    assert decision.reason == "tag sagemaker.approval=Rejected"


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("approved", ApprovalStatus.APPROVED),
        (" APPROVED\n", ApprovalStatus.APPROVED),
        ("rejected", ApprovalStatus.REJECTED),
        ("pendingmanualapproval", ApprovalStatus.PENDING),
        ("PendingManualApproval", ApprovalStatus.PENDING),
    ],
)
def test_the_tag_is_case_insensitive_and_trimmed(value: str, status: ApprovalStatus) -> None:
    decision = decide_approval(version(tags={"sagemaker.approval": value}), DEFAULT)
    assert decision.status == status
    # ApprovalDescription is `.*` in Java: no line terminators.
    assert decision.reason == f"tag sagemaker.approval={value.strip()}"


@pytest.mark.parametrize("value", ["yes", "", "Pending", "Approved!", "Appro\nved"])
def test_an_invalid_tag_is_a_mapping_error_naming_model_version_and_fix(value: str) -> None:
    v = version(model_name="fraud", version="9", stage="Production", tags={"sagemaker.approval": value})
    with pytest.raises(MappingError) as caught:
        decide_approval(v, DEFAULT)
    error = caught.value
    assert (error.model_name, error.version) == ("fraud", "9")
    assert repr(value) in error.problem
    assert "sagemaker.approval" in error.problem
    assert all(s in error.fix for s in ("Approved", "Rejected", "PendingManualApproval"))
    assert "'fraud'" in str(error) and "version 9" in str(error) and "Fix:" in str(error)


def test_the_first_configured_alias_wins_in_configured_order() -> None:
    rules = ApprovalRules(
        aliases={"blocked": ApprovalStatus.REJECTED, "champion": ApprovalStatus.APPROVED},
        alias_lifecycle_stages={"blocked": "Archived", "champion": "Production"},
    )
    decision = decide_approval(version(aliases=("champion", "blocked")), rules)
    assert decision.status == ApprovalStatus.REJECTED
    assert decision.reason == "alias @blocked"
    assert decision.lifecycle == Lifecycle("Archived", "Rejected")


def test_the_lifecycle_follows_configured_alias_order_not_the_versions() -> None:
    rules = ApprovalRules(
        aliases={"champion": ApprovalStatus.APPROVED, "challenger": ApprovalStatus.PENDING},
        alias_lifecycle_stages={"champion": "Production", "challenger": "QA"},
    )
    decision = decide_approval(version(aliases=("challenger", "champion")), rules)
    assert decision.status == ApprovalStatus.APPROVED
    assert decision.lifecycle == Lifecycle("Production", "Approved")


def test_an_alias_lifecycle_stage_applies_without_an_alias_approval() -> None:
    rules = ApprovalRules(aliases={}, alias_lifecycle_stages={"shadow": "QA"})
    decision = decide_approval(version(stage="Production", aliases=("shadow",)), rules)
    assert decision.status == ApprovalStatus.APPROVED
    assert decision.reason == "stage Production"
    assert decision.lifecycle == Lifecycle("QA", "Approved")


def test_a_custom_tag_name_and_stage_table() -> None:
    rules = ApprovalRules(tag="deploy", stages={"Staging": ApprovalStatus.APPROVED}, lifecycle_stages={})
    assert decide_approval(version(stage="Staging"), rules).status == ApprovalStatus.APPROVED
    assert decide_approval(version(stage="Staging"), rules).lifecycle is None
    tagged = version(stage="Staging", tags={"deploy": "rejected", "sagemaker.approval": "Approved"})
    assert decide_approval(tagged, rules).status == ApprovalStatus.REJECTED
    assert decide_approval(version(stage="Production"), rules).status == ApprovalStatus.PENDING


def test_every_default_lifecycle_is_a_valid_model_life_cycle() -> None:
    for stage in ("None", "Staging", "Production", "Archived"):
        for tag in ("Approved", "Rejected", "PendingManualApproval"):
            decision = decide_approval(version(stage=stage, tags={"sagemaker.approval": tag}), DEFAULT)
            assert decision.lifecycle is not None
            assert valid_group(decision.lifecycle.stage) and valid_group(decision.lifecycle.stage_status)


@pytest.mark.parametrize("current", list(ApprovalStatus))
@pytest.mark.parametrize("desired", [ApprovalStatus.APPROVED, ApprovalStatus.REJECTED])
def test_settle_keeps_a_desired_approved_or_rejected(
    desired: ApprovalStatus, current: ApprovalStatus
) -> None:
    lifecycle = Lifecycle("Production", desired.value)
    assert settle_approval(desired, lifecycle, current) == (desired, lifecycle)


def test_settle_keeps_pending_on_a_pending_package() -> None:
    lifecycle = Lifecycle("Development", "PendingApproval")
    assert settle_approval(ApprovalStatus.PENDING, lifecycle, ApprovalStatus.PENDING) == (
        ApprovalStatus.PENDING,
        lifecycle,
    )


@pytest.mark.parametrize("current", [ApprovalStatus.APPROVED, ApprovalStatus.REJECTED])
def test_settle_turns_pending_into_rejected_once_decided(current: ApprovalStatus) -> None:
    # SageMaker documents no transition back to PendingManualApproval.
    settled = settle_approval(ApprovalStatus.PENDING, Lifecycle("Development", "PendingApproval"), current)
    assert settled == (ApprovalStatus.REJECTED, Lifecycle("Development", "Rejected"))
    assert settle_approval(ApprovalStatus.PENDING, None, current) == (ApprovalStatus.REJECTED, None)


# --- groups, descriptions and packages --------------------------------------------------------------


def test_desired_group_keeps_the_exact_name_in_description_and_tag() -> None:
    group = desired_group(SourceModel("my model (v2)"), settings(group_prefix="team"))
    assert group.name == f"team-my-model-v2-{h8('my model (v2)')}"
    assert group.model_name == "my model (v2)"
    assert group.description == "MLflow registered model my model (v2)"
    assert group.tags == {KEY_MODEL: encode_identity("my model (v2)")}
    assert desired_group(SourceModel("churn"), settings()).tags == {KEY_MODEL: "churn"}


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("line1\nline2\r\n\tend", "line1 line2 end"),
        ("  padded  \n", "padded"),
        ("zero\u200bwidth", "zero width"),
        ("a\x00b\x7fc", "a b c"),
        ("", ""),
        ("keeps 模型 ü — “quotes” & 50%", "keeps 模型 ü — “quotes” & 50%"),
    ],
)
def test_descriptions_fold_control_characters(raw: str, clean: str) -> None:
    spec = desired_package(version(description=raw), "churn", SOURCE, settings())
    assert spec.description == clean
    assert ENTITY_DESCRIPTION.fullmatch(spec.description)


def test_a_description_of_1024_is_kept_and_a_longer_one_cut_with_an_ellipsis() -> None:
    exact = "d" * 1024
    assert desired_package(version(description=exact), "g", SOURCE, settings()).description == exact
    cut = desired_package(version(description="d" * 2000), "g", SOURCE, settings()).description
    assert cut == "d" * 1023 + "…"


def test_a_description_cut_counts_utf16_units_and_never_splits_a_pair() -> None:
    text = "😀" * 600  # 1200 UTF-16 units
    cut = desired_package(version(description=text), "g", SOURCE, settings()).description
    assert cut == "😀" * 511 + "…"
    assert utf16(cut) == 1023
    mixed = desired_package(version(description="a" + "😀" * 600), "g", SOURCE, settings()).description
    assert mixed == "a" + "😀" * 511 + "…"
    assert utf16(mixed) == 1024


def test_desired_package_without_an_s3_prefix_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="MLSYNC_S3_PREFIX"):
        desired_package(version(), "churn", SOURCE, Settings())


def test_desired_package_puts_every_part_together() -> None:
    v = version(
        version="3",
        run_id="r1",
        stage="Production",
        description="good\nmodel",
        metrics={"rmse": 0.5},
        params={"lr": "0.1"},
        run_link="http://mlflow/#/experiments/1/runs/r1",
        run_tags={"mlflow.source.git.repoURL": "https://git/x", "mlflow.source.git.commit": "c0ffee"},
    )
    spec = desired_package(v, "churn-group", SOURCE, settings(s3_prefix=PREFIX + "/"), "churn scoring")
    assert spec.group_name == "churn-group"
    assert (spec.model_name, spec.version) == ("churn", "3")
    assert spec.approval == ApprovalStatus.APPROVED
    assert spec.lifecycle == Lifecycle("Production", "Approved")
    assert spec.approval_reason == "mlsync: stage Production"
    assert spec.description == "good model"
    assert spec.metadata_properties == {
        "GeneratedBy": "http://mlflow/#/experiments/1/runs/r1",
        "Repository": "https://git/x",
        "CommitId": "c0ffee",
    }
    assert spec.run_document == make_document(PREFIX, run_record(v))
    assert spec.run_document.s3_uri.startswith(PREFIX + "/documents/")
    assert spec.quality_statistics == make_document(PREFIX, quality_statistics(v.metrics) or {})
    assert spec.documents == (spec.run_document, spec.quality_statistics)
    assert spec.model_card == model_card(v, "churn scoring", spec.approval, spec.run_document.s3_uri)
    assert spec.model_card is not None
    records = {KEY_MODEL_CARD: card_digest(spec.model_card)}
    assert spec.customer_metadata == customer_metadata(v, SOURCE, spec.run_document, records=records)[0]
    assert spec.customer_metadata[KEY_DOCUMENT] == spec.run_document.s3_uri


def test_a_package_without_recognised_metrics_has_only_the_run_document() -> None:
    spec = desired_package(version(metrics={"loss": 0.1}), "g", SOURCE, settings())
    assert spec.quality_statistics is None
    assert spec.documents == (spec.run_document,)


def test_an_invalid_approval_tag_fails_desired_package() -> None:
    with pytest.raises(MappingError):
        desired_package(version(tags={"sagemaker.approval": "maybe"}), "g", SOURCE, settings())


def test_metadata_properties_skip_empty_values_and_cap_at_1024() -> None:
    assert metadata_properties(version()) == {}
    long = "https://git/" + "r" * 2000
    props = metadata_properties(version(run_tags={"mlflow.source.git.repoURL": long}))
    assert props == {"Repository": long[:1024]}


# --- the sync digest ------------------------------------------------------------------------------

# Fields the digest leaves out, each for a reason: the summary carries them (approval, lifecycle), they
# are the version's identity or derived from it (in the metadata the digest covers), or they are never
# compared after creation (the model's files, the reason shown in the plan).
DIGEST_EXEMPT = {
    "group_name": "the identity, in the metadata",
    "model_name": "the identity, in the metadata",
    "version": "the identity, in the metadata",
    "client_token": "derived from the identity",
    "approval": "ListModelPackages summaries carry it",
    "lifecycle": "ListModelPackages summaries carry it",
    "approval_reason": "shown in the plan, sent only with an approval change",
    "run_document": "its URI is a metadata value",
}


def _changed(value: object) -> object:
    """Another value of the same kind, to see whether the digest notices."""
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, Document):
        return make_document(PREFIX, {"other": value.digest})
    if isinstance(value, ModelCard):
        return dataclasses.replace(value, content=json.dumps({"other": value.content}))
    if value is None:
        return a_document()
    assert isinstance(value, dict), f"add a way to change a {type(value).__name__} field"
    return {**value, "extra": "x"}


def test_the_sync_digest_covers_every_package_field_not_named_as_exempt() -> None:
    """A new updatable field the digest forgot would hide drift: this fails until it is covered or exempt."""
    spec = desired_package(version(metrics={"accuracy": 0.9}, description="d"), "churn", "src", settings())
    for field in dataclasses.fields(PackageSpec):
        if field.name in DIGEST_EXEMPT:
            continue
        other = dataclasses.replace(spec, **{field.name: _changed(getattr(spec, field.name))})
        assert sync_status(other) != sync_status(spec), f"the sync digest ignores PackageSpec.{field.name}"
    assert set(DIGEST_EXEMPT) <= {field.name for field in dataclasses.fields(PackageSpec)}
