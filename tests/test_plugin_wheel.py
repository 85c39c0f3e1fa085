"""The registry-store entry points work from an installed wheel, not only from the source tree.

MLflow finds plugins through installed distribution metadata, and only warns when one fails to load, so
a wheel that lost its entry points (or a module) would pass every in-tree test. This builds a wheel from a
copy of the sources, installs it into a fresh virtual environment that borrows this environment's
packages (so mlflow is not reinstalled), and uses the store from there, outside the source tree.
"""

from __future__ import annotations

import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from install_support import copy_sources, run

CHECK = """
import importlib.metadata, mlflow, mlflow_sagemaker_registry
client = mlflow.MlflowClient(tracking_uri="sqlite:///mlflow.db", registry_uri="mlsync+sqlite:///mlflow.db")
client.create_registered_model("wheel model")
store = client._get_registry_client().store
(point,) = importlib.metadata.entry_points(group="mlflow.model_registry_store", name="mlsync+sqlite")
print(type(store).__name__)
print(mlflow_sagemaker_registry.__file__)
print(point.dist.locate_file(""))
print([m.name for m in client.search_registered_models()])
"""


@pytest.mark.e2e
def test_the_entry_points_load_from_an_installed_wheel(tmp_path: Path) -> None:
    source = copy_sources(tmp_path / "source")
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--quiet",
        "-w",
        tmp_path / "dist",
        source,
        cwd=tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("mlflow_sagemaker_registry-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (entry_points,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        assert "[mlflow.model_registry_store]" in archive.read(entry_points).decode()

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(
        run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip()
    )
    # This environment's packages (mlflow, boto3, pip) after the new environment's own: a plain path
    # entry, so the editable install of the source tree here (a .pth finder) is not picked up.
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", wheel, cwd=tmp_path)

    work = tmp_path / "work"
    work.mkdir()
    kind, module, distribution, models = run(python, "-c", CHECK, cwd=work).splitlines()

    assert kind == "MirroringStore"
    assert Path(module).is_relative_to(site)  # the wheel's copy, not the source tree
    assert Path(distribution).resolve() == site.resolve()
    assert models == "['wheel model']"
