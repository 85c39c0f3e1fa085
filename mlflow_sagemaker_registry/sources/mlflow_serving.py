"""How MLflow serves a model on SageMaker, asked of MLflow itself rather than copied from it.

- `pyfunc_environment`: the container environment `mlflow.sagemaker` gives its pyfunc serving image.
- `PyfuncRunner`: load a model directory with `mlflow.pyfunc` and predict on its input example, with
  the result serialized exactly as MLflow's scoring server would answer it: what `mlsync verify`
  compares between the MLflow version and the SageMaker package (and, for a package of SageMaker's
  built-in XGBoost image, loads its booster file as that image does).

Like `mlflow_registry.py`, this is a source module: the core reaches it only through `ports`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import mlflow.sagemaker
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.pyfunc.scoring_server import predictions_to_json

from ..errors import SourceError

# `_get_deployment_config` copies these from the environment of the machine that deploys: they describe
# that machine's network, not the endpoint's, so they never go into a model package.
_LOCAL_PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "no_proxy"})


def pyfunc_environment() -> dict[str, str]:
    """The environment `mlflow sagemaker deploy` sets on the pyfunc container (flavor, serving mode).

    Read from `mlflow.sagemaker._get_deployment_config` so that a new MLflow that needs another
    variable gets it without a change here.
    """
    config = mlflow.sagemaker._get_deployment_config(  # type: ignore[no-untyped-call]  # mlflow: untyped
        flavor_name=mlflow.pyfunc.FLAVOR_NAME
    )
    return {str(key): str(value) for key, value in config.items() if key not in _LOCAL_PROXY_VARIABLES}


class PyfuncRunner:
    """Loads MLflow model directories and predicts on input examples (`verify.Runner`)."""

    def input_example(self, model_dir: Path) -> Any | None:
        """The input example saved with the model, or None when it was logged without one.

        Raises:
            SourceError: the directory is not an MLflow model, or its example file is missing.
        """
        try:
            return Model.load(str(model_dir)).load_input_example(str(model_dir))
        except (MlflowException, OSError) as exc:
            raise SourceError(f"cannot read the input example of the model in {model_dir}: {exc}") from exc

    def predict(self, model_dir: Path, example: Any) -> Any:
        """`predict(example)` of the model in `model_dir`, as the JSON the scoring server would answer.

        Raises:
            SourceError: the model does not load or the prediction fails (with MLflow's reason).
        """
        try:
            model = mlflow.pyfunc.load_model(str(model_dir))
            output = io.StringIO()
            predictions_to_json(model.predict(example), output)  # type: ignore[no-untyped-call]
        except Exception as exc:  # a model's own code may raise anything; the report must name it
            raise SourceError(f"the model in {model_dir.name} failed to load or predict: {exc}") from exc
        document: Mapping[str, Any] = json.loads(output.getvalue())
        return document["predictions"]

    def predict_booster(self, model_file: Path, rows: str) -> Any:
        """What SageMaker's built-in XGBoost image answers for CSV `rows`: the file loaded as its
        algorithm mode loads it (`xgboost.Booster().load_model`), predicting on the rows as a matrix.

        Raises:
            SourceError: xgboost is not installed, or the file does not load as a booster.
        """
        try:
            import numpy as np
            import xgboost
        except ImportError as exc:
            raise SourceError(f"checking a built-in XGBoost package needs xgboost installed: {exc}") from exc
        try:
            booster = xgboost.Booster()
            booster.load_model(str(model_file))
            matrix = np.loadtxt(io.StringIO(rows), delimiter=",", ndmin=2)
            predictions: list[Any] = booster.predict(xgboost.DMatrix(matrix)).tolist()
        except (xgboost.core.XGBoostError, ValueError) as exc:
            raise SourceError(
                f"{model_file.name} does not load or predict as an XGBoost booster: {exc}"
            ) from exc
        return predictions
