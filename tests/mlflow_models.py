"""Real MLflow versions for tests: tiny scikit-learn models logged and registered the usual way.

The same helpers serve every supported MLflow client (scripts/test_mlflow2 runs the tests marked
`mlflow_compat` with the oldest, and test_mlflow2_server.py logs through it): `AS_MODEL` names the
logged model in each one's words.
"""

from __future__ import annotations

import inspect
from typing import Any

import mlflow
import numpy as np
import sklearn
from sklearn.linear_model import LinearRegression, LogisticRegression

AS_MODEL: dict[str, str] = (
    {"name": "model"}
    if "name" in inspect.signature(mlflow.sklearn.log_model).parameters
    else {"artifact_path": "model"}
)
"""`log_model`'s argument naming what is logged: `name` in MLflow 3 (a LoggedModel, `models:/m-...`
sources), `artifact_path` in MLflow 2 (a run artifact, `runs:/<run>/model` sources)."""

# 60 params of every awkward kind: lists, dicts, long strings, empty values, unicode, metadata-hostile
# characters. MLflow stores them all as strings; mlsync must give back exactly those strings.
AWKWARD_PARAMS: dict[str, Any] = {
    **{f"p{i:02d}": i * 0.5 for i in range(40)},
    "layers": [64, 32, 16],
    "optimizer": {"name": "adam", "lr": 0.001},
    "notes": "x" * 300,
    "empty": "",
    "unicode": "Größe über 9000 µm",
    "percent": "95%",
    "quoted": 'say "hi"',
    "paren": "f(x)",
    "comma": "a,b,c",
    "spaces": "  padded  ",
    "tuple": (1, 2),
    "none": None,
    "bool": True,
    "neg": -1e-7,
    "big": 12345678901234567890,
    "path": "s3://bucket/key/with=equals+plus@at",
    "newline": "line1\nline2",
    "braces": "{a}",
    "colon.key": "k:v",
    "slash/key": "v",
}


def log_version(
    name: str,
    *,
    kind: str = "classifier",
    params: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    seed: int = 0,
    description: str = "",
) -> str:
    """Train a tiny model, log it with params, metrics and a dataset, register it; return the version."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(40, 3))
    if kind == "classifier":
        target = (features[:, 0] + rng.normal(scale=0.1, size=40) > 0).astype(int)
        model: Any = LogisticRegression().fit(features, target)
    else:
        target = features @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=40)
        model = LinearRegression().fit(features, target)
    with mlflow.start_run():
        mlflow.set_tags(
            {"mlflow.source.git.commit": f"{seed:040x}", "mlflow.source.git.repoURL": "git@example:ml"}
        )
        if params:
            mlflow.log_params(params)
        for key, value in (metrics or {}).items():
            mlflow.log_metric(key, value)
        mlflow.log_input(
            mlflow.data.from_numpy(features, targets=target, name=f"train-{seed}"), context="training"
        )
        info = mlflow.sklearn.log_model(
            model,
            **AS_MODEL,
            registered_model_name=name,
            input_example=features[:2],
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],  # inferring them costs ~8 s a model
        )
    version = str(info.registered_model_version)
    if description:
        mlflow.MlflowClient().update_model_version(name, version, description)
    return version
