"""A plain install is light: mlflow-skinny, boto3, click, PyYAML; each other path names the extra it needs.

The end-to-end test installs a wheel of the sources into a fresh virtual environment with its plain
requirements only (as `pip install mlflow-sagemaker-registry` would: from the package index, through
pip's cache) and runs `mlsync plan` and `mlsync push` from there against a real `mlflow server` and the
emulator, both run from this environment. The other tests make a module missing here and check the
error that names the extra.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow.sagemaker
import pytest
from e2e_support import mlsync
from install_support import Estate, copy_sources, estate, register, run

from mlflow_sagemaker_registry.errors import MissingExtraError
from mlflow_sagemaker_registry.extras import FULL, SERVE, install_hint, needs
from mlflow_sagemaker_registry.mapping.tags import TAG_PACKAGE_ARN
from mlflow_sagemaker_registry.sources.mlflow_registry import require_store_support
from mlflow_sagemaker_registry.sources.mlflow_serving import PyfuncRunner, pyfunc_environment

MODEL = "light install model"

# Neither the full MLflow nor what only it brings may be in a plain install.
ABSENT = ("sqlalchemy", "alembic", "flask", "pandas", "numpy", "pyarrow", "sklearn", "scipy")
PROBE = f"""
import importlib.metadata, importlib.util, json
try:
    full = importlib.metadata.version("mlflow")
except importlib.metadata.PackageNotFoundError:
    full = None
found = [name for name in {ABSENT!r} if importlib.util.find_spec(name) is not None]
print(json.dumps({{"mlflow": full, "skinny": importlib.metadata.version("mlflow-skinny"), "found": found}}))
"""


# --- the written-down environment, and the errors naming an extra ----------------------------------------


def test_the_pyfunc_environment_is_what_the_installed_mlflow_gives_its_sagemaker_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for proxy in ("http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    given = mlflow.sagemaker._get_deployment_config(flavor_name="python_function")

    assert pyfunc_environment() == given


def test_a_missing_module_names_the_extra_that_brings_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # `import uvicorn` now fails as if not installed

    with pytest.raises(MissingExtraError) as raised, needs(SERVE, "mlsync serve"):
        import uvicorn  # noqa: F401

    assert raised.value.extra == SERVE
    assert str(raised.value) == (
        "mlsync serve needs uvicorn, which is missing or too old here: "
        "pip install 'mlflow-sagemaker-registry[serve]'"
    )


def test_a_missing_module_of_mlsync_itself_is_not_blamed_on_an_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow_sagemaker_registry.no_such_module", None)

    with pytest.raises(ImportError) as raised, needs(SERVE, "mlsync serve"):
        import mlflow_sagemaker_registry.no_such_module  # type: ignore[import-not-found]  # noqa: F401

    assert not isinstance(raised.value, MissingExtraError)


def test_mlsync_serve_without_the_serve_extra_says_which_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "starlette.applications", None)
    monkeypatch.delitem(sys.modules, "mlflow_sagemaker_registry.triggers.webhook.receiver", raising=False)

    result = mlsync("serve", env={"MLSYNC_WEBHOOK_SECRET": "s" * 32})

    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: mlsync serve needs starlette, which is missing or too old here: {install_hint(SERVE)}"
    )


def test_verify_without_the_full_mlflow_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow.pyfunc", None)

    with pytest.raises(MissingExtraError, match=r"needs mlflow, .*\[full\]'$") as raised:
        PyfuncRunner()

    assert raised.value.extra == FULL


@pytest.mark.parametrize("uri", ["sqlite:///mlflow.db", "mlsync+postgresql://u:secret@db/mlflow"])
def test_a_sql_store_without_sqlalchemy_says_which_extra_to_install(
    uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)

    with pytest.raises(MissingExtraError, match=r"needs sqlalchemy, .*\[full\]'$") as raised:
        require_store_support(uri)

    assert "secret" not in str(raised.value)


@pytest.mark.parametrize("uri", ["http://127.0.0.1:5000", "mlsync+https://mlflow.example.com", "databricks"])
def test_a_server_store_needs_no_sqlalchemy(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)

    require_store_support(uri)  # no error


# --- a real plain install ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Estate, Path]]:
    """The emulator, an MLflow server with a version of MODEL, and a venv holding a plain install."""
    root = tmp_path_factory.mktemp("light")
    sources = copy_sources(root / "sources")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", root / "dist", sources, cwd=root)
    (wheel,) = (root / "dist").glob("*.whl")
    venv = root / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root)
    # This environment's pip installs into the new one: its cache serves what it downloaded before.
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q"]
    run(*pip, "--disable-pip-version-check", wheel, cwd=root)
    with estate(root) as found:
        register(found, MODEL)
        yield found, venv


@pytest.mark.e2e
@pytest.mark.install
def test_a_plain_install_has_the_mlflow_client_only(plain: tuple[Estate, Path]) -> None:
    estate, venv = plain

    installed = json.loads(run(venv / "bin" / "python", "-c", PROBE, cwd=estate.root))
    version = run(venv / "bin" / "mlsync", "--version", cwd=estate.root, env=estate.env)

    assert installed == {"mlflow": None, "skinny": installed["skinny"], "found": []}
    assert version.startswith(f"mlsync 0.1.0 (mlflow-skinny {installed['skinny']}, boto3 ")


@pytest.mark.e2e
@pytest.mark.install
def test_a_plain_install_plans_and_pushes_against_an_mlflow_server(plain: tuple[Estate, Path]) -> None:
    estate, venv = plain
    mlsync_command = venv / "bin" / "mlsync"

    planned = run(mlsync_command, "plan", MODEL, cwd=estate.root, env=estate.env)
    run(mlsync_command, "push", MODEL, cwd=estate.root, env=estate.env)

    assert "create" in planned.lower()
    arn = mlflow.MlflowClient(estate.mlflow_url).get_model_version(MODEL, "1").tags[TAG_PACKAGE_ARN]
    package = estate.client("sagemaker").describe_model_package(ModelPackageName=arn)
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    again = run(mlsync_command, "plan", MODEL, cwd=estate.root, env=estate.env)
    assert "create" not in again.lower()


@pytest.mark.e2e
@pytest.mark.install
def test_a_plain_install_names_the_extra_for_a_sql_registry(plain: tuple[Estate, Path]) -> None:
    estate, venv = plain
    (estate.root / "local.db").touch()
    env = dict(estate.env) | {"MLFLOW_TRACKING_URI": "sqlite:///local.db"}

    command = [str(venv / "bin" / "mlsync"), "plan", "--all"]
    done = subprocess.run(command, cwd=estate.root, env=env, capture_output=True, text=True, check=False)

    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        f"needs sqlalchemy, which is missing or too old here: {install_hint(FULL)}"
    )
