"""The model card filled from MLflow (mapping/model_card.py): content, status, size, and who may replace it.

Every card is validated against tests/model_package_card.schema.json, a copy of SageMaker's model-package
card schema (the subset mlsync writes, with the limits it must keep; its sources are named in it).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from model_card_schema import VALIDATOR, valid_card

from mlflow_sagemaker_registry.domain import ApprovalStatus, Dataset, ModelCard, SourceVersion
from mlflow_sagemaker_registry.mapping.limits import api_length
from mlflow_sagemaker_registry.mapping.model_card import (
    ARCHIVED,
    CARD_STATUSES,
    KEY_MODEL_CARD,
    MAX_CARD_CONTENT,
    CardAction,
    card_action,
    card_digest,
    card_status,
    model_card,
    status_update,
)

DOCUMENT = "s3://bucket/mlsync/documents/" + "ab" * 32 + ".json"
RUN = "0123456789abcdef0123456789abcdef"
WORKSHOP = SourceVersion(
    model_name="ml-pipeline-model-group",
    version="1",
    run_id=RUN,
    description="ML pipeline v1 model",
    tags={"intended_use": "Score churn risk for the retention team"},
    params={"learning_rate": "0.1", "max_depth": "5", "n_estimators": "100"},
    metrics={"accuracy": 0.912},
    datasets=(
        Dataset("churn-train", "3f2a1b9c", "code", "{}", "training", (("version", "v1.0"),)),
        Dataset("churn-holdout", "77e0d1aa", "code", "{}", "evaluation"),
    ),
    user="Lambda Preprocessing Pipeline",
    run_link=f"http://mlflow.internal:5000/#/experiments/1/runs/{RUN}",
)


def content(card: ModelCard | None) -> dict[str, Any]:
    """The card's content, checked against the schema (model_card_schema.valid_card)."""
    assert card is not None
    return valid_card(card.content)


def card_of(version: SourceVersion, model_description: str = "", **kwargs: Any) -> ModelCard | None:
    approval = kwargs.pop("approval", ApprovalStatus.PENDING)
    return model_card(version, model_description, approval, DOCUMENT)


def test_the_workshop_version_fills_every_section_from_mlflow() -> None:
    card = card_of(WORKSHOP, "Model group for ML pipeline workshop", approval=ApprovalStatus.APPROVED)

    assert card is not None and card.status == "Approved"
    assert content(card) == {
        "model_overview": {"model_creator": "Lambda Preprocessing Pipeline"},
        "intended_uses": {
            "purpose_of_model": "Model group for ML pipeline workshop",
            "intended_uses": "Score churn risk for the retention team",
        },
        "training_details": {
            "training_observations": f"MLflow run {RUN}: {WORKSHOP.run_link}",
            "training_job_details": {
                "training_datasets": ["churn-train (digest 3f2a1b9c, version v1.0)"],
                "hyper_parameters": [
                    {"name": "learning_rate", "value": "0.1"},
                    {"name": "max_depth", "value": "5"},
                    {"name": "n_estimators", "value": "100"},
                ],
            },
        },
        "evaluation_details": [
            {
                "name": f"MLflow run {RUN}",
                "datasets": ["churn-holdout (digest 77e0d1aa)"],
                "metric_groups": [
                    {
                        "name": "MLflow metrics",
                        "metric_data": [{"name": "accuracy", "type": "number", "value": 0.912}],
                    }
                ],
            }
        ],
        "additional_information": {
            "custom_details": {
                "mlflow_registered_model": "ml-pipeline-model-group",
                "mlflow_version": "1",
                "mlflow_version_description": "ML pipeline v1 model",
                "mlsync_run_document": DOCUMENT,
            }
        },
    }


def test_the_schema_copy_refuses_what_a_package_card_may_not_hold() -> None:
    """The copy is strict where SageMaker is: a full model card's fields fail on a package's card."""
    assert not VALIDATOR.is_valid({"model_package_details": {}})
    assert not VALIDATOR.is_valid({"model_overview": {"model_name": "churn"}})
    assert not VALIDATOR.is_valid({"intended_uses": {"risk_rating": "Severe"}})
    too_long = {"name": "p", "value": "v" * 256}
    assert not VALIDATOR.is_valid(
        {"training_details": {"training_job_details": {"hyper_parameters": [too_long]}}}
    )
    broken = {"name": "a\nb", "value": "1"}
    assert not VALIDATOR.is_valid(
        {"training_details": {"training_job_details": {"hyper_parameters": [broken]}}}
    )
    assert VALIDATOR.is_valid({})


def test_the_version_tag_for_intended_use_wins_over_the_runs() -> None:
    v = replace(WORKSHOP, run_tags={"intended_use": "from the run"}, tags={})
    assert content(card_of(v))["intended_uses"] == {"intended_uses": "from the run"}
    tagged = replace(v, tags={"intended_use": "from the version"})
    assert content(card_of(tagged))["intended_uses"] == {"intended_uses": "from the version"}


def test_a_version_mlflow_says_nothing_about_has_no_card() -> None:
    bare = SourceVersion("churn", "1")
    assert card_of(bare) is None
    assert content(card_of(bare, "the model's purpose"))["intended_uses"] == {
        "purpose_of_model": "the model's purpose"
    }
    only_tag = content(card_of(replace(bare, tags={"intended_use": "batch scoring"})))
    assert only_tag == {
        "intended_uses": {"intended_uses": "batch scoring"},
        "additional_information": {
            "custom_details": {
                "mlflow_registered_model": "churn",
                "mlflow_version": "1",
                "mlsync_run_document": DOCUMENT,
            }
        },
    }


@pytest.mark.parametrize(
    ("approval", "status"),
    [
        (ApprovalStatus.APPROVED, "Approved"),
        (ApprovalStatus.PENDING, "PendingReview"),
        (ApprovalStatus.REJECTED, "Draft"),
    ],
)
def test_the_status_follows_approval_and_is_never_archived(approval: ApprovalStatus, status: str) -> None:
    assert card_status(approval) == status
    card = card_of(WORKSHOP, approval=approval)
    assert card is not None and card.status == status
    assert ARCHIVED not in CARD_STATUSES.values()
    # botocore's ModelCardStatus enum
    assert set(CARD_STATUSES.values()) | {ARCHIVED} == {"Draft", "PendingReview", "Approved", "Archived"}


def test_the_same_version_always_gives_the_same_text() -> None:
    reordered = replace(
        WORKSHOP,
        params=dict(reversed(list(WORKSHOP.params.items()))),
        metrics={"zeta": 1.0, "accuracy": 0.912, "alpha": 2.0},
    )
    first, second = (
        card_of(reordered),
        card_of(replace(reordered, params=dict(sorted(reordered.params.items())))),
    )
    assert first == second
    assert first is not None
    names = [m["name"] for m in content(first)["evaluation_details"][0]["metric_groups"][0]["metric_data"]]
    assert names == ["accuracy", "alpha", "zeta"]


def test_what_the_schema_cannot_take_is_left_out_counted_and_pointed_at() -> None:
    params = {f"p{i:03}": str(i) for i in range(105)}
    params |= {"multi": "a\nb", "long": "x" * 256, "empty": ""}
    datasets = tuple(Dataset(f"train-{i:02}", f"d{i}", context="training") for i in range(17))
    v = replace(
        WORKSHOP,
        params=params,
        metrics={"accuracy": 0.9, "loss": float("nan"), "gain": float("inf")},
        datasets=datasets,
    )

    parsed = content(card_of(v))

    job = parsed["training_details"]["training_job_details"]
    assert [p["name"] for p in job["hyper_parameters"]] == [f"p{i:03}" for i in range(100)]
    assert len(job["training_datasets"]) == 15
    metrics = parsed["evaluation_details"][0]["metric_groups"][0]["metric_data"]
    assert metrics == [{"name": "accuracy", "type": "number", "value": 0.9}]
    note = parsed["additional_information"]["caveats_and_recommendations"]
    assert "8 hyperparameters, 2 metrics, 2 datasets" in note
    assert DOCUMENT in note


def test_long_texts_are_cut_to_the_schemas_lengths() -> None:
    v = replace(WORKSHOP, description="d" * 5000, user="u" * 5000, run_link="http://x/" + "r" * 2000)
    parsed = content(card_of(v, "m" * 5000))
    assert parsed["intended_uses"]["purpose_of_model"] == "m" * 2047 + "…"
    assert parsed["model_overview"]["model_creator"] == "u" * 1023 + "…"
    assert len(parsed["training_details"]["training_observations"]) == 1024
    assert len(parsed["additional_information"]["custom_details"]["mlflow_version_description"]) == 1024


def test_a_card_over_100000_characters_keeps_the_params_then_the_metrics_that_fit() -> None:
    metrics = {f"metric_{i:05}_{'m' * 200}": float(i) for i in range(2000)}
    params = {f"param_{i:03}": "v" * 255 for i in range(100)}
    v = replace(WORKSHOP, metrics=metrics, params=params)

    card = card_of(v)
    parsed = content(card)

    assert card is not None and api_length(card.content) > MAX_CARD_CONTENT - 2000  # filled, not emptied
    assert len(parsed["training_details"]["training_job_details"]["hyper_parameters"]) == 100
    kept = [m["name"] for m in parsed["evaluation_details"][0]["metric_groups"][0]["metric_data"]]
    assert kept == sorted(metrics)[: len(kept)]
    assert 0 < len(kept) < len(metrics)
    note = parsed["additional_information"]["caveats_and_recommendations"]
    assert f"{len(metrics) - len(kept)} metrics of the MLflow run" in note


def test_line_breaks_of_every_kind_are_escaped_and_read_back_the_same() -> None:
    text = "line one\nline two\r\u0085\u2028\u2029 done"
    card = card_of(replace(WORKSHOP, description=text), text)
    parsed = content(card)
    assert parsed["intended_uses"]["purpose_of_model"] == text
    assert parsed["additional_information"]["custom_details"]["mlflow_version_description"] == text


def test_the_digest_compares_content_as_json_and_covers_the_status() -> None:
    card = ModelCard('{"b":1,"a":{"y":2,"x":3}}', "Draft")
    assert card_digest(card) == card_digest(ModelCard('{ "a": {"x": 3, "y": 2},\n "b": 1 }', "Draft"))
    assert card_digest(card) != card_digest(replace(card, status="Approved"))
    assert card_digest(card) != card_digest(ModelCard('{"b":2,"a":{"y":2,"x":3}}', "Draft"))
    assert card_digest(ModelCard("not json", "Draft")) == card_digest(ModelCard("not json", "Draft"))


def test_a_card_is_replaced_only_when_it_is_the_one_mlsync_wrote() -> None:
    mine = ModelCard('{"intended_uses":{"intended_uses":"old"}}', "PendingReview")
    wanted = ModelCard('{"intended_uses":{"intended_uses":"new"}}', "PendingReview")
    edited = replace(mine, content='{"intended_uses":{"intended_uses":"a reviewer wrote this"}}')

    assert card_action(None, mine, card_digest(mine)) is CardAction.LEAVE
    assert card_action(wanted, wanted, None) is CardAction.IN_SYNC
    assert card_action(wanted, None, None) is CardAction.WRITE
    assert card_action(wanted, mine, card_digest(mine)) is CardAction.WRITE
    assert card_action(wanted, edited, card_digest(mine)) is CardAction.KEEP
    assert card_action(wanted, replace(mine, status="Approved"), card_digest(mine)) is CardAction.KEEP
    assert card_action(wanted, mine, None) is CardAction.KEEP  # a card another tool wrote
    # Handing an edited card back to mlsync: record its digest, and it is replaced.
    assert card_action(wanted, edited, card_digest(edited)) is CardAction.WRITE


def test_a_status_update_moves_only_mlsyncs_card_and_records_it() -> None:
    mine = ModelCard('{"a":1}', "Approved")
    card, record = status_update(mine, card_digest(mine), ApprovalStatus.REJECTED)
    assert card == ModelCard('{"a":1}', "Draft")
    assert record == {KEY_MODEL_CARD: card_digest(ModelCard('{"a":1}', "Draft"))}
    assert status_update(mine, card_digest(mine), ApprovalStatus.APPROVED) == (None, {})  # right already
    assert status_update(mine, "someone else's", ApprovalStatus.REJECTED) == (None, {})
    assert status_update(None, None, ApprovalStatus.REJECTED) == (None, {})
