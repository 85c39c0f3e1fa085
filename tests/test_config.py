"""Settings: flags > MLSYNC_* environment > mlsync.toml > [tool.mlsync] in pyproject.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_sagemaker_registry.config import (
    DEFAULT_ALIAS_LIFECYCLE_STAGES,
    DEFAULT_ALIASES,
    DEFAULT_LIFECYCLE_STAGES,
    DEFAULT_STAGES,
    ApprovalRules,
    Settings,
    load_settings,
)
from mlflow_sagemaker_registry.domain import ApprovalStatus
from mlflow_sagemaker_registry.errors import ConfigError
from mlflow_sagemaker_registry.mapping.documents import make_document

APPROVED, REJECTED, PENDING = ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.PENDING


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def load(
    tmp_path: Path, flags: dict[str, object] | None = None, env: dict[str, str] | None = None
) -> Settings:
    return load_settings(flags or {}, env or {}, tmp_path)


def from_toml(tmp_path: Path, text: str) -> Settings:
    write(tmp_path / "mlsync.toml", text)
    return load(tmp_path)


# --- defaults and precedence ------------------------------------------------------------------------


def test_defaults_without_any_source(tmp_path: Path) -> None:
    settings = load(tmp_path)
    assert settings == Settings()
    assert settings.tracking_uri is None and settings.registry_uri is None and settings.region is None
    assert settings.s3_prefix is None and settings.source_id is None and settings.image is None
    assert settings.group_prefix == ""
    assert settings.images == {}
    assert settings.headline_metric is None
    assert settings.retry_mode == "standard"
    assert settings.max_attempts == 10
    assert settings.safety_min_existing == 10
    assert settings.safety_max_fraction == 0.3
    assert settings.approval == ApprovalRules()
    assert settings.approval.tag == "sagemaker.approval"
    assert dict(settings.approval.stages) == {
        "Production": APPROVED,
        "Archived": REJECTED,
        "Staging": PENDING,
        "None": PENDING,
    }
    assert dict(settings.approval.aliases) == {"champion": APPROVED}
    assert dict(settings.approval.lifecycle_stages) == {
        "None": "Development",
        "Staging": "PreProduction",
        "Production": "Production",
        "Archived": "Archived",
    }
    assert dict(settings.approval.alias_lifecycle_stages) == {"champion": "Production"}


def test_each_level_overrides_the_ones_below(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.mlsync]\nregion = "pyproject"\nsource_id = "pyproject"\n')
    assert load(tmp_path).region == "pyproject"
    write(tmp_path / "mlsync.toml", 'region = "file"\nheadline_metric = "file"\n')
    settings = load(tmp_path)
    assert settings.region == "file"
    assert settings.headline_metric == "file"
    # mlsync.toml is the file: pyproject.toml is not read at all then.
    assert settings.source_id is None
    env = {"MLSYNC_REGION": "env", "MLSYNC_HEADLINE_METRIC": "env-metric"}
    settings = load(tmp_path, env=env)
    assert settings.region == "env"
    assert settings.headline_metric == "env-metric"
    settings = load(tmp_path, flags={"region": "flag"}, env=env)
    assert settings.region == "flag"
    assert settings.headline_metric == "env-metric"


def test_a_flag_given_as_none_is_not_given(tmp_path: Path) -> None:
    settings = load(tmp_path, flags={"region": None, "s3_prefix": None}, env={"MLSYNC_REGION": "env"})
    assert settings.region == "env"
    assert settings.s3_prefix is None


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("tracking_uri", "http://mlflow:5000", "http://mlflow:5000"),
        ("registry_uri", "sqlite:///r.db", "sqlite:///r.db"),
        ("region", "eu-west-1", "eu-west-1"),
        ("s3_prefix", "s3://bucket/p", "s3://bucket/p"),
        ("source_id", "prod-registry", "prod-registry"),
        ("group_prefix", "team-a", "team-a"),
        ("image", "123.dkr.ecr/x:1", "123.dkr.ecr/x:1"),
        ("headline_metric", "test_f1", "test_f1"),
        ("retry_mode", "adaptive", "adaptive"),
        ("max_attempts", "4", 4),
        ("concurrency", "32", 32),
        ("safety_min_existing", " 25 ", 25),
        ("safety_max_fraction", "0.5", 0.5),
    ],
)
def test_every_scalar_setting_reads_its_mlsync_variable(
    tmp_path: Path, name: str, raw: str, value: object
) -> None:
    settings = load(tmp_path, env={f"MLSYNC_{name.upper()}": raw})
    assert getattr(settings, name) == value
    assert type(getattr(settings, name)) is type(value)


@pytest.mark.parametrize("raw", ["0", "-1", "129"])
def test_concurrency_outside_one_to_128_is_refused_with_the_range(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ConfigError, match=r"concurrency .*: use 1 \(one request at a time\) to 128"):
        load(tmp_path, env={"MLSYNC_CONCURRENCY": raw})


def test_the_process_environment_and_working_directory_are_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "mlsync.toml", 'source_id = "from-cwd"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLSYNC_REGION", "from-environ")
    settings = load_settings()
    assert settings.region == "from-environ"
    assert settings.source_id == "from-cwd"


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("MLSYNC_MAX_ATTEMPTS", "many"),
        ("MLSYNC_SAFETY_MIN_EXISTING", "1.5"),
        ("MLSYNC_SAFETY_MAX_FRACTION", "x"),
    ],
)
def test_a_malformed_number_in_the_environment_names_the_variable(
    tmp_path: Path, name: str, raw: str
) -> None:
    with pytest.raises(ConfigError, match=name):
        load(tmp_path, env={name: raw})


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ('max_attempts = "many"', "max_attempts"),
        ("max_attempts = true", "max_attempts"),
        ("max_attempts = 2.5", "max_attempts"),
        ("safety_max_fraction = false", "safety_max_fraction"),
        ('group_prefix = ["a"]', "group_prefix"),
        ("region = { name = 'x' }", "region"),
        ("group_prefix = true", "group_prefix"),
    ],
)
def test_a_value_of_the_wrong_type_in_the_file_is_refused(tmp_path: Path, line: str, name: str) -> None:
    with pytest.raises(ConfigError, match=f"'{name}' from the config file"):
        from_toml(tmp_path, line + "\n")


def test_numbers_in_the_file_are_coerced(tmp_path: Path) -> None:
    settings = from_toml(tmp_path, "max_attempts = 3\nsafety_max_fraction = 1\nsafety_min_existing = 0\n")
    assert settings.max_attempts == 3
    assert settings.safety_max_fraction == 1.0 and isinstance(settings.safety_max_fraction, float)
    assert settings.safety_min_existing == 0


# --- the file ---------------------------------------------------------------------------------------


def test_config_flag_names_the_file_and_beats_the_working_directory(tmp_path: Path) -> None:
    write(tmp_path / "mlsync.toml", 'region = "cwd"\n')
    other = write(tmp_path / "other.toml", 'region = "other"\n')
    assert load(tmp_path, flags={"config": str(other)}).region == "other"


def test_mlsync_config_names_the_file_and_the_flag_beats_it(tmp_path: Path) -> None:
    env_file = write(tmp_path / "env.toml", 'region = "env-file"\n')
    flag_file = write(tmp_path / "flag.toml", 'region = "flag-file"\n')
    assert load(tmp_path, env={"MLSYNC_CONFIG": str(env_file)}).region == "env-file"
    settings = load(tmp_path, flags={"config": str(flag_file)}, env={"MLSYNC_CONFIG": str(env_file)})
    assert settings.region == "flag-file"


def test_a_named_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path, flags={"config": str(tmp_path / "missing.toml")})
    with pytest.raises(ConfigError, match="MLSYNC_CONFIG"):
        load(tmp_path, env={"MLSYNC_CONFIG": str(tmp_path)})  # a directory is not a file


def test_a_named_pyproject_is_read_through_its_tool_table(tmp_path: Path) -> None:
    write(tmp_path / "mlsync.toml", 'region = "cwd"\n')
    (tmp_path / "sub").mkdir()
    named = write(
        tmp_path / "sub" / "pyproject.toml", '[project]\nname = "x"\n\n[tool.mlsync]\nregion = "tool"\n'
    )
    assert load(tmp_path, flags={"config": str(named)}).region == "tool"


def test_a_named_pyproject_without_a_tool_table_gives_defaults(tmp_path: Path) -> None:
    named = write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n\n[tool.ruff]\nline-length = 100\n')
    assert load(tmp_path, flags={"config": str(named)}) == Settings()


def test_a_pyproject_without_a_tool_table_in_the_working_directory_gives_defaults(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    assert load(tmp_path) == Settings()


@pytest.mark.parametrize("text", ['[tool]\nmlsync = "x"\n', "[tool]\nmlsync = 3\n"])
def test_a_tool_mlsync_that_is_not_a_table_is_an_error(tmp_path: Path, text: str) -> None:
    write(tmp_path / "pyproject.toml", text)
    with pytest.raises(ConfigError, match=r"\[tool.mlsync\]"):
        load(tmp_path)


def test_a_tool_key_that_is_not_a_table_is_ignored(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", 'tool = "x"\n')
    assert load(tmp_path) == Settings()


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "mlsync.toml", "region = \n")
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load(tmp_path)
    assert str(path) in str(caught.value)


def test_unknown_settings_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        from_toml(tmp_path, 'regoin = "x"\ns3prefix = "y"\nregion = "ok"\n')
    assert "['regoin', 's3prefix']" in str(caught.value)
    assert "docs/configuration.md" in str(caught.value)


def test_config_is_not_a_file_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\['config'\]"):
        from_toml(tmp_path, 'config = "x.toml"\n')


# --- images -----------------------------------------------------------------------------------------


def test_images_per_model_and_the_global_image(tmp_path: Path) -> None:
    settings = from_toml(tmp_path, 'image = "global:1"\n[images]\nchurn = "churn:2"\n"my model" = "m:3"\n')
    assert settings.images == {"churn": "churn:2", "my model": "m:3"}
    assert settings.image_for("churn") == "churn:2"
    assert settings.image_for("my model") == "m:3"
    assert settings.image_for("fraud") == "global:1"
    assert Settings().image_for("churn") is None


@pytest.mark.parametrize("text", ['images = "x"\n', "[images]\nchurn = 3\n"])
def test_images_must_be_a_table_of_strings(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"\[images\]"):
        from_toml(tmp_path, text)


# --- approval tables --------------------------------------------------------------------------------


def test_stages_and_lifecycle_stages_merge_into_the_defaults(tmp_path: Path) -> None:
    settings = from_toml(
        tmp_path,
        '[approval.stages]\nStaging = "Approved"\nCanary = "Rejected"\n'
        '[approval.lifecycle_stages]\nStaging = "QA"\nCanary = "Canary-1"\n',
    )
    rules = settings.approval
    assert dict(rules.stages) == {**DEFAULT_STAGES, "Staging": APPROVED, "Canary": REJECTED}
    assert dict(rules.lifecycle_stages) == {**DEFAULT_LIFECYCLE_STAGES, "Staging": "QA", "Canary": "Canary-1"}
    assert dict(rules.aliases) == DEFAULT_ALIASES
    assert dict(rules.alias_lifecycle_stages) == DEFAULT_ALIAS_LIFECYCLE_STAGES


def test_aliases_and_alias_lifecycle_stages_replace_the_defaults_in_file_order(tmp_path: Path) -> None:
    settings = from_toml(
        tmp_path,
        '[approval]\ntag = "deploy.approval"\n'
        '[approval.aliases]\nblocked = "Rejected"\nprod = "Approved"\n'
        '[approval.alias_lifecycle_stages]\nprod = "Production"\n',
    )
    rules = settings.approval
    assert rules.tag == "deploy.approval"
    assert list(rules.aliases.items()) == [("blocked", REJECTED), ("prod", APPROVED)]
    assert dict(rules.alias_lifecycle_stages) == {"prod": "Production"}
    assert dict(rules.stages) == DEFAULT_STAGES


def test_an_empty_aliases_table_turns_alias_approval_off(tmp_path: Path) -> None:
    settings = from_toml(tmp_path, "[approval.aliases]\n[approval.alias_lifecycle_stages]\n")
    assert dict(settings.approval.aliases) == {}
    assert dict(settings.approval.alias_lifecycle_stages) == {}


@pytest.mark.parametrize("table", ["stages", "aliases"])
@pytest.mark.parametrize("status", ["approved", "Pending", "yes", ""])
def test_a_status_sagemaker_does_not_know_is_refused_with_the_choices(
    tmp_path: Path, table: str, status: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        from_toml(tmp_path, f'[approval.{table}]\nStaging = "{status}"\n')
    message = str(caught.value)
    assert f"[approval.{table}] Staging = {status!r}" in message
    assert "Approved, Rejected, PendingManualApproval" in message


@pytest.mark.parametrize("table", ["lifecycle_stages", "alias_lifecycle_stages"])
@pytest.mark.parametrize(
    "stage", ["Pre Production", "-QA", "QA-", "Pre_Production", "", "x" * 64, "a" + "-" * 70 + "b"]
)
def test_a_lifecycle_stage_sagemaker_would_refuse_is_a_config_error(
    tmp_path: Path, table: str, stage: str
) -> None:
    with pytest.raises(ConfigError, match=rf"\[approval.{table}\] Staging"):
        from_toml(tmp_path, f'[approval.{table}]\nStaging = "{stage}"\n')


def test_a_lifecycle_stage_of_63_characters_is_accepted(tmp_path: Path) -> None:
    settings = from_toml(tmp_path, f'[approval.lifecycle_stages]\nStaging = "{"x" * 63}"\n')
    assert settings.approval.lifecycle_stages["Staging"] == "x" * 63


@pytest.mark.parametrize(
    "text",
    [
        'approval = "x"\n',
        '[approval]\nstages = "Approved"\n',
        "[approval.aliases]\nchampion = 1\n",
        "[approval.lifecycle_stages]\nStaging = 1\n",
    ],
)
def test_approval_tables_of_the_wrong_shape_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="approval"):
        from_toml(tmp_path, text)


def test_unknown_keys_in_the_approval_table_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        from_toml(tmp_path, '[approval.alias]\nchampion = "Approved"\n')
    assert "['alias']" in str(caught.value)
    assert "aliases" in str(caught.value)


# --- validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix",
    [
        "s3://bucket",
        "s3://bucket/",
        "s3://my.bucket-1/a/b/c",
        "s3://abc/p_x.y:z=1+2-3@4",
        "s3://" + "b" * 63 + "/p",
    ],
)
def test_valid_s3_prefixes(tmp_path: Path, prefix: str) -> None:
    settings = load(tmp_path, env={"MLSYNC_S3_PREFIX": prefix})
    assert settings.s3_prefix == prefix
    assert settings.require_s3_prefix() == prefix.rstrip("/")


@pytest.mark.parametrize(
    "prefix",
    [
        "bucket/prefix",
        "s3:/bucket",
        "https://bucket/p",
        "s3://Bucket/p",
        "s3://ab/p",
        "s3://" + "b" * 64,
        "s3://-bucket/p",
        "s3://bucket-/p",
        "s3://bucket/a b",
        "s3://bucket/a%20b",
        "s3://bucket/ü",
        "s3://bucket_x/p",
    ],
)
def test_invalid_s3_prefixes_are_refused(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(ConfigError, match="MLSYNC_S3_PREFIX"):
        load(tmp_path, flags={"s3_prefix": prefix})


def test_an_s3_prefix_must_leave_room_for_the_document_uri_in_metadata(tmp_path: Path) -> None:
    longest = "s3://bucket/" + "p" * (176 - len("s3://bucket/"))
    settings = load(tmp_path, flags={"s3_prefix": longest + "/"})
    uri = make_document(settings.require_s3_prefix(), {}).s3_uri
    assert len(uri) == 256  # CustomerMetadataValue max
    with pytest.raises(ConfigError, match="at most 176"):
        load(tmp_path, flags={"s3_prefix": longest + "p"})


def test_require_s3_prefix_explains_how_to_set_it() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings().require_s3_prefix()
    message = str(caught.value)
    assert "MLSYNC_S3_PREFIX" in message and "--s3-prefix" in message and "mlsync.toml" in message
    with pytest.raises(ConfigError):
        Settings(s3_prefix="").require_s3_prefix()


@pytest.mark.parametrize("prefix", ["team", "team-a", "a--b", "A1", "x" * 31])
def test_valid_group_prefixes(tmp_path: Path, prefix: str) -> None:
    assert load(tmp_path, env={"MLSYNC_GROUP_PREFIX": prefix}).group_prefix == prefix


@pytest.mark.parametrize(
    "prefix",
    ["-team", "team-", "team_a", "team a", "x" * 32, "a" + "-b" * 15 + "c", "a" + "-" * 40 + "b", "ü"],
)
def test_invalid_group_prefixes_are_refused(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(ConfigError, match="group_prefix"):
        load(tmp_path, env={"MLSYNC_GROUP_PREFIX": prefix})


@pytest.mark.parametrize("mode", ["standard", "adaptive", "legacy"])
def test_retry_modes_botocore_knows(tmp_path: Path, mode: str) -> None:
    assert load(tmp_path, env={"MLSYNC_RETRY_MODE": mode}).retry_mode == mode


def test_an_unknown_retry_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="retry_mode 'fast'"):
        load(tmp_path, env={"MLSYNC_RETRY_MODE": "fast"})


@pytest.mark.parametrize("fraction", ["0.01", "1", "1.0"])
def test_safety_fractions_in_range(tmp_path: Path, fraction: str) -> None:
    assert load(tmp_path, env={"MLSYNC_SAFETY_MAX_FRACTION": fraction}).safety_max_fraction == float(fraction)


@pytest.mark.parametrize("fraction", ["0", "-0.1", "1.01", "nan", "inf"])
def test_safety_fractions_out_of_range_are_refused(tmp_path: Path, fraction: str) -> None:
    with pytest.raises(ConfigError, match="safety_max_fraction"):
        load(tmp_path, env={"MLSYNC_SAFETY_MAX_FRACTION": fraction})


def test_approval_conflicts_is_sagemaker_unless_set_to_mlflow(tmp_path: Path) -> None:
    assert load_settings(env={}, cwd=tmp_path).approval_conflicts == "sagemaker"
    assert (
        load_settings(env={"MLSYNC_APPROVAL_CONFLICTS": "mlflow"}, cwd=tmp_path).approval_conflicts
        == "mlflow"
    )
    with pytest.raises(ConfigError, match=r"approval_conflicts 'both': use sagemaker .* or mlflow"):
        load_settings(env={"MLSYNC_APPROVAL_CONFLICTS": "both"}, cwd=tmp_path)


@pytest.mark.parametrize(("text", "value"), [("true", True), ("1", True), ("No", False), ("false", False)])
def test_a_switch_is_read_from_its_spelled_out_value(tmp_path: Path, text: str, value: bool) -> None:
    assert load_settings(env={"MLSYNC_PRUNE": text}, cwd=tmp_path).prune is value


def test_a_switch_that_is_not_true_or_false_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'prune' from MLSYNC_PRUNE must be a bool"):
        load_settings(env={"MLSYNC_PRUNE": "sometimes"}, cwd=tmp_path)
    (tmp_path / "mlsync.toml").write_text("prune = true\n")
    assert load_settings(env={}, cwd=tmp_path).prune is True


# --- [metadata] -------------------------------------------------------------------------------------

WORKSHOP_METADATA = """
[metadata]
"Algorithm" = "param:algorithm"
"Accuracy" = "metric:accuracy"
"Created by" = "user"
"Training dataset version" = "training_dataset_version"
"Team" = "run_tag:team"
"Owner" = "tag:owner"
"""


def test_the_metadata_table_maps_sagemaker_keys_to_mlflow_values(tmp_path: Path) -> None:
    settings = from_toml(tmp_path, WORKSHOP_METADATA)
    assert list(settings.metadata.items()) == [
        ("Algorithm", "param:algorithm"),
        ("Accuracy", "metric:accuracy"),
        ("Created by", "user"),
        ("Training dataset version", "training_dataset_version"),
        ("Team", "run_tag:team"),
        ("Owner", "tag:owner"),
    ]
    assert load(tmp_path / "nothing-here").metadata == {}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('"Algorithm" = "flavour"', "use one of param:<name>, metric:<name>"),
        ('"Algorithm" = "param"', "use one of"),
        ('"Created by" = "user:ana"', "use one of"),
        ('"Bad,key" = "user"', "a SageMaker metadata key is 1-128"),
        ('"metric.accuracy" = "metric:accuracy"', "may not start with mlflow., mlsync., param."),
        ('"Accuracy" = 0.9', r"\[metadata\] in the config file must be a table of strings"),
    ],
)
def test_a_bad_metadata_entry_is_refused_at_load_naming_it(tmp_path: Path, line: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        from_toml(tmp_path, f"[metadata]\n{line}\n")


# --- share_with -----------------------------------------------------------------------------------------


def test_share_with_is_an_array_in_the_file_and_comma_separated_in_the_environment(tmp_path: Path) -> None:
    assert from_toml(tmp_path, 'share_with = ["111122223333"]').share_with == ("111122223333",)
    settings = load(tmp_path, env={"MLSYNC_SHARE_WITH": "111122223333, 222233334444"})
    assert settings.share_with == ("111122223333", "222233334444")
    assert load(tmp_path, env={"MLSYNC_SHARE_WITH": ""}).share_with == ()


@pytest.mark.parametrize("account", ["11112222333", "1111-2222-3333", "arn:aws:iam::111122223333:root"])
def test_share_with_takes_only_account_ids(tmp_path: Path, account: str) -> None:
    with pytest.raises(ConfigError, match=f"share_with: '{account}' is not an AWS account id"):
        load(tmp_path, env={"MLSYNC_SHARE_WITH": account})
