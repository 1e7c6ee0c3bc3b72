"""Versioned item-embedding collections in Milvus and the atomic alias swap.

Vectors are L2-normalised two-tower embeddings, so inner product (``IP``) is their cosine.
The index type is IVF_FLAT by default, chosen by ``bench/bench_retrieval.py`` on trained
two-tower embeddings (300k x 64, 2 shared cores): IVF_FLAT (nlist 1024, nprobe 32) reached
recall@100 0.979 at p50 2.5 ms / p99 6.9 ms, while HNSW (M 16, efConstruction 128) needed
ef 512 for recall@100 0.971 at p99 15 ms, and took longer to build (72 s vs 42 s). See
bench/results/retrieval.json.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lambdarec.names import ITEM_EMBEDDINGS_ALIAS

PRIMARY_FIELD = "item_index"
ITEM_ID_FIELD = "item_id"
VECTOR_FIELD = "embedding"
METRIC = "IP"
INDEX_PARAMS: dict[str, dict[str, Any]] = {
    "HNSW": {"M": 16, "efConstruction": 128},
    "IVF_FLAT": {"nlist": 1024},
    "FLAT": {},
}
"""Build parameters per index type."""
SEARCH_PARAMS: dict[str, dict[str, Any]] = {
    "HNSW": {"ef": 160},
    "IVF_FLAT": {"nprobe": 32},
    "FLAT": {},
}
"""Search parameters per index type (recall@100 >= 0.95 in the benchmark)."""
INSERT_BATCH = 20_000


def collection_name(model_version: str | int, alias: str = ITEM_EMBEDDINGS_ALIAS) -> str:
    """The collection holding the item embeddings of a model version, e.g. ``item_embeddings_v3``."""
    version = re.sub(r"[^0-9A-Za-z_]", "_", str(model_version))
    return f"{alias}_v{version}"


def connect(uri: str, token: str = "") -> Any:
    """A ``MilvusClient`` for ``uri`` (e.g. ``http://127.0.0.1:19530``)."""
    from pymilvus import MilvusClient

    return MilvusClient(uri=uri, token=token, timeout=60)


def connect_settings(settings: Any) -> Any:
    """A ``MilvusClient`` for the configured or embedded Milvus (see :func:`lambdarec.vectors.milvus_uri`)."""
    from lambdarec.vectors import milvus_uri

    return connect(milvus_uri(settings), settings.milvus.token.get_secret_value())


@dataclass
class BuildResult:
    """What ``build_collection`` wrote.

    Attributes:
        collection: Collection name.
        rows: Vectors inserted.
        dim: Vector size.
        index_type: HNSW, IVF_FLAT or FLAT.
        seconds: Insert + flush + index + load + segment merge time.
    """

    collection: str
    rows: int
    dim: int
    index_type: str
    seconds: float


def build_collection(
    client: Any,
    item_ids: Sequence[str],
    vectors: np.ndarray,
    model_version: str | int,
    *,
    index_type: str = "IVF_FLAT",
    alias: str = ITEM_EMBEDDINGS_ALIAS,
    replace: bool = True,
) -> BuildResult:
    """Write a model version's item embeddings to its own collection, indexed, loaded and merged
    into as few segments as Milvus makes (:func:`compact_loaded`), so no merge follows while it serves.

    Args:
        client: A ``MilvusClient``.
        item_ids: Item id of each row (row ``i`` gets primary key ``i``; empty ids are skipped,
            e.g. row 0, the catalogue's unknown item).
        vectors: (n, dim) float32 embeddings.
        model_version: The registered model version the embeddings belong to.
        index_type: ``IVF_FLAT`` (default), ``HNSW`` or ``FLAT``. IVF's ``nlist`` is
            ``4 * sqrt(rows)`` capped at 1024 (the benchmarked value).
        alias: The alias family (the collection is ``<alias>_v<version>``).
        replace: Drop an existing collection of the same version first (a rebuild); the
            collection the alias currently points at is never dropped.

    Raises:
        ValueError: Mismatched sizes, no vectors, NaN vectors, or an unknown index type.
    """
    from pymilvus import DataType, MilvusClient

    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(item_ids) != vectors.shape[0]:
        raise ValueError(f"need one id per vector row; got {len(item_ids)} ids and vectors of shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise ValueError("item embeddings contain NaN or infinity; refusing to index them")
    if index_type not in INDEX_PARAMS:
        raise ValueError(f"unknown index type {index_type!r}; choose one of {sorted(INDEX_PARAMS)}")
    keep = np.array([bool(i) for i in item_ids])
    if not keep.any():
        raise ValueError("no item embeddings to index")
    name = collection_name(model_version, alias)
    started = time.monotonic()
    if client.has_collection(name):
        if not replace:
            raise ValueError(f"collection {name} exists; pass replace=True to rebuild it")
        if current_collection(client, alias) == name:
            raise ValueError(f"{name} is live behind alias {alias!r}; swap the alias away before rebuilding it")
        client.drop_collection(name)
    dim = int(vectors.shape[1])
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field(PRIMARY_FIELD, DataType.INT64, is_primary=True)
    schema.add_field(ITEM_ID_FIELD, DataType.VARCHAR, max_length=128)
    schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=dim)
    client.create_collection(name, schema=schema)
    rows = np.flatnonzero(keep)
    for start in range(0, len(rows), INSERT_BATCH):
        part = rows[start : start + INSERT_BATCH]
        client.insert(
            name,
            [
                {PRIMARY_FIELD: int(i), ITEM_ID_FIELD: str(item_ids[i])[:128], VECTOR_FIELD: vectors[i].tolist()}
                for i in part
            ],
        )
    client.flush(name)
    index = client.prepare_index_params()
    params = dict(INDEX_PARAMS[index_type])
    if index_type == "IVF_FLAT":
        params["nlist"] = int(min(params["nlist"], max(1, 4 * np.sqrt(len(rows)))))
    index.add_index(field_name=VECTOR_FIELD, index_type=index_type, metric_type=METRIC, params=params)
    client.create_index(name, index)
    client.load_collection(name)
    compact_loaded(client, name)
    return BuildResult(name, len(rows), dim, index_type, time.monotonic() - started)


def compact_loaded(client: Any, name: str, timeout_s: float = 600.0, poll_s: float = 0.5) -> int:
    """Merge a loaded collection's flushed segments now and wait until the merged ones serve.

    Why: a bulk insert leaves several segments (three for 1M vectors of dim 64). About a
    minute after they are indexed, Milvus merges them on its own timer and indexes the merged
    segment: at 1M vectors that is ~45 s of one to two cores and 2-3 GB more RSS, landing on whatever
    is serving then (measured with bench/bench_retrieval.py). Asking for the merge here makes
    it part of the build (~50 s at 1M, nothing for a collection that is already one segment).

    Args:
        client: A ``MilvusClient``.
        name: A loaded collection.
        timeout_s: Longest wait for the merge and for the merged segments to be loaded.
        poll_s: Seconds between checks.

    Returns:
        The number of segments loaded afterwards.

    Raises:
        TimeoutError: The merge or the hand-over to the merged segments took longer than ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    job = client.compact(name)
    while client.get_compaction_state(job) != "Completed":
        if time.monotonic() > deadline:
            raise TimeoutError(f"Milvus did not finish compacting {name} within {timeout_s:g} s")
        time.sleep(poll_s)
    merged = {int(s) for plan in client.get_compaction_plans(job).plans for s in plan.sources}
    # The merged segment is indexed and loaded before its sources are released: wait for that.
    while merged & (loaded := {int(s.segment_id) for s in client.list_loaded_segments(name)}):
        if time.monotonic() > deadline:
            raise TimeoutError(f"Milvus did not load the merged segments of {name} within {timeout_s:g} s")
        time.sleep(poll_s)
    return len(loaded)


def current_collection(client: Any, alias: str = ITEM_EMBEDDINGS_ALIAS) -> str | None:
    """The collection the alias points at, or None when the alias does not exist."""
    # Listing avoids describe_alias, which logs an RPC error when the alias does not exist yet.
    for name in client.list_collections():
        listed = client.list_aliases(name)
        aliases = listed.get("aliases", []) if isinstance(listed, dict) else listed
        if alias in aliases:
            return str(name)
    return None


def swap_alias(client: Any, model_version: str | int, alias: str = ITEM_EMBEDDINGS_ALIAS) -> str | None:
    """Point the alias at the collection of ``model_version`` in one atomic step.

    Returns:
        The collection the alias pointed at before (None on the first build).

    Raises:
        ValueError: When the version's collection does not exist.
    """
    name = collection_name(model_version, alias)
    if not client.has_collection(name):
        raise ValueError(f"no collection {name}; run `lambdarec index build` for model version {model_version} first")
    previous = current_collection(client, alias)
    if previous == name:
        return previous
    if previous is None:
        client.create_alias(name, alias)
    else:
        client.alter_alias(name, alias)
    return previous


def restore_alias(client: Any, previous: str | None, alias: str = ITEM_EMBEDDINGS_ALIAS) -> None:
    """Put the alias back where :func:`swap_alias` found it: on ``previous``, or nowhere when it was None."""
    if previous is None:
        if current_collection(client, alias) is not None:
            client.drop_alias(alias)
    elif current_collection(client, alias) != previous:
        client.alter_alias(previous, alias)


def _search_hits(
    client: Any,
    queries: np.ndarray,
    k: int,
    collection: str,
    index_type: str,
    params: dict[str, Any] | None,
    timeout_s: float | None,
    output_fields: list[str] | None = None,
) -> Any:
    """Milvus's raw answer to a top-``k`` search (the one place search parameters are chosen)."""
    inner: dict[str, Any] = dict(params if params is not None else SEARCH_PARAMS.get(index_type, {}))
    if index_type == "HNSW":
        inner["ef"] = max(int(inner.get("ef", k)), k)
    return client.search(
        collection,
        data=np.asarray(queries, np.float32).tolist(),
        limit=k,
        anns_field=VECTOR_FIELD,
        search_params={"metric_type": METRIC, "params": inner},
        **({"output_fields": output_fields} if output_fields else {}),
        **({"timeout": timeout_s} if timeout_s is not None else {}),
    )


def search(
    client: Any,
    queries: np.ndarray,
    k: int = 100,
    *,
    collection: str = ITEM_EMBEDDINGS_ALIAS,
    index_type: str = "IVF_FLAT",
    params: dict[str, Any] | None = None,
    timeout_s: float | None = None,
) -> list[list[tuple[int, float]]]:
    """Top ``k`` ``(item_index, score)`` per query vector, through the alias by default.

    Args:
        client: A ``MilvusClient``.
        queries: (n, dim) query vectors.
        k: Results per query.
        collection: A collection or alias name.
        index_type: The collection's index type (selects default search parameters).
        params: Search parameters overriding :data:`SEARCH_PARAMS` (e.g. ``{"ef": 256}``).
        timeout_s: Give up after this long (None: the client's default).
    """
    hits = _search_hits(client, queries, k, collection, index_type, params, timeout_s)
    return [[(int(h["id"]), float(h["distance"])) for h in row] for row in hits]


def search_items(
    client: Any,
    queries: np.ndarray,
    k: int = 100,
    *,
    collection: str = ITEM_EMBEDDINGS_ALIAS,
    index_type: str = "IVF_FLAT",
    timeout_s: float | None = None,
) -> list[list[tuple[str, float]]]:
    """Top ``k`` ``(item_id, score)`` per query vector: the item ids stored with the vectors.

    Serving reads ids, not primary keys: a collection rebuilt for a grown catalogue holds items
    the model's bundle has never seen, whose keys are no rows of the bundle's arrays.
    """
    hits = _search_hits(client, queries, k, collection, index_type, None, timeout_s, [ITEM_ID_FIELD])
    return [[(str(h["entity"][ITEM_ID_FIELD]), float(h["distance"])) for h in row] for row in hits]
