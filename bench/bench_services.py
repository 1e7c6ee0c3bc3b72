"""Start-up time and idle memory of the embedded service stack (Kafka, Milvus, MLflow).

In a fresh temporary state folder, through the same Supervisor that `lambdarec services up`
uses:
  1. cold start: `Supervisor.up()` until every service answers its health check (first
     start: storage formatted, MLflow schema created; the Milvus binaries are unpacked
     once per machine into .cache/ and are not re-unpacked if already there);
  2. idle resident memory of each service's process group, after --idle-s seconds;
  3. stop time (`down`), then a warm restart on the same data, and its idle memory.
Every service started here is stopped, also on failure. Writes bench/results/services.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import LoadSampler

from lambdarec.runtime.supervisor import Supervisor, default_services
from lambdarec.settings import load_settings

RESULTS = Path(__file__).resolve().parent / "results"


def timed_up(supervisor: Supervisor, names: list[str]) -> dict[str, Any]:
    """Start the services and time each phase from the supervisor's progress events.

    Returns:
        ``total_s`` from the call to all healthy, and per service ``launch_s`` (since the
        previous service was healthy: prerequisites, prepare, spawn) and ``healthy_s``
        (spawn to first good health check).
    """
    started = time.perf_counter()
    marks: dict[str, dict[str, float]] = {}
    last = started

    def on_event(name: str, message: str) -> None:
        nonlocal last
        now = time.perf_counter()
        if message.startswith("started"):
            marks[name] = {"launch_s": round(now - last, 2)}
            last = now
        elif message.startswith("healthy"):
            marks[name]["healthy_s"] = round(now - last, 2)
            last = now
        print(f"  {now - started:7.2f}s {name}: {message}", flush=True)

    statuses = supervisor.up(names, on_event=on_event)
    total = time.perf_counter() - started
    unhealthy = [s.name for s in statuses if not s.healthy]
    if unhealthy:
        raise RuntimeError(f"not healthy after up: {unhealthy}")
    return {"total_s": round(total, 2), "services": marks}


def idle_rss(supervisor: Supervisor, names: list[str], idle_s: float) -> dict[str, Any]:
    """Resident memory (MiB) of each service's process group after ``idle_s`` seconds."""
    time.sleep(idle_s)
    per_service = {s.name: round(s.rss_mb or 0.0) for s in supervisor.status(names)}
    return {"total_mb": sum(per_service.values()), "services": per_service}


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--services",
        nargs="*",
        default=None,
        help="services to start, in order (default: all of `lambdarec services up`: kafka milvus mlflow)",
    )
    parser.add_argument("--idle-s", type=float, default=15.0, help="idle seconds before reading memory (15)")
    parser.add_argument("--out", type=Path, default=RESULTS / "services.json", help="where the JSON goes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lambdarec-bench-") as state:
        settings = load_settings("local", state_dir=Path(state))
        supervisor = Supervisor(settings, default_services(settings))
        names = args.services or list(supervisor.services)
        results: dict[str, Any] = {}
        load = LoadSampler().start()
        try:
            print("cold start:", flush=True)
            results["cold_start"] = timed_up(supervisor, names)
            results["cold_idle_rss"] = idle_rss(supervisor, names, args.idle_s)
            print("  idle rss:", results["cold_idle_rss"], flush=True)

            began = time.perf_counter()
            supervisor.down(names)
            results["stop_s"] = round(time.perf_counter() - began, 2)
            print(f"stopped in {results['stop_s']}s; warm restart:", flush=True)

            results["warm_start"] = timed_up(supervisor, names)
            results["warm_idle_rss"] = idle_rss(supervisor, names, args.idle_s)
            print("  idle rss:", results["warm_idle_rss"], flush=True)
        finally:
            supervisor.down(names)
            results.update(load.stop().summary())

    payload = {
        "benchmark": "services_startup",
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(),
        },
        "services": names,
        "idle_s": args.idle_s,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
