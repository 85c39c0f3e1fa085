"""How MLflow serves a model on SageMaker: the pyfunc image's environment, and a model's predictions.

- `pyfunc_environment`: the container environment `mlflow.sagemaker` gives its pyfunc serving image.
- `PyfuncRunner`: load a model directory with `mlflow.pyfunc` and predict on its input example, with
  the result serialized exactly as MLflow's scoring server would answer it: what `mlsync verify`
  compares between the MLflow version and the SageMaker package.

`mlflow.sagemaker` and `mlflow.pyfunc` import pandas and NumPy, which mlflow-skinny (what a plain
install brings) lacks, so neither is imported here at module level: the environment is MLflow's, written
down (tests/test_light_install.py checks it against `mlflow.sagemaker` of the installed full MLflow), and
`PyfuncRunner` needs the `full` extra. Like `mlflow_registry.py`, this is a source module: the core
reaches it only through `ports`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.models import Model

from ..errors import SourceError
from ..extras import FULL, needs

_PYFUNC_ENVIRONMENT: Mapping[str, str] = {
    "MLFLOW_DEPLOYMENT_FLAVOR_NAME": "python_function",
    "SERVING_ENVIRONMENT": "SageMaker",
}
"""What `mlflow.sagemaker._get_deployment_config(flavor_name="python_function")` gives, less the local
proxy variables it copies from the deploying machine (they describe that machine's network, not the
endpoint's). The same in MLflow 2.x and 3.x; the serving image reads it at start-up."""


def pyfunc_environment() -> dict[str, str]:
    """The environment `mlflow sagemaker deploy` sets on the pyfunc container (flavor, serving mode)."""
    return dict(_PYFUNC_ENVIRONMENT)


class PyfuncRunner:
    """Loads MLflow model directories and predicts on input examples (`verify.Runner`).

    Raises:
        MissingExtraError: `mlflow.pyfunc` cannot be imported (mlflow-skinny without pandas and NumPy).
    """

    def __init__(self) -> None:
        with needs(FULL, "mlsync verify (loading models with mlflow.pyfunc)"):
            import mlflow.pyfunc
            from mlflow.pyfunc.scoring_server import predictions_to_json
        self._load_model = mlflow.pyfunc.load_model
        self._to_json: Callable[[Any, io.StringIO], None] = predictions_to_json

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
            model = self._load_model(str(model_dir))
            output = io.StringIO()
            self._to_json(model.predict(example), output)
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
            # As the image predicts: CSV rows carry no feature names, so they are not validated.
            predictions: list[Any] = booster.predict(
                xgboost.DMatrix(matrix), validate_features=False
            ).tolist()
        except (xgboost.core.XGBoostError, ValueError) as exc:
            raise SourceError(
                f"{model_file.name} does not load or predict as an XGBoost booster: {exc}"
            ) from exc
        return predictions
