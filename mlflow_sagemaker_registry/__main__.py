"""`python -m mlflow_sagemaker_registry` is `mlsync`."""

from .triggers.cli import main

main()
