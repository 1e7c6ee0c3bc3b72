"""Finding the vector engine and the model registry: configured, or the embedded servers."""

from __future__ import annotations

from lambdarec.names import MILVUS_SERVICE, MLFLOW_SERVICE
from lambdarec.runtime.errors import ServiceNotRunningError
from lambdarec.settings import Settings


def milvus_uri(settings: Settings) -> str:
    """The Milvus URI for ``pymilvus.MilvusClient(uri=...)``.

    Returns ``settings.milvus.uri`` when set, else the embedded server's recorded endpoint.
    Pass ``settings.milvus.token`` along as the client's token.

    Raises:
        ServiceNotRunningError: Nothing is configured and the embedded Milvus is not up.
    """
    if settings.milvus.uri:
        return settings.milvus.uri
    from lambdarec.runtime.milvus import MilvusService
    from lambdarec.runtime.supervisor import Supervisor

    endpoint = Supervisor(settings, [MilvusService(settings)]).endpoint(MILVUS_SERVICE)
    if endpoint is None:
        raise ServiceNotRunningError(
            "the embedded Milvus is not running: start it with `lambdarec services up milvus` "
            "or set LAMBDAREC_MILVUS__URI"
        )
    return endpoint


def mlflow_tracking_uri(settings: Settings) -> str:
    """The MLflow tracking (and registry) URI.

    Returns ``settings.mlflow.tracking_uri`` when set, else the embedded server's endpoint.

    Raises:
        ServiceNotRunningError: Nothing is configured and the embedded MLflow is not up.
    """
    if settings.mlflow.tracking_uri:
        return settings.mlflow.tracking_uri
    from lambdarec.runtime.mlflow import MlflowService
    from lambdarec.runtime.supervisor import Supervisor

    endpoint = Supervisor(settings, [MlflowService(settings)]).endpoint(MLFLOW_SERVICE)
    if endpoint is None:
        raise ServiceNotRunningError(
            "the embedded MLflow server is not running: start it with `lambdarec services up mlflow` "
            "or set LAMBDAREC_MLFLOW__TRACKING_URI"
        )
    return endpoint
