"""MLflow tracking of model training: params, metrics, plots, models with signatures, registry aliases."""
