"""ranking_v2 online reads (1 user + the request's candidates) as the recommender makes them, and alone.

Issue 16 asks for the ``ranking_v2`` read "as the recommender makes it, interleaved with its other
work", not a read in a process doing nothing else. Two parts, on the data of a finished demo:

1. **served** — requests to the running recommender (``POST /recommend``, sessions of the lake),
   one at a time at ``--rate`` requests/s, then from ``--clients`` concurrent clients. Each answer
   carries the recommender's own per-stage timings (``timings_ms``) and its batch size; the
   ``candidate_features`` stage *is* the ``ranking_v2`` read of the request's user and candidates
   (the retrieval's top-100 plus co-visitation and session candidates), made by the serving process
   between its query tower, Milvus search and ranker. Reported as p50/p90/p99 per answer, for the
   answers of one-request batches and for all. The store is the demo's (SQLite, ``local``).
2. **alone** — the same call the recommender makes (``OnlineFeatureSource.candidate_rows``) for 1
   user + 100 items sampled from the gold tables, back to back in this process: on the demo's
   SQLite store, and on an embedded redis-server holding the same lake (materialized here), read
   directly (``OnlineFeatureReader``'s pipelined ``HMGET``) and through Feast's
   ``RedisOnlineStore.online_read`` (the previous path), with wall and CPU time per read.

Every run records the 1-minute load average while it ran. A goal not met is said in the output;
nothing here asserts speed.

Usage:
    python bench/bench_online_reads.py --state-dir S          # after `lambdarec --state-dir S demo`
    python bench/bench_online_reads.py --state-dir S --no-served --reads 2000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_common import LoadSampler  # noqa: E402
from bench_serving import machine, sessions_of, wait_ready  # noqa: E402

RESULTS = HERE / "results"
GOAL_P99_MS = 5.0


def percentiles(values: list[float]) -> dict[str, Any]:
    """p50/p90/p99/max of milliseconds, and how many."""
    if not values:
        return {"n": 0}
    array = np.asarray(values)
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(array, 50)), 3),
        "p90_ms": round(float(np.percentile(array, 90)), 3),
        "p99_ms": round(float(np.percentile(array, 99)), 3),
        "max_ms": round(float(array.max()), 3),
    }


# ---------------------------------------------------------------------------------------------
# 1. served
def _client_loop(
    http: str, bodies: list[dict[str, Any]], rate: float, duration_s: float, out: list[dict[str, Any]], seed: int
) -> None:
    """One client: a request every ``1/rate`` s (paced from the start, not after each answer)."""
    rng = random.Random(seed)
    with httpx.Client(timeout=10) as client:
        start = time.perf_counter()
        n = 0
        while (now := time.perf_counter()) - start < duration_s:
            due = start + n / rate
            if due > now:
                time.sleep(due - now)
            n += 1
            sent = time.perf_counter()
            response = client.post(f"{http}/recommend", json=rng.choice(bodies))
            latency_ms = (time.perf_counter() - sent) * 1000
            if response.status_code != 200:
                out.append({"error": response.status_code})
                continue
            answer = response.json()
            out.append(
                {
                    "latency_ms": latency_ms,
                    "batch_size": answer.get("batch_size"),
                    "fallback": answer.get("fallback"),
                    "timings_ms": answer.get("timings_ms") or {},
                }
            )


def served_run(http: str, bodies: list[dict[str, Any]], clients: int, rate: float, duration_s: float) -> dict[str, Any]:
    """``clients`` clients at ``rate`` requests/s each for ``duration_s``; the candidate_features stage."""
    answers: list[dict[str, Any]] = []
    per_client: list[list[dict[str, Any]]] = [[] for _ in range(clients)]
    threads = [
        threading.Thread(target=_client_loop, args=(http, bodies, rate, duration_s, per_client[i], i))
        for i in range(clients)
    ]
    with LoadSampler() as load:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for part in per_client:
        answers += part
    ok = [a for a in answers if "error" not in a]
    modelled = [a for a in ok if "candidate_features" in a["timings_ms"]]
    single = [a for a in modelled if a["batch_size"] == 1]
    sizes = [int(a["batch_size"] or 0) for a in modelled]
    result = {
        "clients": clients,
        "offered_rps": round(clients * rate, 1),
        "duration_s": duration_s,
        "answers": len(answers),
        "errors": len(answers) - len(ok),
        "fallback_answers": sum(1 for a in ok if a.get("fallback")),
        "batch_size_mean": round(float(np.mean(sizes)), 2) if sizes else None,
        "candidate_features_one_request_batches": percentiles([a["timings_ms"]["candidate_features"] for a in single]),
        "candidate_features_all_answers": percentiles([a["timings_ms"]["candidate_features"] for a in modelled]),
        "request_latency_client_ms": percentiles([a["latency_ms"] for a in ok]),
        "stages_mean_ms": {
            stage: round(float(np.mean([a["timings_ms"].get(stage, 0.0) for a in modelled])), 3)
            for stage in sorted({s for a in modelled for s in a["timings_ms"]})
        },
    }
    result.update(load.summary())
    return result


# ---------------------------------------------------------------------------------------------
# 2. alone
def sample_ids(settings: Any, n_items: int, n_users: int, seed: int = 5) -> tuple[list[str], list[str]]:
    """Item and user ids of the gold tables (the entities the online store holds)."""
    import pyarrow.dataset as ds

    from lambdarec.batch.lake import Lake

    lake = Lake.under(settings.state_dir)
    items = ds.dataset(str(lake.gold("item_stats")), format="parquet", partitioning="hive").to_table(
        columns=["item_id"]
    )
    users = ds.dataset(str(lake.gold("user_history")), format="parquet", partitioning="hive").to_table(
        columns=["user_id"]
    )
    rng = random.Random(seed)
    item_ids = sorted({str(i) for i in items.column("item_id").to_pylist()})
    user_ids = sorted({str(u) for u in users.column("user_id").to_pylist() if u})
    return rng.sample(item_ids, min(n_items, len(item_ids))), rng.sample(user_ids, min(n_users, len(user_ids)))


def time_reads(read: Any, item_ids: list[str], user_ids: list[str], reads: int, warmup: int) -> dict[str, Any]:
    """``reads`` calls of ``read(users, items, moments)`` for 1 user + 100 items, wall and CPU ms each."""
    rng = random.Random(11)
    now = int(time.time() * 1000)

    def one() -> None:
        user = rng.choice(user_ids)
        read([user] * 100, rng.sample(item_ids, 100), [now] * 100)

    for _ in range(warmup):
        one()
    walls: list[float] = []
    cpus: list[float] = []
    with LoadSampler() as load:
        for _ in range(reads):
            wall, cpu = time.perf_counter(), time.process_time()
            one()
            walls.append((time.perf_counter() - wall) * 1000)
            cpus.append((time.process_time() - cpu) * 1000)
    result = {**percentiles(walls), "cpu_mean_ms": round(float(np.mean(cpus)), 3)}
    result.update(load.summary())
    return result


def alone_runs(state_dir: Path, reads: int, warmup: int) -> dict[str, Any]:
    """The recommender's ranking_v2 call on the demo's SQLite, and on Redis (direct and through Feast)."""
    from lambdarec import names
    from lambdarec.featurestore.online import OnlineFeatureReader
    from lambdarec.featurestore.store import apply, materialize, open_store
    from lambdarec.models.sources import OnlineFeatureSource
    from lambdarec.runtime.supervisor import Supervisor
    from lambdarec.settings import load_settings

    local = load_settings("local", state_dir=state_dir)
    item_ids, user_ids = sample_ids(local, 5000, 2000)
    out: dict[str, Any] = {"items_sampled": len(item_ids), "users_sampled": len(user_ids)}
    source = OnlineFeatureSource(open_store(local))
    out["sqlite"] = time_reads(source.candidate_rows, item_ids, user_ids, reads, warmup)
    print("alone, sqlite:", json.dumps(out["sqlite"]), flush=True)

    # Redis: the embedded server of a scratch state, the demo's lake materialized into it.
    with tempfile.TemporaryDirectory(prefix="bench-online-reads-redis-") as scratch:
        redis_state = load_settings("local", state_dir=Path(scratch))
        supervisor = Supervisor(redis_state)
        (status,) = supervisor.up([names.REDIS_SERVICE])
        try:
            os.environ["LAMBDAREC_REDIS_URL"] = str(status.endpoint)
            os.environ["FEAST_DIR"] = str(Path(scratch) / "feast")
            staging = load_settings("staging", state_dir=state_dir, secret_key="bench-only")
            apply(staging)
            report = materialize(staging, datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1))
            out["redis_materialized_rows"] = report.to_dict().get("rows")
            store = open_store(staging)
            redis_source = OnlineFeatureSource(store)
            out["redis_direct"] = time_reads(redis_source.candidate_rows, item_ids, user_ids, reads, warmup)
            print("alone, redis direct:", json.dumps(out["redis_direct"]), flush=True)
            through_feast = OnlineFeatureReader(store, names.CANDIDATE_FEATURE_SERVICE, use_store_read=True)
            redis_source.readers[names.CANDIDATE_FEATURE_SERVICE] = through_feast
            out["redis_through_feast_online_read"] = time_reads(
                redis_source.candidate_rows, item_ids, user_ids, reads, warmup
            )
            print("alone, redis via Feast:", json.dumps(out["redis_through_feast_online_read"]), flush=True)
        finally:
            supervisor.down([names.REDIS_SERVICE])
            os.environ.pop("LAMBDAREC_REDIS_URL", None)
            os.environ.pop("FEAST_DIR", None)
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure and write ``bench/results/online_reads.json``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", type=Path, required=True, help="a finished `lambdarec demo` state")
    parser.add_argument("--rate", type=float, default=20.0, help="served: requests/s per client")
    parser.add_argument("--duration", type=float, default=60.0, help="served: seconds per run")
    parser.add_argument("--clients", type=int, default=4, help="served: clients of the concurrent run")
    parser.add_argument("--sessions", type=int, default=2000, help="served: distinct sessions the requests cycle")
    parser.add_argument("--reads", type=int, default=1000, help="alone: timed reads per store")
    parser.add_argument("--warmup", type=int, default=100, help="alone: untimed reads first")
    parser.add_argument("--no-served", action="store_true", help="skip part 1 (no stack needed)")
    parser.add_argument("--out", type=Path, default=RESULTS / "online_reads.json")
    args = parser.parse_args(argv)
    state = args.state_dir.resolve()
    result: dict[str, Any] = {
        "benchmark": "online_reads",
        "what": __doc__.split("\n\n")[0] if __doc__ else "",
        "command": "bench/bench_online_reads.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "goal": {"p99_ms": GOAL_P99_MS, "source": "issue 16"},
    }
    if not args.no_served:
        from lambdarec.serving.commands import recommender_urls, start_recommender
        from lambdarec.settings import load_settings

        lambdarec = str(Path(sys.executable).with_name("lambdarec"))
        settings = load_settings(state_dir=state)
        started_here = recommender_urls(settings) is None  # a stack the user runs is left running
        subprocess.run([lambdarec, "--state-dir", str(state), "services", "up"], check=True)
        urls = recommender_urls(settings) or start_recommender(settings)
        wait_ready(urls["http"])
        bodies = sessions_of(state, args.sessions)
        status = httpx.post(f"{urls['http']}/status", json={}, timeout=10).json()
        result["served_model"] = status.get("model")
        for body in bodies[:20]:  # warm the batcher, the reader's memo and the index client
            httpx.post(f"{urls['http']}/recommend", json=body, timeout=30)
        result["served"] = {
            "one_client": served_run(urls["http"], bodies, 1, args.rate, args.duration),
            f"{args.clients}_clients": served_run(urls["http"], bodies, args.clients, args.rate, args.duration),
        }
        for name, run in result["served"].items():
            print(f"served, {name}:", json.dumps(run), flush=True)
        if started_here:
            subprocess.run([lambdarec, "--state-dir", str(state), "services", "down"], check=False)
    result["alone"] = alone_runs(state, args.reads, args.warmup)
    verdicts = []

    def verdict(label: str, p99: float | None) -> str:
        met = p99 is not None and p99 <= GOAL_P99_MS
        return f"{label}: p99 {p99} ms (goal <= {GOAL_P99_MS} ms {'met' if met else 'NOT met'})"

    for name, run in (result.get("served") or {}).items():
        verdicts.append(verdict(f"served {name}", run["candidate_features_one_request_batches"].get("p99_ms")))
    for name in ("sqlite", "redis_direct"):
        verdicts.append(verdict(f"alone {name}", result["alone"][name].get("p99_ms")))
    result["verdicts"] = verdicts
    print("\n".join(verdicts))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
