"""mapping/sharing.py: the group resource policy mlsync keeps for `share_with`, pure."""

from __future__ import annotations

import json

import pytest
from e2e_support import json_blocks

from mlflow_sagemaker_registry.errors import MappingError
from mlflow_sagemaker_registry.mapping.sharing import (
    MAX_POLICY,
    NOT_SHARED,
    merged_policy,
    own_statements,
    policy_record,
    same_policy,
)

GROUP_ARN = "arn:aws:sagemaker:eu-west-1:123456789012:model-package-group/churn"
FOREIGN = {"Sid": "AuditorsRead", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}}


def test_one_statement_for_the_group_and_one_for_its_packages_with_accounts_sorted() -> None:
    group, packages = own_statements(GROUP_ARN, ["222233334444", "111122223333", "222233334444"])

    principal = {"AWS": ["arn:aws:iam::111122223333:root", "arn:aws:iam::222233334444:root"]}
    assert group == {
        "Sid": "MlsyncReadGroup",
        "Effect": "Allow",
        "Principal": principal,
        "Action": ["sagemaker:DescribeModelPackageGroup"],
        "Resource": GROUP_ARN,
    }
    assert packages == {
        "Sid": "MlsyncReadAndDeployPackages",
        "Effect": "Allow",
        "Principal": principal,
        "Action": ["sagemaker:CreateModel", "sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages"],
        "Resource": "arn:aws:sagemaker:eu-west-1:123456789012:model-package/churn/*",
    }


def test_the_partition_of_the_group_names_the_principals() -> None:
    arn = "arn:aws-cn:sagemaker:cn-north-1:123456789012:model-package-group/churn"
    (group, _) = own_statements(arn, ["111122223333"])
    assert group["Principal"] == {"AWS": ["arn:aws-cn:iam::111122223333:root"]}


def test_the_record_does_not_depend_on_the_order_of_the_accounts() -> None:
    first = policy_record(own_statements(GROUP_ARN, ["111122223333", "222233334444"]))
    second = policy_record(own_statements(GROUP_ARN, ["222233334444", "111122223333"]))
    assert first == second and first.startswith("sha256:")
    assert policy_record(own_statements(GROUP_ARN, [])) == NOT_SHARED


def test_a_new_policy_is_deterministic_json_of_mlsyncs_statements() -> None:
    own = own_statements(GROUP_ARN, ["111122223333"])
    text = merged_policy("churn", None, own)
    assert text == json.dumps(
        {"Statement": own, "Version": "2012-10-17"}, sort_keys=True, separators=(",", ":")
    )


def test_statements_someone_else_wrote_are_kept_and_mlsyncs_replaced() -> None:
    stale = own_statements(GROUP_ARN, ["555566667777"])
    held = json.dumps({"Version": "2012-10-17", "Statement": [FOREIGN, *stale]})
    own = own_statements(GROUP_ARN, ["111122223333"])

    merged = merged_policy("churn", held, own)

    assert merged is not None and json.loads(merged)["Statement"] == [FOREIGN, *own]
    # share_with emptied: the others' statement stays, alone; nothing left at all: no policy.
    assert json.loads(merged_policy("churn", held, []) or "")["Statement"] == [FOREIGN]
    assert merged_policy("churn", json.dumps({"Statement": stale}), []) is None
    assert merged_policy("churn", json.dumps({"Statement": FOREIGN}), []) is not None  # one object


def test_policies_are_compared_normalised_not_as_text() -> None:
    own = own_statements(GROUP_ARN, ["111122223333", "222233334444"])
    text = merged_policy("churn", None, own)
    group, packages = json.loads(text or "")["Statement"]
    group["Action"] = group["Action"][0]  # one action as a string, as AWS may give it back
    packages["Principal"]["AWS"].reverse()
    rewritten = json.dumps({"Statement": [packages, group], "Version": "2012-10-17"}, indent=2)

    assert same_policy(text, rewritten)
    assert not same_policy(text, merged_policy("churn", None, own[:1]))
    assert same_policy(None, None) and not same_policy(text, None)


def test_a_held_policy_that_is_not_a_document_is_a_problem_naming_the_fix() -> None:
    with pytest.raises(MappingError, match=r"not a JSON policy document.*delete-model-package-group-policy"):
        merged_policy("churn", "not json", [])


def test_a_policy_longer_than_sagemaker_takes_is_a_problem_naming_the_fix() -> None:
    padding = {"Sid": "Big", "Effect": "Allow", "Action": ["x" * MAX_POLICY]}
    held = json.dumps({"Statement": [padding]})
    with pytest.raises(MappingError, match=r"more than SageMaker's 20480.*share_with"):
        merged_policy("churn", held, own_statements(GROUP_ARN, ["111122223333"]))


def test_the_policy_deployment_md_shows_is_the_one_mlsync_writes() -> None:
    (documented,) = [block for block in json_blocks("deployment.md") if "MlsyncReadGroup" in str(block)]
    arn = "arn:aws:sagemaker:us-east-1:111111111111:model-package-group/churn-model"
    written = merged_policy("churn-model", None, own_statements(arn, ["222222222222"]))
    assert json.loads(written or "") == documented
