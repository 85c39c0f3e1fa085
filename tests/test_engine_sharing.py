"""`share_with` through the engine over the in-memory ports: the group policy is planned, applied and kept
in step, and what it costs: no call while nothing is shared, no read while the record is current."""

from __future__ import annotations

import json

import pytest
from test_engine import MODEL, World, kinds

from mlflow_sagemaker_registry.errors import GatewayError
from mlflow_sagemaker_registry.mapping.sharing import SID_PREFIX
from mlflow_sagemaker_registry.mapping.tags import TAG_GROUP_POLICY

SHARED = ("111122223333", "222233334444")
POLICY_CALLS = ("GetModelPackageGroupPolicy", "PutModelPackageGroupPolicy", "DeleteModelPackageGroupPolicy")


@pytest.fixture
def world() -> World:
    world = World()
    world.source.add_version(MODEL)
    return world


def policy_calls(world: World) -> list[str]:
    return [call for call in world.registry.calls if call in POLICY_CALLS]


def principals(world: World) -> list[list[str]]:
    statements = json.loads(world.registry.policies[MODEL])["Statement"]
    return [s["Principal"]["AWS"] for s in statements if s.get("Sid", "").startswith(SID_PREFIX)]


def test_without_share_with_no_policy_call_is_made(world: World) -> None:
    world.engine().push([MODEL])
    world.engine().push()

    assert policy_calls(world) == []
    assert TAG_GROUP_POLICY not in world.source.read_model(MODEL).tags


def test_a_new_group_is_shared_after_it_is_created_and_a_second_push_writes_nothing(world: World) -> None:
    plan, report = world.engine(share_with=SHARED).push([MODEL])

    assert kinds(plan.actions) == ["CreateGroup", "PutGroupPolicy", "CreatePackage"]
    assert report.ok and report.group_policies_written == [MODEL]
    assert policy_calls(world) == ["PutModelPackageGroupPolicy"]  # a new group has nothing to read
    assert principals(world) == [[f"arn:aws:iam::{a}:root" for a in SHARED]] * 2
    world.assert_writes_nothing(lambda: world.engine(share_with=SHARED).push([MODEL]))
    world.assert_writes_nothing(lambda: world.engine(share_with=SHARED).push())
    assert policy_calls(world) == []  # the record vouches for the policy: not even read
    assert world.source.model_tag_writes == []


def test_a_change_of_share_with_updates_the_policy_and_emptying_it_deletes_it(world: World) -> None:
    world.engine(share_with=SHARED[:1]).push([MODEL])
    world.forget_calls()

    plan, _ = world.engine(share_with=SHARED).push([MODEL])

    assert kinds(plan.actions) == ["PutGroupPolicy"]
    assert policy_calls(world) == ["GetModelPackageGroupPolicy", "PutModelPackageGroupPolicy"]
    assert principals(world)[0] == [f"arn:aws:iam::{a}:root" for a in SHARED]
    world.forget_calls()

    plan, _ = world.engine().push([MODEL])

    assert kinds(plan.actions) == ["DeleteGroupPolicy"]
    assert MODEL not in world.registry.policies
    assert world.source.read_model(MODEL).tags[TAG_GROUP_POLICY] == "none"
    world.assert_writes_nothing(lambda: world.engine().push([MODEL]))
    assert policy_calls(world) == []


def test_statements_someone_else_added_are_kept(world: World) -> None:
    world.engine(share_with=SHARED).push([MODEL])
    theirs = {"Sid": "AuditRead", "Effect": "Allow", "Action": "sagemaker:DescribeModelPackageGroup"}
    held = json.loads(world.registry.policies[MODEL])
    world.registry.policies[MODEL] = json.dumps({**held, "Statement": [theirs, *held["Statement"]]})

    world.engine(share_with=SHARED[1:]).push([MODEL])
    assert json.loads(world.registry.policies[MODEL])["Statement"][0] == theirs
    world.engine().push([MODEL])

    assert json.loads(world.registry.policies[MODEL])["Statement"] == [theirs]


def test_a_hand_edit_of_the_policy_is_seen_with_deep(world: World) -> None:
    world.engine(share_with=SHARED).push([MODEL])
    world.registry.policies[MODEL] = json.dumps({"Version": "2012-10-17", "Statement": []})

    assert world.engine(share_with=SHARED).plan([MODEL]).is_empty  # trusted by its record
    assert kinds(world.engine(share_with=SHARED).plan([MODEL], deep=True).actions) == ["PutGroupPolicy"]


def test_a_failed_policy_write_is_reported_and_does_not_stop_the_packages(world: World) -> None:
    world.registry.fail_next("PutModelPackageGroupPolicy", GatewayError("denied", "AccessDenied"))

    _, report = world.engine(share_with=SHARED).push([MODEL])

    assert [f.action for f in report.failures] == ["PutGroupPolicy"]
    assert len(report.packages_created) == 1
    assert TAG_GROUP_POLICY not in world.source.read_model(MODEL).tags  # so the next push retries
    _, again = world.engine(share_with=SHARED).push([MODEL])
    assert again.ok and again.group_policies_written == [MODEL]


def test_a_group_that_could_not_be_created_is_not_given_a_policy(world: World) -> None:
    world.registry.fail_next("CreateModelPackageGroup", GatewayError("denied", "AccessDenied"))

    _, report = world.engine(share_with=SHARED).push([MODEL])

    assert [f.action for f in report.failures] == ["CreateGroup", "PutGroupPolicy", "CreatePackage"]
    assert "could not be created" in report.failures[1].message
    assert policy_calls(world) == []


def test_a_pull_never_touches_the_policy(world: World) -> None:
    world.engine().push([MODEL])
    world.forget_calls()

    plan, _ = world.engine(share_with=SHARED).pull([MODEL])

    assert plan.is_empty and policy_calls(world) == []
