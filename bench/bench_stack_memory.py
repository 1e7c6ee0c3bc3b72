"""Memory of the whole embedded stack during `lambdarec demo`: peak and steady, per service.

Runs the real demo (engines, speed layer, batch layer on Spark, training through the feature store,
index, recommender, storefront) in a fresh temporary state folder and samples, once a second, the
proportional set size (PSS, from ``/proc/<pid>/smaps_rollup``) of every process of:

* each supervised service: its process group (the supervisor starts each service as a group
  leader and records it in ``services/<name>/service.json``), so a JVM's or a server's children
  count with it;
* the demo process itself and its children outside those groups: the Spark driver JVM of the
  batch layer and the training, which run inside ``lambdarec demo``.

PSS, not RSS: shared pages (the Python interpreter, torch's libraries mapped by several
processes) are divided among their users, so the per-service figures add up to the machine's
real use. "Peak" is each component's highest sample; "total peak" is the highest sum of one
sample (components do not peak at once). "Steady" is the median over ``--steady-s`` seconds
after the demo ended, with every service still up and idle.
Writes bench/results/stack_memory.json; every service is stopped at the end, also on failure.

Usage: python bench/bench_stack_memory.py [--events 200000] [--train-budget 120] [--steady-s 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench_common import LoadSampler

RESULTS = Path(__file__).resolve().parent / "results"
DEMO_PROCESS = "demo process (Spark driver, training)"
GOAL_GB = 8.0


def pss_kb(pid: int) -> int:
    """The process's PSS in KiB (0 when it is gone or unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def process_table() -> dict[int, tuple[int, int]]:
    """pid → (parent pid, process group) of every process."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields after its last ')' are fixed.
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def service_groups(state: Path) -> dict[str, int]:
    """Service name → its process-group leader, from the supervisor's records."""
    groups: dict[str, int] = {}
    for record in sorted((state / "services").glob("*/service.json")):
        try:
            groups[record.parent.name] = int(json.loads(record.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            continue
    return groups


def _tree(root: int, children: dict[int, list[int]], stop: set[int]) -> set[int]:
    """``root`` and its descendants, not descending into the processes in ``stop``."""
    found, frontier = set(), [root]
    while frontier:
        pid = frontier.pop()
        found.add(pid)
        frontier.extend(child for child in children.get(pid, []) if child not in stop)
    return found


def sample(state: Path, demo_pid: int | None) -> dict[str, float]:
    """MiB of PSS per component now.

    A service is its leader's process group and every descendant of the leader (BentoML's
    workers, for one, lead groups of their own); the demo process is its own tree minus the
    services it started.
    """
    table = process_table()
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (parent, _) in table.items():
        children[parent].append(pid)
    groups = {name: leader for name, leader in service_groups(state).items() if leader in table}
    leaders = set(groups.values())
    claimed: set[int] = set()
    used: dict[str, float] = {}
    for name, leader in groups.items():
        members = _tree(leader, children, leaders - {leader}) | {p for p, (_, g) in table.items() if g == leader}
        members -= claimed
        claimed |= members
        used[name] = sum(pss_kb(p) for p in members) / 1024
    if demo_pid is not None and demo_pid in table:
        members = _tree(demo_pid, children, leaders) - claimed
        used[DEMO_PROCESS] = sum(pss_kb(p) for p in members) / 1024
    return used


def running_stage(log: Path) -> str:
    """The demo stage running now: the last "… stage" line of its log (its progress view)."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - 8192))
            tail = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    for line in reversed(tail):
        if line.startswith(("… ", "✓ ")):
            return line[2:].split(":")[0].split(" (")[0].strip() + (" (done)" if line.startswith("✓") else "")
    return ""


class Sampler:
    """Samples :func:`sample` once a second in a thread, with the demo stage running then."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.demo_pid: int | None = None
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.stages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.samples.append((time.monotonic() - self.started, sample(self.state, self.demo_pid)))
            self.stages.append(running_stage(self.state / "bench-demo.log"))

    def start(self) -> Sampler:
        """Start sampling."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling (again: nothing happens)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def summarise(during: list[dict[str, float]], steady: list[dict[str, float]]) -> dict[str, Any]:
    """Peak per component and in total during the demo; the steady median after it."""
    names = sorted({name for s in during + steady for name in s})
    per_service = {
        name: {
            "peak_mb": round(max((s.get(name, 0.0) for s in during + steady), default=0.0)),
            "steady_mb": round(statistics.median(s.get(name, 0.0) for s in steady)) if steady else None,
        }
        for name in names
    }
    totals = [sum(s.values()) for s in during + steady]
    steady_totals = [sum(s.values()) for s in steady]
    return {
        "per_service": per_service,
        "total_peak_mb": round(max(totals, default=0.0)),
        "total_steady_mb": round(statistics.median(steady_totals)) if steady_totals else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="Events the demo replays (`make demo`: 200,000).")
    parser.add_argument("--train-budget", type=int, default=120, help="The demo's training budget in seconds.")
    parser.add_argument("--steady-s", type=float, default=60.0, help="Seconds sampled after the demo, stack idle.")
    parser.add_argument("--out", type=Path, default=RESULTS / "stack_memory.json")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="lambdarec-bench-memory-"))
    cli = [sys.executable, "-m", "lambdarec.cli", "--state-dir", str(state)]
    command = [*cli, "demo", "--events", str(args.events), "--train-budget", str(args.train_budget)]
    env = {**os.environ, "COLUMNS": "160", "TERM": "dumb"}
    sampler = Sampler(state).start()
    load = LoadSampler().start()
    started = time.monotonic()
    try:
        log = (state / "bench-demo.log").open("w")
        demo = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        sampler.demo_pid = demo.pid
        print(f"demo running (pid {demo.pid}), log {state / 'bench-demo.log'}", flush=True)
        if demo.wait() != 0:
            raise SystemExit(f"the demo failed ({demo.returncode}): see {state / 'bench-demo.log'}")
        demo_s = time.monotonic() - started
        during = [s for _, s in sampler.samples]
        steady_from = len(sampler.samples)
        print(f"demo done in {demo_s:.0f} s; sampling the idle stack for {args.steady_s:.0f} s", flush=True)
        time.sleep(args.steady_s)
        sampler.stop()
        steady = [s for _, s in sampler.samples[steady_from:]]
    finally:
        sampler.stop()
        subprocess.run([*cli, "services", "down"], env=env, capture_output=True, check=False, timeout=300)
    figures = summarise(during, steady)
    totals = [sum(mb.values()) for _, mb in sampler.samples]
    at = max(range(len(totals)), key=totals.__getitem__) if totals else None
    peak_at = (
        {
            "t_s": round(sampler.samples[at][0]),
            "stage": sampler.stages[at],
            "per_service_mb": {k: round(v) for k, v in sampler.samples[at][1].items()},
        }
        if at is not None
        else None
    )
    # Every 5th sample: enough to see which stage holds what.
    timeline = [
        [round(t), stage, round(sum(mb.values())), {k: round(v) for k, v in mb.items()}]
        for (t, mb), stage in list(zip(sampler.samples, sampler.stages, strict=True))[::5]
    ]
    summary_path = state / "demo" / "summary.json"
    result = {
        "what": "PSS of every process of the embedded stack during `lambdarec demo`, per service, sampled each second",
        "command": f"python bench/bench_stack_memory.py --events {args.events} --train-budget {args.train_budget}",
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "events": args.events,
        "demo_s": round(demo_s, 1),
        "steady_s": args.steady_s,
        "samples": len(sampler.samples),
        "goal": {"stack_peak_gb": GOAL_GB, "source": "issue 16"},
        **figures,
        "total_peak_at": peak_at,
        "timeline": {"columns": ["t_s", "demo stage", "total_mb", "per_service_mb"], "rows": timeline},
        "demo_stages": json.loads(summary_path.read_text()).get("stages") if summary_path.exists() else None,
        **load.stop().summary(),
        "conditions": "PSS (shared pages divided among their users); peak per component is its own highest "
        "sample, total peak the highest one-second sum; steady is the median after the demo, every service up",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    shown = ("per_service", "total_peak_mb", "total_peak_at", "total_steady_mb")
    print(json.dumps({k: result[k] for k in shown}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
