"""`mlsync iam-policy`: the policy follows the settings, and is the document docs/deployment.md shows."""

from __future__ import annotations

import json
from dataclasses import replace

from e2e_support import json_blocks, mlsync

from mlflow_sagemaker_registry.config import Settings
from mlflow_sagemaker_registry.iam_policy import DELETE_ACTION, SHARING_ACTIONS, iam_policy

DOCS_SETTINGS = Settings(s3_prefix="s3://ml-artifacts-prod/mlsync")
ACCOUNT = "123456789012"


def the_documented_policy() -> object:
    (policy,) = [
        block for block in json_blocks("deployment.md") if "sagemaker:CreateModelPackage" in str(block)
    ]
    return policy


def test_the_policy_of_the_documented_settings_is_the_one_deployment_md_shows() -> None:
    assert iam_policy(DOCS_SETTINGS, ACCOUNT) == the_documented_policy()


def test_the_group_prefix_region_and_prefix_narrow_the_resources() -> None:
    settings = replace(DOCS_SETTINGS, group_prefix="team-a", region="eu-west-1", s3_prefix="s3://bucket")
    sagemaker, listing, objects, bucket, _ = iam_policy(settings, ACCOUNT)["Statement"]
    assert sagemaker["Resource"] == [
        f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:model-package-group/team-a-*",
        f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:model-package/team-a-*",
    ]
    assert listing["Resource"] == "*"  # list actions take no resource ARN
    assert (objects["Resource"], bucket["Resource"]) == ("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket")


def test_deleting_packages_is_allowed_only_when_on_delete_deletes() -> None:
    assert DELETE_ACTION not in iam_policy(DOCS_SETTINGS)["Statement"][0]["Action"]
    deleting = replace(DOCS_SETTINGS, on_delete="delete")
    assert DELETE_ACTION in iam_policy(deleting)["Statement"][0]["Action"]


def test_the_command_prints_it_as_json_and_needs_an_s3_prefix() -> None:
    printed = mlsync(
        "iam-policy", "--account", ACCOUNT, env={"MLSYNC_S3_PREFIX": "s3://ml-artifacts-prod/mlsync"}
    )
    assert printed.exit_code == 0 and json.loads(printed.output) == the_documented_policy()
    missing = mlsync("iam-policy", env={"MLSYNC_S3_PREFIX": ""})
    assert missing.exit_code == 2 and "no S3 prefix" in missing.output


def test_sharing_adds_the_group_policy_calls() -> None:
    assert not set(SHARING_ACTIONS) & set(iam_policy(DOCS_SETTINGS)["Statement"][0]["Action"])
    sharing = replace(DOCS_SETTINGS, share_with=("111122223333",))
    assert set(SHARING_ACTIONS) <= set(iam_policy(sharing)["Statement"][0]["Action"])
