"""Finding the vector engine and the model registry: configured, or the embedded servers."""

from __future__ import annotations

from lambdarec.settings import Settings


def milvus_uri(settings: Settings) -> str:
    """The Milvus URI for ``pymilvus.MilvusClient(uri=...)``.

    Returns ``settings.milvus.uri`` when set, else the embedded server's recorded endpoint.
    Pass ``settings.milvus.token`` along as the client's token.

    Raises:
        ServiceNotRunningError: Nothing is configured and the embedded Milvus is not up.
    """
    from lambdarec.runtime.milvus import MilvusService
    from lambdarec.runtime.supervisor import resolve_endpoint

    return resolve_endpoint(settings, settings.milvus.uri, MilvusService(settings), "LAMBDAREC_MILVUS__URI")


def mlflow_tracking_uri(settings: Settings) -> str:
    """The MLflow tracking (and registry) URI.

    Returns ``settings.mlflow.tracking_uri`` when set, else the embedded server's endpoint.

    Raises:
        ServiceNotRunningError: Nothing is configured and the embedded MLflow is not up.
    """
    from lambdarec.runtime.mlflow import MlflowService
    from lambdarec.runtime.supervisor import resolve_endpoint

    return resolve_endpoint(
        settings, settings.mlflow.tracking_uri, MlflowService(settings), "LAMBDAREC_MLFLOW__TRACKING_URI"
    )
