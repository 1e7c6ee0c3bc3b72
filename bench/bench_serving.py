"""Load on the recommender (`/recommend` over HTTP with wrk, gRPC with ghz) on a running demo stack.

What it measures: latency (p50/p90/p99), achieved rate, errors and the per-stage split (from the
service's Prometheus histograms) at fixed offered rates, each held for ``--duration`` seconds, with
the full stack running (Kafka, the Flink speed layer and pusher, Milvus, MLflow, the recommender).
The load comes from a separate process on loopback (wrk with a Lua script that sends a different
session per request and paces each connection; ghz for gRPC). Then the highest rate that kept
p99 ≤ ``--p99-goal-ms`` with no errors, and the same load with adaptive batching off
(``serving.max_batch_size = 1``).

wrk paces closed-loop (each connection waits ``connections / rate`` between requests): when the
service slows down, the offered rate drops with it, so the achieved rate is reported beside the
target, and latency is service time without coordinated-omission correction.

Usage:
    python bench/bench_serving.py                                        # runs a 20k-event demo first
    python bench/bench_serving.py --state-dir /tmp/demo-state            # after `lambdarec demo`
    python bench/bench_serving.py --state-dir S --rates 50 100 200 --duration 60 --max-search
    python bench/bench_serving.py --state-dir S --index-items 1000000     # 1M items behind the alias

``--index-items N`` serves the same trained models over an index of N items: the champion's
catalogue vectors (trained) plus synthetic items embedded by the trained item tower from content
alone (category, brand and price bucket drawn independently from the catalogue's, item id unknown:
the path every cold item takes). The weights are re-registered as a new version whose collection
holds the N vectors, and the aliases move to it as `index swap` moves them; the recommender
follows within its reload interval. Synthetic items have no online features, so the ranker reads
them as cold items; what grows with N is the Milvus search and the candidate set's mix.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ROOT = HERE.parent

WRK_SCRIPT = r"""
local bodies = {}
local counter = 0
local pause_ms = 0

function init(args)
  pause_ms = tonumber(args[2])
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  counter = math.random(#bodies)
end

function delay()
  return pause_ms
end

function request()
  counter = counter % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[counter])
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("WRK_REPORT"), "w")
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, '
    .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
    .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %f}',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
  out:close()
end
"""


def sessions_of(state_dir: Path, limit: int) -> list[dict[str, Any]]:
    """Request bodies for the latest ``limit`` sessions of the lake's silver events (user ids kept)."""
    import pyarrow.dataset as ds

    from lambdarec.batch.lake import Lake

    lake = Lake.under(state_dir)
    table = ds.dataset(str(lake.silver), format="parquet", partitioning="hive").to_table(
        columns=["session_id", "user_id", "event_time"]
    )
    frame = table.to_pandas().sort_values("event_time").drop_duplicates("session_id", keep="last").tail(limit)
    bodies = []
    for session, user in zip(frame["session_id"], frame["user_id"], strict=True):
        body: dict[str, Any] = {"session_id": str(session), "k": 10}
        if isinstance(user, str) and user:
            body["user_id"] = user
        bodies.append(body)
    return bodies


def scrape(http: str) -> dict[str, float]:
    """The recommender's own Prometheus series that the report uses (sums and counts)."""
    text = httpx.get(f"{http}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("lambdarec_stage_seconds_sum", "lambdarec_stage_seconds_count", "lambdarec_batch_size_")):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
        elif line.startswith("lambdarec_fallbacks_total"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def stage_split(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Mean milliseconds per batch for each stage, mean batch size and fallbacks over a run."""
    stages: dict[str, float] = {}
    for name, total in after.items():
        match = re.match(r'lambdarec_stage_seconds_sum\{stage="([^"]+)"\}', name)
        if not match:
            continue
        count_name = name.replace("_sum", "_count")
        calls = after.get(count_name, 0) - before.get(count_name, 0)
        if calls > 0:
            stages[match.group(1)] = round((total - before.get(name, 0)) / calls * 1000, 3)
    batches = after.get("lambdarec_batch_size_count", 0) - before.get("lambdarec_batch_size_count", 0)
    summed = after.get("lambdarec_batch_size_sum", 0) - before.get("lambdarec_batch_size_sum", 0)
    fallbacks = {
        re.sub(r'.*reason="([^"]+)".*', r"\1", k): v - before.get(k, 0)
        for k, v in after.items()
        if k.startswith("lambdarec_fallbacks_total") and v - before.get(k, 0) > 0
    }
    return {
        "stage_ms_per_batch": stages,
        "mean_batch_size": round(summed / batches, 2) if batches else None,
        "batches": int(batches),
        "fallbacks": fallbacks,
    }


def run_http(http: str, bodies_path: Path, rate: int, duration: int, connections: int) -> dict[str, Any]:
    """One wrk run at ``rate`` requests/s for ``duration`` s; latency percentiles, errors, stage split."""
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    script = work / "recommend.lua"
    script.write_text(WRK_SCRIPT)
    report = work / "report.json"
    pause_ms = max(0, int(round(connections / rate * 1000)))
    before = scrape(http)
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"{http}/recommend",
            "--",
            str(bodies_path),
            str(pause_ms),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "WRK_REPORT": str(report)},
    )
    wall = time.monotonic() - started
    after = scrape(http)
    raw = json.loads(report.read_text())
    shutil.rmtree(work, ignore_errors=True)
    errors = sum(raw["errors"].values())
    return {
        "protocol": "http",
        "target_rps": rate,
        "achieved_rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "requests": raw["requests"],
        "errors": errors,
        "error_rate": round(errors / max(1, raw["requests"]), 5),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "connections": connections,
        "duration_s": round(wall, 1),
        "load_avg_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        **stage_split(before, after),
    }


def run_grpc(http: str, grpc_address: str, bodies: list[dict[str, Any]], rate: int, duration: int) -> dict[str, Any]:
    """One ghz run (gRPC) at ``rate`` requests/s, cycling over the same request bodies."""
    ghz = shutil.which("ghz") or str(ROOT / ".cache" / "tools" / "bin" / "ghz")
    work = Path(tempfile.mkdtemp(prefix="bench-grpc-"))
    data = work / "data.json"
    data.write_text(json.dumps(bodies))
    # ghz parses .proto files without proto3 `optional`: hand it the compiled descriptors instead.
    protoset = work / "recommender.protoset"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "src"), "--include_imports"]
        + [f"--descriptor_set_out={protoset}", "lambdarec/serving/proto/recommender.proto"],
        check=True,
    )
    before = scrape(http)
    load_before = os.getloadavg()[0]
    result = subprocess.run(
        [
            ghz,
            "--insecure",
            "--protoset",
            str(protoset),
            "--call",
            "lambdarec.v1.Recommender/Recommend",
            "--rps",
            str(rate),
            "-c",
            "16",
            "-z",
            f"{duration}s",
            "--data-file",
            str(data),
            "-O",
            "json",
            grpc_address,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    after = scrape(http)
    shutil.rmtree(work, ignore_errors=True)
    raw = json.loads(result.stdout)
    percentiles = {p["percentage"]: p["latency"] / 1e6 for p in raw.get("latencyDistribution") or []}
    errors = sum(n for code, n in (raw.get("statusCodeDistribution") or {}).items() if code != "OK")
    return {
        "protocol": "grpc",
        "target_rps": rate,
        "achieved_rps": round(raw["rps"], 1),
        "requests": raw["count"],
        "errors": errors,
        "error_rate": round(errors / max(1, raw["count"]), 5),
        "p50_ms": percentiles.get(50),
        "p90_ms": percentiles.get(90),
        "p99_ms": percentiles.get(99),
        "load_avg_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        **stage_split(before, after),
    }


def restart_recommender(settings: Any, max_batch_size: int) -> dict[str, str]:
    """Restart the recommender with ``serving.max_batch_size`` (1 turns adaptive batching off)."""
    from lambdarec.serving.commands import start_recommender, stop_recommender

    stop_recommender(settings)
    os.environ["LAMBDAREC_SERVING__MAX_BATCH_SIZE"] = str(max_batch_size)
    urls = start_recommender(settings)
    wait_ready(urls["http"])
    return urls


def wait_ready(http: str, timeout_s: float = 300) -> None:
    """Until ``/readyz`` answers 200 (the champion loaded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{http}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"the recommender at {http} is not ready: {httpx.post(f'{http}/status', json={}).text}")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def main() -> int:
    """Run the load, write ``bench/results/serving.json``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="state folder of a finished `lambdarec demo` (default: run one, 20k events, in a temporary folder)",
    )
    parser.add_argument("--demo-events", type=int, default=20_000, help="events of the demo run when no state is given")
    parser.add_argument("--rates", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--duration", type=int, default=60, help="seconds each rate is held")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--sessions", type=int, default=2000, help="distinct sessions the load cycles through")
    parser.add_argument("--max-search", action="store_true", help="step the rate up to the highest meeting the goal")
    parser.add_argument("--p99-goal-ms", type=float, default=30.0)
    parser.add_argument("--no-batching-compare", action="store_true")
    parser.add_argument("--no-grpc", action="store_true")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP runs with batching on")
    parser.add_argument(
        "--index-items",
        type=int,
        default=0,
        help="serve over an index of this many items (trained catalogue + synthetic cold items); 0: the catalogue",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "serving.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    own_demo = args.state_dir is None
    if own_demo:
        args.state_dir = Path(tempfile.mkdtemp(prefix="bench-serving-demo-"))
        print(f"running the demo ({args.demo_events:,} events) in {args.state_dir} first...", flush=True)
        subprocess.run(
            [str(Path(sys.executable).with_name("lambdarec")), "--state-dir", str(args.state_dir), "demo"]
            + ["--events", str(args.demo_events), "--train-budget", "30"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    try:
        return measure(args)
    finally:
        if own_demo:
            subprocess.run(
                [
                    str(Path(sys.executable).with_name("lambdarec")),
                    "--state-dir",
                    str(args.state_dir),
                    "services",
                    "down",
                ],
                check=False,
            )


def index_many_items(settings: Any, http: str, n_items: int, seed: int = 7) -> dict[str, Any]:
    """Serve the champion's weights over ``n_items`` indexed items (see the module docstring).

    Returns:
        What was indexed: trained and synthetic vector counts, distinct content combinations,
        the new version, build and reload seconds.
    """
    import numpy as np
    from mlflow.tracking import MlflowClient

    from lambdarec.index.milvus import build_collection, connect_settings, current_collection, swap_alias
    from lambdarec.models.bundle import load_bundle
    from lambdarec.names import CHAMPION_ALIAS, DEEPFM_MODEL, TWO_TOWER_MODEL
    from lambdarec.tracking.mlflow_log import alias_version, download_bundle, promote
    from lambdarec.vectors import mlflow_tracking_uri

    uri = mlflow_tracking_uri(settings)
    champion = alias_version(uri, TWO_TOWER_MODEL, CHAMPION_ALIAS)
    if champion is None:
        raise SystemExit("no champion two-tower version: run `lambdarec demo` first")
    milvus = connect_settings(settings)
    try:
        live = current_collection(milvus)
        rows = int(milvus.get_collection_stats(live)["row_count"]) if live else 0
    finally:
        milvus.close()
    if rows >= n_items:  # an earlier run of this bench on the same state already built it
        return {"items_indexed": rows, "version": champion, "reused": f"{live}, built by an earlier run"}
    with tempfile.TemporaryDirectory() as tmp:
        recommender = load_bundle(download_bundle(uri, champion, Path(tmp)))
    ids = [str(i) for i in recommender.index_ids]
    vectors = np.asarray(recommender.index_vectors, np.float32)
    extra = max(0, n_items - len(ids))
    vocab, rng = recommender.vocab, np.random.default_rng(seed)
    content = {
        "item": np.zeros(extra, np.int64),  # unknown id: the content-only path of cold items
        "category": rng.choice(np.unique(vocab.item_category[1:]), extra),
        "brand": rng.choice(np.unique(vocab.item_brand[1:]), extra),
        "price": rng.choice(np.unique(vocab.item_price_bucket[1:]), extra),
    }
    distinct = len({tuple(r) for r in np.stack([content["category"], content["brand"], content["price"]], 1)})
    started = time.monotonic()
    synthetic = recommender.retrieval.embed_item_inputs(content)
    embed_s = time.monotonic() - started
    # A new version of both models from the champion's run: same weights, its own collection.
    client = MlflowClient(tracking_uri=uri)
    created = {}
    for name in (TWO_TOWER_MODEL, DEEPFM_MODEL):
        first = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
        source = str(first.source)
        # MLflow 3 logs models as "models:/<model id>": the new version names the same logged model.
        model_id = source.removeprefix("models:/") if source.startswith("models:/") else None
        created[name] = client.create_model_version(name, source=source, run_id=first.run_id, model_id=model_id).version
    version = str(created[TWO_TOWER_MODEL])
    milvus = connect_settings(settings)
    try:
        built = build_collection(
            milvus,
            ids + [f"synthetic-{k}" for k in range(extra)],
            np.vstack([vectors, synthetic]),
            version,
        )
        swap_alias(milvus, version)
        promote(uri, version)
    finally:
        milvus.close()
    started = time.monotonic()
    deadline = started + 600
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            model = httpx.post(f"{http}/status", json={}, timeout=10).json().get("model", "")
            if str(model).startswith(f"v{version} ("):
                break
        time.sleep(2)
    else:
        raise SystemExit(f"the recommender did not pick up v{version} within 600 s")
    return {
        "items_indexed": built.rows,
        "trained_vectors": len(ids) - int(not ids[0]),
        "synthetic_vectors": extra,
        "synthetic_distinct_content": distinct,
        "how": "synthetic items: trained item tower, content only (category, brand, price bucket drawn "
        "independently from the catalogue's), unknown item id",
        "version": version,
        "index_type": built.index_type,
        "embed_s": round(embed_s, 1),
        "build_s": round(built.seconds, 1),
        "reload_s": round(time.monotonic() - started, 1),
    }


def measure(args: argparse.Namespace) -> int:
    """The load runs on the stack of ``args.state_dir``; writes the result file."""
    from lambdarec.serving.commands import recommender_urls, start_recommender
    from lambdarec.settings import load_settings

    settings = load_settings(state_dir=args.state_dir)
    urls = recommender_urls(settings) or start_recommender(settings)
    wait_ready(urls["http"])
    indexed = index_many_items(settings, urls["http"], args.index_items) if args.index_items else None
    if indexed:
        print(f"indexed: {json.dumps(indexed)}", flush=True)
    status = httpx.post(f"{urls['http']}/status", json={}, timeout=10).json()
    bodies = sessions_of(args.state_dir, args.sessions)
    bodies_path = args.state_dir / "bench-serving-bodies.jsonl"
    bodies_path.write_text("\n".join(json.dumps(b) for b in bodies) + "\n")
    print(f"{len(bodies)} sessions; serving {status.get('model')}", flush=True)

    result: dict[str, Any] = {
        "what": "POST /recommend (HTTP, wrk) and Recommend (gRPC, ghz) on the demo stack, full stack running",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "served": status,
        "index": indexed or {"items_indexed": "the demo catalogue (trained vectors only)"},
        "sessions": len(bodies),
        "goal": {"p99_ms": args.p99_goal_ms, "rps": 200, "errors": 0},
        "runs": [],
    }
    httpx.post(f"{urls['http']}/recommend", json=bodies[0], timeout=30)  # warm up the first batch
    for rate in [] if args.no_http else args.rates:
        run = run_http(urls["http"], bodies_path, rate, args.duration, args.connections)
        print(json.dumps(run), flush=True)
        result["runs"].append({**run, "batching": True})
    if args.max_search:
        rate, best = max(args.rates), None
        while True:
            rate = int(rate * 1.25)
            run = run_http(urls["http"], bodies_path, rate, args.duration, max(args.connections, rate // 8))
            print(json.dumps(run), flush=True)
            result["runs"].append({**run, "batching": True, "search": True})
            if run["p99_ms"] > args.p99_goal_ms or run["errors"] or run["achieved_rps"] < 0.9 * rate:
                break
            best = run
        result["highest_rate_meeting_goal"] = best["achieved_rps"] if best else None
    ghz = shutil.which("ghz") or (ROOT / ".cache" / "tools" / "bin" / "ghz")
    if not args.no_grpc and not Path(ghz).exists():
        print(
            "ghz not found: GOBIN=$PWD/.cache/tools/bin go install github.com/bojand/ghz/cmd/ghz@latest; gRPC skipped"
        )
        result["grpc_skipped"] = "ghz not installed"
    elif not args.no_grpc:
        for rate in args.rates:
            run = run_grpc(urls["http"], urls["grpc"], bodies, rate, args.duration)
            print(json.dumps(run), flush=True)
            result["runs"].append({**run, "batching": True})
    if not args.no_batching_compare:
        urls = restart_recommender(settings, 1)
        for rate in args.rates:
            run = run_http(urls["http"], bodies_path, rate, args.duration, args.connections)
            print(json.dumps(run), flush=True)
            result["runs"].append({**run, "batching": False})
        urls = restart_recommender(settings, settings.serving.max_batch_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
