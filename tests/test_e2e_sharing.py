"""End to end: `share_with` through `mlsync plan` and `mlsync push`, a real SQLite MLflow registry and the
emulator process: the group's resource policy is created, shown in the plan, updated when `share_with`
changes and deleted when it is emptied, and a second push writes (and reads) nothing of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from e2e_support import building_registry, calls_since, mlsync, use_registry, writes
from mlflow_models import log_version

from mlflow_sagemaker_registry.emulator import EmulatorProcess
from mlflow_sagemaker_registry.mapping.identity import group_name

pytestmark = pytest.mark.e2e

BUCKET = "mlsync-e2e-sharing"
MODEL = "shared-model"
FIRST, SECOND = "111122223333", "222233334444"


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("sharing")
    with building_registry(root, "sharing"):
        log_version(MODEL)
        yield root


@pytest.fixture
def env(emulator: EmulatorProcess, registry_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return use_registry(monkeypatch, emulator.url, registry_dir, BUCKET)


def shared_with() -> list[str]:
    """The accounts the group's policy names, from what SageMaker holds."""
    policy = boto3.client("sagemaker").get_model_package_group_policy(ModelPackageGroupName=group_name(MODEL))
    statements = json.loads(policy["ResourcePolicy"])["Statement"]
    principals = {tuple(s["Principal"]["AWS"]) for s in statements}
    (accounts,) = principals
    return [arn.split(":")[4] for arn in accounts]


def push(share_with: str) -> None:
    result = mlsync("push", "--all", env={"MLSYNC_SHARE_WITH": share_with})
    assert result.exit_code == 0, result.output


def test_the_policy_follows_share_with_and_a_second_push_writes_nothing(
    env: dict[str, str], emulator: EmulatorProcess
) -> None:
    planned = mlsync("plan", "--all", env={"MLSYNC_SHARE_WITH": FIRST})
    assert planned.exit_code == 0, planned.output
    assert f"~ policy  {group_name(MODEL)}: share with {FIRST}" in planned.output

    push(FIRST)
    assert shared_with() == [FIRST]
    mark = len(emulator.calls())
    push(FIRST)
    assert writes(calls_since(emulator, mark)) == []
    assert "GetModelPackageGroupPolicy" not in {c.operation for c in calls_since(emulator, mark)}

    planned = mlsync("plan", "--all", env={"MLSYNC_SHARE_WITH": f"{SECOND},{FIRST}"})
    assert f"share with {FIRST}, {SECOND}" in planned.output
    mark = len(emulator.calls())
    push(f"{SECOND},{FIRST}")
    assert writes(calls_since(emulator, mark)) == ["PutModelPackageGroupPolicy"]
    assert shared_with() == [FIRST, SECOND]
    mark = len(emulator.calls())
    push(f"{FIRST},{SECOND}")
    assert writes(calls_since(emulator, mark)) == []

    push("")
    with pytest.raises(ClientError, match="does not exist"):
        shared_with()
    mark = len(emulator.calls())
    push("")
    assert calls_since(emulator, mark) and writes(calls_since(emulator, mark)) == []
