"""Write the benchmark report from whatever results the benchmarks left in bench/results/.

Reads every ``bench/results/*.json`` (each benchmark writes its own, in its own format) and writes
``REPORT.md``, ``report.json`` and PNG plots under ``plots/`` beside them: the machine, each figure
beside its goal (met / not met), what the figure means and the command that reproduces it, the
1-minute load average while it ran ("not recorded" where the JSON has none), and how cost grows
with scale where results exist at several sizes. It measures nothing: a figure that no JSON holds
is reported as missing, with the command that would produce it.

Goals come from the JSONs (``goal`` / ``goals`` / ``goal_s``) where a benchmark records one, else
from the issues that set them (``ISSUE_GOALS``).

Usage (from the repository root; ``make bench-report``)::

    .venv/bin/python bench/report.py [--results bench/results] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PY = ".venv/bin/python"

MET, NOT_MET, MISSING, NO_GOAL, NOT_COMPARABLE = "met", "not met", "missing", "no goal", "not comparable"
NOT_RECORDED = "not recorded"
GENERATED = {"report.json"}  # what this script writes into the results folder: never read back as a result

# Goals no JSON records, as the issues set them (issue 16's table, issues 9 and 10). Each is
# (operator, threshold, unit, where it comes from); a goal a JSON records wins over these.
ISSUE_GOALS: dict[str, tuple[str, float, str, str]] = {
    "stream_sustained_events_per_s": (">=", 20_000, "events/s", "issue 16"),
    "stream_freshness_p99_ms": ("<=", 1_000, "ms", "issue 16"),
    "batch_stage_s": ("<=", 300, "s", "issue 16"),
    "batch_daily_incremental_s": ("<=", 60, "s", "issue 16"),
    "retrieval_p99_ms": ("<=", 5, "ms", "issue 16"),
    "retrieval_recall_at_100": (">=", 0.95, "", "issue 16"),
    "online_features_p99_ms": ("<=", 5, "ms", "issue 16"),
    "stack_rss_gb": ("<=", 8, "GB", "issue 16"),
    "serving_p99_ms": ("<=", 30, "ms", "issue 10"),
    "serving_rps": (">=", 200, "req/s", "issue 10"),
    "train_both_s_at_1M_events": ("<=", 600, "s", "issue 9"),
}

# The plots this script owns under plots/ (stale ones are removed when their data is gone).
PLOTS = ("batch_scale.png", "retrieval_scale.png", "models_scale.png", "serving_scale.png")


# -- the model of a report ------------------------------------------------------------------------
@dataclass
class Figure:
    """One measured (or missing) figure, beside its goal."""

    area: str
    name: str
    value: float | None
    unit: str
    status: str
    source: str
    shown: str = ""  # the value as the report prints it (with its setting), when not just value + unit
    goal: str | None = None
    goal_source: str | None = None
    meaning: str = ""
    command: str = ""
    measured_at: str = NOT_RECORDED
    load_1m: str = NOT_RECORDED
    note: str = ""

    def display(self) -> str:
        """The figure as a table cell."""
        if self.shown:
            return self.shown
        return "–" if self.value is None else f"{fmt(self.value)} {self.unit}".strip()


@dataclass
class Section:
    """The figures of one area, with what they mean and where they come from."""

    area: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Scale:
    """How one cost grows with size: a table (header + rows) and, when drawn, a plot."""

    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    plot: str | None = None
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    x_label: str = ""
    y_label: str = ""
    goal_line: float | None = None
    log_x: bool = True


# -- small helpers --------------------------------------------------------------------------------
def fmt(value: Any, digits: int | None = None) -> str:
    """A number as the report prints it: thousands separated, decimals by magnitude."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if digits is not None:
        return f"{value:,.{digits}f}"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    magnitude = abs(value)
    return f"{value:,.0f}" if magnitude >= 100 else f"{value:,.1f}" if magnitude >= 10 else f"{value:,.2f}"


def judge(value: float | None, op: str, threshold: float) -> str:
    """met / not met of ``value op threshold``; missing when there is no value."""
    if value is None:
        return MISSING
    return MET if (value <= threshold if op == "<=" else value >= threshold) else NOT_MET


def goal_text(op: str, threshold: float, unit: str) -> str:
    """``≤ 300 s`` and the like."""
    return f"{'≤' if op == '<=' else '≥'} {fmt(threshold)} {unit}".strip()


def parse_goals(text: str) -> list[tuple[str, float]]:
    """The (operator, threshold) pairs of a goal a JSON states in words, in order.

    ``"p99 <= 5 ms at recall@100 >= 0.95"`` → ``[("<=", 5.0), (">=", 0.95)]``.
    """
    found = re.findall(r"(<=|>=|≤|≥)\s*([0-9][0-9,]*\.?[0-9]*)", text)
    return [("<=" if op in ("<=", "≤") else ">=", float(num.replace(",", ""))) for op, num in found]


def goal_from(text: Any, index: int, fallback: str) -> tuple[str, float, str]:
    """The ``index``-th goal of a JSON's goal text, else the issue's; with where it came from."""
    parsed = parse_goals(text) if isinstance(text, str) else []
    if len(parsed) > index:
        return parsed[index][0], parsed[index][1], "the JSON"
    op, threshold, _, source = ISSUE_GOALS[fallback]
    return op, threshold, source


def load_text(block: Any) -> str | None:
    """The 1-minute load average a JSON block records, in words; None when it records none.

    Benchmarks record it in several ways: mean/max sampled while it ran (bench_common.LoadSampler,
    bench_models), one reading at the end, before/after a run, or the (1, 5, 15)-minute triple.
    """
    if not isinstance(block, dict):
        return None
    if "load_1m_mean" in block:
        return f"mean {fmt(block['load_1m_mean'], 1)}, max {fmt(block.get('load_1m_max'), 1)} (sampled while it ran)"
    for key in ("load_avg_1m", "load_average_1m", "load_average_1m_at_end"):
        value = block.get(key)
        if isinstance(value, dict) and "before" in value:
            return f"{fmt(value['before'], 1)} before, {fmt(value.get('after'), 1)} after"
        if isinstance(value, int | float):
            return f"{fmt(value, 1)} at the end"
    for key, when in (("load_average", "at the end"), ("load_avg_at_start", "at the start")):
        value = block.get(key)
        if isinstance(value, list) and value:
            return f"{fmt(value[0], 1)} {when}"
    return None


def load_of_runs(runs: Iterable[dict[str, Any]]) -> str:
    """The range of the 1-minute load over runs that each record it before and after."""
    values = [
        v
        for run in runs
        for v in (run.get("load_avg_1m") or {}).values()
        if isinstance(run.get("load_avg_1m"), dict) and isinstance(v, int | float)
    ]
    if not values:
        return NOT_RECORDED
    return f"{fmt(min(values), 1)}–{fmt(max(values), 1)} (read before and after each run)"


def first_load(*blocks: Any) -> str:
    """The first recorded load of ``blocks``, else "not recorded"."""
    for block in blocks:
        text = load_text(block)
        if text:
            return text
    return NOT_RECORDED


def measured_at(doc: dict[str, Any], path: Path | None = None) -> str:
    """When a result was measured: its own timestamp, else where the file's date comes from."""
    for key in ("measured_at", "when"):
        if isinstance(doc.get(key), str):
            return str(doc[key])
    if path is None:
        return NOT_RECORDED
    return f"{NOT_RECORDED} in the JSON ({file_date(path)})"


def file_date(path: Path) -> str:
    """The date of the last commit of an unmodified tracked file, else its modification time."""
    from datetime import UTC, datetime

    try:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", path.name], cwd=path.parent, capture_output=True, text=True
        )
        committed = subprocess.run(
            ["git", "log", "-1", "--format=%cI", "--", path.name], cwd=path.parent, capture_output=True, text=True
        )
        if dirty.returncode == 0 and not dirty.stdout.strip() and committed.stdout.strip():
            return f"file committed {committed.stdout.strip()}"
    except OSError:
        pass  # no git here: the file's own time is the next best thing
    stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    return f"file written {stamp}"


def machine_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The machine block of a result (the pusher section of feast.json has its own)."""
    machine = doc.get("machine")
    return machine if isinstance(machine, dict) else {}


# -- one builder per benchmark --------------------------------------------------------------------
def stream_section(docs: dict[str, tuple[Path, dict[str, Any]]]) -> Section:
    """The speed layer: Kafka → Flink → online store."""
    section = Section("Speed layer")
    files = sorted(name for name, (_, doc) in docs.items() if str(doc.get("benchmark", "")).startswith("stream"))
    op_rate, goal_rate, _, rate_src = ISSUE_GOALS["stream_sustained_events_per_s"]
    op_fresh, goal_fresh, _, fresh_src = ISSUE_GOALS["stream_freshness_p99_ms"]

    def sustained_figures(area: str, doc: dict[str, Any], name: str, job: str, full: bool, when: str) -> list[Figure]:
        """The sustained rate of ``bench_stream.py --sustained`` and the freshness at it, with the rate ladder."""
        block = doc["sustained"]
        seconds = (doc.get("workload") or {}).get("seconds_per_rate", 60)
        rate = block.get("events_per_s")
        ladder = [r for r in block.get("ladder", []) if isinstance(r, dict)]
        rungs = "; ".join(
            f"{fmt(r.get('rate'))}/s {'kept' if r.get('kept') else 'not kept'} (lag "
            f"{'bounded' if r.get('lag_bounded') else 'growing'}, freshness p50/p99 "
            f"{fmt(r.get('freshness_p50_ms'))}/{fmt(r.get('freshness_p99_ms'))} ms, "
            f"Flink {fmt(r.get('flink_cores'))} cores, load {fmt(r.get('load_1m_mean'), 1)})"
            for r in ladder
        )
        profile = str((doc.get("profile") or {}).get("summary") or "")
        command = str(doc.get("command") or f"{PY} bench/bench_stream.py --sustained")
        load = first_load(block) if block.get("load_1m_mean") is not None else NOT_RECORDED
        if load == NOT_RECORDED and ladder:
            loads = [float(r["load_1m_mean"]) for r in ladder if isinstance(r.get("load_1m_mean"), int | float)]
            load = f"mean {fmt(min(loads), 1)}–{fmt(max(loads), 1)} over the rates" if loads else NOT_RECORDED
        status = judge(rate, op_rate, goal_rate) if full else NOT_COMPARABLE
        shown = ""
        if rate is None and ladder:
            status = NOT_MET if full else NOT_COMPARABLE
            shown = f"< {fmt(min(r.get('rate', 0) for r in ladder))} events/s"
        figures = [
            Figure(
                area,
                f"sustained rate, {job}: a producer at a fixed rate for ≥ {fmt(seconds)} s, lag bounded, "
                "freshness p99 ≤ 1 s",
                rate,
                "events/s",
                status,
                name,
                shown=shown,
                goal=goal_text(op_rate, goal_rate, "events/s"),
                goal_source=rate_src,
                meaning=(
                    f"{doc.get('criteria', '')}. Issue 16's workload (20k live sessions, 7k users, 50k items, 300 "
                    f"categories, late and duplicate events). Ladder: {rungs}"
                    + (
                        f". Lowest rate not kept: {fmt(block.get('lowest_failed_events_per_s'))} events/s"
                        if block.get("lowest_failed_events_per_s")
                        else ""
                    )
                    + (f". Profile: {profile}" if profile else "")
                ),
                command=command,
                measured_at=when,
                load_1m=load,
            )
        ]
        if rate is not None:
            figures.append(
                Figure(
                    area,
                    f"freshness p99, {job}, at the sustained {fmt(rate)} events/s",
                    block.get("freshness_p99_ms"),
                    "ms",
                    judge(block.get("freshness_p99_ms"), op_fresh, goal_fresh),
                    name,
                    goal=goal_text(op_fresh, goal_fresh, "ms"),
                    goal_source=fresh_src,
                    meaning=(
                        f"online store read shows a probed on-time event − its produce time; p50 "
                        f"{fmt(block.get('freshness_p50_ms'))} ms; Flink "
                        f"{fmt(block.get('flink_cpu_s_per_1k_events'))} and pusher "
                        f"{fmt(block.get('pusher_cpu_s_per_1k_events'))} CPU-s per 1k events. At the sustained "
                        "rate, not at the goal's 20k events/s"
                    ),
                    command=command,
                    measured_at=when,
                    load_1m=load,
                )
            )
        return figures

    sustained = False
    for name in files:
        path, doc = docs[name]
        job = str(doc.get("job", "?"))
        full = "users" in job and "items" in job
        when = measured_at(doc, path)
        throughput, freshness, recovery = doc.get("throughput", {}), doc.get("freshness", {}), doc.get("recovery", {})
        sustained = sustained or "sustained" in doc
        command = f"{PY} bench/bench_stream.py --events {throughput.get('events', 1_000_000)}"
        command += "" if full else " --sessions-only"
        command += f" --rate {freshness.get('rate_events_per_s', 1000)} --out bench/results/{name}"
        if throughput:
            rate = throughput.get("events_per_s")
            status = judge(rate, op_rate, goal_rate) if full else NOT_COMPARABLE
            if full and status == MET:
                # Draining a backlog is easier than holding a fixed rate with bounded lag.
                status = NOT_COMPARABLE
            section.figures.append(
                Figure(
                    section.area,
                    f"throughput, {job}, draining a preloaded backlog into the online store",
                    rate,
                    "events/s",
                    status,
                    name,
                    goal=f"{goal_text(op_rate, goal_rate, 'events/s')} sustained, full job",
                    goal_source=rate_src,
                    meaning=(
                        f"{fmt(throughput.get('events'))} events preloaded on Kafka, then the job (parallelism "
                        f"{doc.get('parallelism', '?')}) and the pusher run until every session's final row is in "
                        f"the online store; Flink alone {fmt(throughput.get('flink_events_per_s'))} events/s, "
                        f"{fmt(throughput.get('flink_events_per_cpu_s'))} events per CPU-second. A backlog drain, "
                        "not a sustained rate: it bounds the sustained rate from above"
                        + ("" if full else "; sessions only, the goal is the full job")
                    ),
                    command=command,
                    measured_at=when,
                    load_1m=first_load(throughput),
                )
            )
        if freshness:
            rate = freshness.get("rate_events_per_s")
            section.figures.append(
                Figure(
                    section.area,
                    f"freshness p99, {job}, at a fixed {fmt(rate)} events/s",
                    freshness.get("p99_ms"),
                    "ms",
                    judge(freshness.get("p99_ms"), op_fresh, goal_fresh),
                    name,
                    goal=goal_text(op_fresh, goal_fresh, "ms"),
                    goal_source=fresh_src,
                    meaning=(
                        f"{freshness.get('lag_means', 'lag')}; p50 {fmt(freshness.get('p50_ms'))} ms, max "
                        f"{fmt(freshness.get('max_ms'))} ms over {fmt(freshness.get('samples'))} updates. Measured at "
                        f"{fmt(rate)} events/s, not at the goal's sustained rate"
                    ),
                    command=command,
                    measured_at=when,
                    load_1m=first_load(freshness),
                )
            )
        if isinstance(doc.get("sustained"), dict):
            section.figures.extend(sustained_figures(section.area, doc, name, job, full, when))
        if recovery:
            section.figures.append(
                Figure(
                    section.area,
                    f"recovery after kill -9 of the job, {job}",
                    recovery.get("kill_to_caught_up_s"),
                    "s",
                    NO_GOAL,
                    name,
                    meaning=f"{recovery.get('caught_up_means', '')}; back to RUNNING in "
                    f"{fmt(recovery.get('kill_to_running_s'))} s, at {fmt(recovery.get('rate_events_per_s'))} events/s",
                    command=command,
                    measured_at=when,
                )
            )
    if not sustained:
        section.figures.append(
            Figure(
                section.area,
                "sustained rate, full job: a producer at a fixed rate for ≥ 60 s, lag bounded, freshness p99 ≤ 1 s",
                None,
                "events/s",
                MISSING,
                "–",
                goal=goal_text(op_rate, goal_rate, "events/s"),
                goal_source=rate_src,
                meaning="no benchmark measures it yet (issue 16's workload: out-of-order events, 1% duplicates, "
                "many users and categories); the closest is the freshness phase of bench_stream.py at a higher rate",
                command=f"{PY} bench/bench_stream.py --events 1000000 --rate 20000 --seconds 60 (closest existing)",
            )
        )
    return section


def batch_section(docs: dict[str, tuple[Path, dict[str, Any]]]) -> tuple[Section, Scale | None]:
    """The batch layer: Spark bronze → silver → gold per size."""
    section = Section("Batch layer")
    entry = docs.get("batch.json")
    command = f"{PY} bench/bench_batch.py --events 1000000 10000000"
    if entry is None:
        section.figures.append(
            Figure(section.area, "stage seconds at 10M events", None, "s", MISSING, "batch.json", command=command)
        )
        return section, None
    path, doc = entry
    command = str(doc.get("command") or command)
    op, threshold, source = goal_from(doc.get("goal"), 0, "batch_stage_s")
    size = re.search(r"at\s+([0-9.]+)\s*M\s+events", str(doc.get("goal", "")))
    goal_events = int(float(size.group(1)) * 1_000_000) if size else 10_000_000
    when = measured_at(doc, path)
    series: dict[str, list[tuple[float, float]]] = {}
    cpu_series: dict[str, list[tuple[float, float]]] = {}
    runs = sorted(doc.get("runs", []), key=lambda r: r.get("events", 0))
    for run in runs:
        events = run.get("events")
        for stage, figures in run.get("stages", {}).items():
            seconds = figures.get("seconds")
            at_goal = events == goal_events
            meaning = (
                f"wall seconds on {doc.get('spark', {}).get('master', 'Spark')}, {fmt(figures.get('cpu_s'))} CPU-s, "
                f"peak {fmt(figures.get('peak_rss_mib'))} MiB"
            )
            if stage == "gold" and isinstance(figures.get("detail"), dict):
                meaning += "; " + _gold_date_text(figures["detail"])
            section.figures.append(
                Figure(
                    section.area,
                    f"{stage} at {fmt(events)} events",
                    seconds,
                    "s",
                    judge(seconds, op, threshold) if at_goal else NO_GOAL,
                    "batch.json",
                    goal=goal_text(op, threshold, "s") if at_goal else None,
                    goal_source=source if at_goal else None,
                    meaning=meaning,
                    command=command,
                    measured_at=when,
                    load_1m=first_load(figures),
                    note="" if at_goal else f"the goal is set at {fmt(goal_events)} events",
                )
            )
            series.setdefault(stage, []).append((float(events), float(seconds)))
            cpu_series.setdefault(f"{stage} (CPU-s)", []).append((float(events), float(figures.get("cpu_s", 0))))
    section.figures += _other_stage_figures(section.area, docs, goal_events, op, threshold, source)
    section.figures += _incremental_figures(section.area, docs, goal_events)
    section.figures += _materialize_figures(section.area, docs)
    section.notes += [str(n) for n in doc.get("notes", [])]
    scale = None
    if len(runs) > 1:
        small, large = runs[0], runs[-1]
        x = large["events"] / small["events"]
        table = []
        for stage in small.get("stages", {}):
            a, b = small["stages"][stage], large["stages"].get(stage, {})
            table.append(
                [
                    stage,
                    fmt(a.get("seconds")),
                    fmt(b.get("seconds")),
                    f"{b.get('seconds', 0) / max(a.get('seconds', 0), 1e-9):.2f}×",
                    fmt(a.get("cpu_s")),
                    fmt(b.get("cpu_s")),
                    f"{b.get('cpu_s', 0) / max(a.get('cpu_s', 0), 1e-9):.2f}×",
                    f"{first_load(a)} / {first_load(b)}",
                ]
            )
        scale = Scale(
            f"Batch layer: {fmt(small['events'])} → {fmt(large['events'])} events ({x:g}× the events)",
            [
                "stage",
                f"wall s at {fmt(small['events'])}",
                f"wall s at {fmt(large['events'])}",
                "wall ×",
                "CPU-s small",
                "CPU-s large",
                "CPU ×",
                "1-min load (small / large)",
            ],
            table,
            notes=[f"Source: batch.json ({when}); reproduce: `{command}`."],
            plot="batch_scale.png",
            series={**series, **cpu_series},
            x_label="events",
            y_label="seconds",
            goal_line=threshold,
        )
    return section, scale


def _materialize_figures(area: str, docs: dict[str, tuple[Path, dict[str, Any]]]) -> list[Figure]:
    """The nightly's online load timed both ways (``bench_batch.py --materialize-compare``): no goal of its own."""
    figures: list[Figure] = []
    for name in sorted(n for n in docs if docs[n][1].get("benchmark") == "batch_materialize"):
        path, doc = docs[name]
        equal = "equal" if doc.get("tables_equal") else "NOT equal"
        for way, label in (("direct", "the direct SQLite load"), ("through_feast", "FeatureStore.materialize")):
            record = doc.get(way) or {}
            cases = (("over_yesterdays_store", "over yesterday's store"), ("into_empty_store", "into an empty store"))
            for case, text in cases:
                block = record.get(case)
                if not isinstance(block, dict):
                    continue
                entities = block.get("entities") or {}
                figures.append(
                    Figure(
                        area,
                        f"nightly online load into SQLite {text}, {label}",
                        block.get("seconds"),
                        "s",
                        NO_GOAL,
                        name,
                        meaning=(
                            f"gold of {block.get('day')} ({fmt(sum(entities.values()))} entities) into the online "
                            f"store, {fmt(block.get('cpu_s'))} CPU-s; part of the nightly's 60 s goal, not a goal "
                            f"itself; the two ways' tables {equal} (SHA-256 of every cell)"
                        ),
                        command=f"{PY} {doc['command']}" if doc.get("command") else f"{PY} bench/bench_batch.py",
                        measured_at=measured_at(doc, path),
                        load_1m=first_load(block),
                    )
                )
    return figures


def _gold_date_text(detail: dict[str, Any]) -> str:
    """Which date gold was timed on, and whether it was a full day (newer runs record its events)."""
    visits = fmt((detail.get("rows") or {}).get("session_features"))
    if detail.get("date_events") is not None:
        return f"gold timed on {detail.get('date')}, a full day of {fmt(detail['date_events'])} events"
    return f"gold timed on one date ({detail.get('date')}) of {visits} visits, not a full day"


def _other_stage_figures(
    area: str, docs: dict[str, tuple[Path, dict[str, Any]]], goal_events: int, op: str, threshold: float, source: str
) -> list[Figure]:
    """Stage figures of the batch results besides batch.json: full-day reruns, and gold re-timed by --regold."""
    figures: list[Figure] = []
    for name in sorted(n for n in docs if n.startswith("batch") and n.endswith(".json") and n != "batch.json"):
        path, doc = docs[name]
        command = f"{PY} {doc['command']}" if doc.get("command") else f"{PY} bench/bench_batch.py"
        stages: list[tuple[int | None, str, dict[str, Any], str]] = []
        for run in doc.get("runs", []):
            for stage, block in run.get("stages", {}).items():
                stages.append((run.get("events"), stage, block, ""))
        if isinstance(doc.get("regold"), dict):
            stages.append((doc.get("events"), "gold", doc["regold"], f" ({doc.get('what', 're-timed')})"))
        for events, stage, block, how in stages:
            at_goal = events == goal_events
            cpu, peak = fmt(block.get("cpu_s")), fmt(block.get("peak_rss_mib"))
            meaning = f"wall seconds on local[2]{how}, {cpu} CPU-s, peak {peak} MiB"
            detail = block.get("detail")
            if stage == "gold" and isinstance(detail, dict):
                meaning += "; " + _gold_date_text(detail)
                if detail.get("table_seconds"):
                    meaning += "; per table " + ", ".join(
                        f"{t} {fmt(v)} s" for t, v in sorted(detail["table_seconds"].items(), key=lambda kv: -kv[1])
                    )
            figures.append(
                Figure(
                    area,
                    f"{stage} at {fmt(events)} events{' (re-timed)' if how else ''}",
                    block.get("seconds"),
                    "s",
                    judge(block.get("seconds"), op, threshold) if at_goal else NO_GOAL,
                    name,
                    goal=goal_text(op, threshold, "s") if at_goal else None,
                    goal_source=source if at_goal else None,
                    meaning=meaning,
                    command=command,
                    measured_at=measured_at(doc, path),
                    load_1m=first_load(block),
                    note="" if at_goal else f"the goal is set at {fmt(goal_events)} events",
                )
            )
    return figures


def _window_text(detail: Any) -> str:
    """What a gold run recomputed of its 30-day window, from its report (runs before 601d40d kept no counts)."""
    counted = detail.get("coview_dates_counted") if isinstance(detail, dict) else None
    if counted is None:
        return "gold recomputes the 30-day window (no per-day partial aggregates)"
    return (
        f"co-view counts kept per date ({counted} of the window's dates counted in this run, the others reused); "
        "the other tables still recompute the 30-day window"
    )


def _regold_incremental(
    area: str, docs: dict[str, tuple[Path, dict[str, Any]]], name: str, goal_events: int
) -> Figure | None:
    """A daily incremental figure from a --regold run: its base run's bronze and silver of the new day
    (unchanged code) plus the re-timed gold."""
    op, goal, _, source = ISSUE_GOALS["batch_daily_incremental_s"]
    path, doc = docs[name]
    gold = doc.get("regold")
    base = docs.get(str(doc.get("base")))
    if not isinstance(gold, dict) or base is None:
        return None
    runs = [r for r in base[1].get("runs", []) if r.get("events") == doc.get("events")]
    stages = (runs[0].get("daily_incremental") or {}).get("stages", {}) if runs else {}
    if "bronze" not in stages or "silver" not in stages:
        return None
    seconds = round(stages["bronze"]["seconds"] + stages["silver"]["seconds"] + gold["seconds"], 1)
    at_goal = doc.get("events") == goal_events
    return Figure(
        area,
        f"daily incremental run (one new day on 30 days of history) at {fmt(doc.get('events'))} events, gold re-timed",
        seconds,
        "s",
        judge(seconds, op, goal) if at_goal else NO_GOAL,
        name,
        goal=goal_text(op, goal, "s") if at_goal else None,
        goal_source=source if at_goal else None,
        meaning=(
            f"the new day's bronze {fmt(stages['bronze']['seconds'])} s and silver "
            f"{fmt(stages['silver']['seconds'])} s "
            f"as measured in {doc.get('base')} (code unchanged since), plus its gold re-timed: "
            f"{fmt(gold['seconds'])} s, {doc.get('what', '')}"
            + ("; " + _gold_date_text(gold["detail"]) if isinstance(gold.get("detail"), dict) else "")
            + "; "
            + _window_text(gold.get("detail"))
        ),
        command=f"{PY} {doc['command']}" if doc.get("command") else f"{PY} bench/bench_batch.py --regold",
        measured_at=measured_at(doc, path),
        load_1m=first_load(gold),
        note="" if at_goal else f"the goal is set at {fmt(goal_events)} events",
    )


def _incremental_figures(area: str, docs: dict[str, tuple[Path, dict[str, Any]]], goal_events: int) -> list[Figure]:
    """The daily incremental run of every batch result that has one; missing at the goal's size if none."""
    op, goal, _, source = ISSUE_GOALS["batch_daily_incremental_s"]
    figures: list[Figure] = []
    measured_sizes = set()
    for name in sorted(n for n in docs if n.startswith("batch") and n.endswith(".json")):
        path, doc = docs[name]
        regolded = _regold_incremental(area, docs, name, goal_events)
        if regolded is not None:
            measured_sizes.add(doc.get("events"))
            figures.append(regolded)
        for run in doc.get("runs", []):
            incremental = run.get("daily_incremental")
            if not isinstance(incremental, dict):
                continue
            events = run.get("events")
            measured_sizes.add(events)
            at_goal = events == goal_events
            stages = incremental.get("stages", {})
            split = ", ".join(f"{k} {fmt(v.get('seconds'))} s ({fmt(v.get('cpu_s'))} CPU-s)" for k, v in stages.items())
            gold = stages.get("gold", {})
            figures.append(
                Figure(
                    area,
                    f"daily incremental run (one new day on 30 days of history) at {fmt(events)} events",
                    incremental.get("seconds"),
                    "s",
                    judge(incremental.get("seconds"), op, goal) if at_goal else NO_GOAL,
                    name,
                    goal=goal_text(op, goal, "s") if at_goal else None,
                    goal_source=source if at_goal else None,
                    meaning=(
                        f"{incremental.get('what', 'the new day')}, in one Spark session on local[2]: {split}; "
                        + (_gold_date_text(gold["detail"]) if isinstance(gold.get("detail"), dict) else "")
                        + "; "
                        + _window_text(gold.get("detail"))
                    ),
                    command=f"{PY} {doc['command']}" if doc.get("command") else f"{PY} bench/bench_batch.py",
                    measured_at=measured_at(doc, path),
                    load_1m=first_load(gold) if gold else NOT_RECORDED,
                    note="" if at_goal else f"the goal is set at {fmt(goal_events)} events",
                )
            )
    if goal_events not in measured_sizes:
        figures.append(
            Figure(
                area,
                f"daily incremental run (one new day on 30 days of history) at {fmt(goal_events)} events",
                None,
                "s",
                MISSING,
                "–",
                goal=goal_text(op, goal, "s"),
                goal_source=source,
                meaning="what a nightly DAG pays at the goal's size; bench_dags.py measures the DAG's run on a "
                "demo's lake (Orchestration)",
                command=f"{PY} bench/bench_batch.py --events {goal_events} --out bench/results/batch_full_days.json",
            )
        )
    return figures


def retrieval_section(docs: dict[str, tuple[Path, dict[str, Any]]]) -> tuple[Section, Scale | None]:
    """Milvus top-100 retrieval at each catalogue size measured."""
    section = Section("Retrieval")
    files = sorted(
        (name for name, (_, doc) in docs.items() if doc.get("benchmark") == "retrieval"),
        key=lambda n: docs[n][1].get("items", 0),
    )
    # Runs over a trained catalogue (bench_retrieval.py --vectors trained) have their own row.
    trained = [n for n in files if docs[n][1].get("vectors") == "trained"]
    files = [n for n in files if n not in trained]
    op_p99, goal_p99, _, src_p99 = ISSUE_GOALS["retrieval_p99_ms"]
    table: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for name in files:
        path, doc = docs[name]
        op_p99, goal_p99, src_p99 = goal_from(doc.get("goal"), 0, "retrieval_p99_ms")
        op_rec, goal_rec, _ = goal_from(doc.get("goal"), 1, "retrieval_recall_at_100")
        items = int(doc.get("items", 0))
        when = measured_at(doc, path)
        command = f"{PY} bench/bench_retrieval.py --items {items} --out bench/results/{name}"
        candidates = []
        for index_type, built in doc.get("indexes", {}).items():
            for run in built.get("runs", []):
                setting = ", ".join(f"{k}={v}" for k, v in run.get("params", {}).items())
                table.setdefault((index_type, setting), {})[items] = {**run, "build_s": built.get("build_s")}
                candidates.append((index_type, setting, run, built))
        meeting_recall = [c for c in candidates if judge(c[2].get("recall_at_100"), op_rec, goal_rec) == MET]
        best = min(meeting_recall, key=lambda c: c[2]["p99_ms"]) if meeting_recall else None
        vectors = (
            f"{fmt(doc.get('trained_items'))} trained vectors + {fmt(doc.get('jittered_items'))} jittered copies "
            f"of them (dim {doc.get('dim')})"
            if doc.get("jittered_items")
            else f"{fmt(doc.get('trained_items'))} trained vectors (dim {doc.get('dim')})"
        )
        section.figures.append(
            Figure(
                section.area,
                f"top-{doc.get('k', 100)} p99 over {fmt(items)} items, best setting with recall@100 "
                f"{goal_text(op_rec, goal_rec, '')}",
                best[2]["p99_ms"] if best else None,
                "ms",
                judge(best[2]["p99_ms"], op_p99, goal_p99) if best else NOT_MET,
                name,
                shown=(
                    f"{fmt(best[2]['p99_ms'])} ms at recall {fmt(best[2]['recall_at_100'], 3)} ({best[0]} {best[1]})"
                    if best
                    else f"no setting reached recall@100 {goal_text(op_rec, goal_rec, '')}"
                ),
                goal=f"p99 {goal_text(op_p99, goal_p99, 'ms')} at recall@100 {goal_text(op_rec, goal_rec, '')}",
                goal_source=src_p99,
                meaning=(
                    f"{vectors}; {fmt(doc.get('queries'))} queries, one at a time from one client (round trip "
                    "included), recall against exact search"
                ),
                command=command,
                measured_at=when,
                load_1m=first_load(best[3] if best else None, *doc.get("indexes", {}).values(), doc),
            )
        )
    for name in trained:
        section.figures.append(_trained_retrieval_figure(section.area, name, *docs[name]))
        for clients in sorted((docs[name][1].get("best_paced") or {}), key=int):
            section.figures.append(_paced_retrieval_figure(section.area, name, *docs[name], clients))
    if not trained:
        section.figures.append(
            Figure(
                section.area,
                TRAINED_RETRIEVAL_ROW,
                None,
                "ms",
                MISSING,
                "–",
                goal=f"p99 {goal_text(op_p99, goal_p99, 'ms')}",
                goal_source="issue 16",
                meaning="the figures above index jittered copies of ~42k trained vectors, queried by one client",
                command=f"{PY} bench/bench_models.py --datasets synthetic:<events over 1M items>.parquet --items "
                "1000000 --embeddings-out <npz>, then "
                f"{PY} bench/bench_retrieval.py --vectors trained --embeddings <npz> --clients 1 4 "
                "--out bench/results/retrieval_1m_trained.json",
            )
        )
    if len(files) < 2:
        return section, None
    sizes = sorted({int(docs[n][1].get("items", 0)) for n in files})
    rows, series = [], {}
    for (index_type, setting), by_size in sorted(table.items()):
        row = [f"{index_type} {setting}"]
        for size in sizes:
            run = by_size.get(size)
            row.append(
                f"{fmt(run['p50_ms'])} / {fmt(run['p99_ms'])} ms, recall {fmt(run['recall_at_100'], 3)}" if run else "–"
            )
        row.append(" → ".join(fmt(by_size[s]["build_s"]) if s in by_size else "–" for s in sizes))
        rows.append(row)
        series[f"{index_type} {setting}"] = [(float(s), float(by_size[s]["p99_ms"])) for s in sizes if s in by_size]
    scale = Scale(
        "Retrieval: " + " → ".join(f"{fmt(s)} items" for s in sizes),
        ["index, setting", *[f"p50 / p99 at {fmt(s)} items" for s in sizes], "build s"],
        rows,
        notes=[
            "Sources: "
            + ", ".join(f"{n} ({measured_at(docs[n][1], docs[n][0])})" for n in files)
            + "."
            + (
                " The 1-minute load was not recorded for these runs: on the shared machine, part of a difference "
                "in p99 between sizes may be other work, not the index."
                if all(first_load(*docs[n][1].get("indexes", {}).values()) == NOT_RECORDED for n in files)
                else ""
            )
        ],
        plot="retrieval_scale.png",
        series=series,
        x_label="items indexed",
        y_label="p99 ms",
        goal_line=goal_p99,
    )
    return section, scale


TRAINED_RETRIEVAL_ROW = (
    "p99 over 1M items with vectors from a two-tower trained on a 1M-item catalogue, 1 and 4 clients"
)


def _trained_retrieval_figure(area: str, name: str, path: Path, doc: dict[str, Any]) -> Figure:
    """The trained-catalogue run: the best setting at recall >= the goal per client count; met only
    when every client count meets the p99 goal (the figure is the worst of their p99s)."""
    op_p99, goal_p99, src_p99 = goal_from(doc.get("goal"), 0, "retrieval_p99_ms")
    op_rec, goal_rec, _ = goal_from(doc.get("goal"), 1, "retrieval_recall_at_100")
    best: dict[str, Any] = doc.get("best_by_clients") or {}
    counts = [str(c) for c in doc.get("clients", [])] or sorted(best, key=int)
    parts, loads, p99s = [], [], []
    for n in counts:
        b = best.get(n)
        who = f"{n} client{'s' if n != '1' else ''}"
        if not b:
            top = (doc.get("highest_recall_by_clients") or {}).get(n)
            parts.append(
                f"{who}: no setting reached recall@100 {goal_text(op_rec, goal_rec, '')}"
                + (
                    f" (highest {fmt(top['recall_at_100'], 3)}: {top['index_type']} "
                    + ", ".join(f"{k}={v}" for k, v in {**top["build_params"], **top["search_params"]}.items())
                    + f", p50 {fmt(top['p50_ms'])} / p99 {fmt(top['p99_ms'])} ms)"
                    if top
                    else ""
                )
            )
            if top and top.get("load_1m_mean") is not None:
                loads.append(f"{who}: mean {fmt(top['load_1m_mean'], 1)}")
            continue
        params = ", ".join(f"{k}={v}" for k, v in {**b.get("build_params", {}), **b.get("search_params", {})}.items())
        parts.append(
            f"{who}: p99 {fmt(b['p99_ms'])} ms (p50 {fmt(b['p50_ms'])}, {fmt(b.get('queries_per_s'), 0)} q/s) "
            f"at recall {fmt(b['recall_at_100'], 3)}, {b['index_type']} {params}"
        )
        p99s.append(float(b["p99_ms"]))
        if b.get("load_1m_mean") is not None:
            loads.append(f"{who}: mean {fmt(b['load_1m_mean'], 1)}")
    complete = bool(counts) and len(p99s) == len(counts)
    value = max(p99s) if complete else None
    made = doc.get("how_the_vectors_were_made") or {}
    vectors = (
        f"trained vectors, no jittered copies: all {fmt(doc.get('items'))} catalogue items embedded by a two-tower "
        f"trained on {fmt(made.get('events'))} synthetic events over a {fmt(made.get('catalogue_items'))}-item "
        f"catalogue ({fmt(made.get('items_seen_in_training_embedded_with_id'))} items seen in training, embedded "
        f"with their id; {fmt(made.get('items_embedded_from_content_only'))} from content only; "
        f"{fmt(made.get('distinct_vectors'))} distinct vectors; dim {doc.get('dim')})"
    )
    notes = (doc.get("profile") or {}).get("notes") or []
    return Figure(
        area,
        TRAINED_RETRIEVAL_ROW,
        value,
        "ms",
        judge(value, op_p99, goal_p99) if complete else NOT_MET,
        name,
        shown="; ".join(parts),
        goal=f"p99 {goal_text(op_p99, goal_p99, 'ms')} at recall@100 {goal_text(op_rec, goal_rec, '')}, "
        "1 and 4 clients",
        goal_source=src_p99,
        meaning=f"{vectors}; {fmt(doc.get('queries'))} held-out queries; {doc.get('client_model', '')}; recall "
        "against exact search" + (f". Profile: {' '.join(dict.fromkeys([notes[0], notes[-1]]))}" if notes else ""),
        command=" ; then ".join(
            [*made.get("training_commands", []), *(doc.get("commands") or [doc.get("command") or ""])]
        )
        or f"{PY} bench/bench_retrieval.py --vectors trained --out bench/results/{name}",
        measured_at=measured_at(doc, path),
        load_1m="; ".join(loads) + " (sampled while it ran)" if loads else NOT_RECORDED,
    )


def _paced_retrieval_figure(area: str, name: str, path: Path, doc: dict[str, Any], clients: str) -> Figure:
    """The trained-catalogue run's open-loop rounds with ``clients`` clients: the highest offered rate
    at which callers sending at a fixed pace see p99 within the goal (the closed-loop row measures
    the saturated machine)."""
    best: dict[str, Any] | None = (doc.get("best_paced") or {}).get(clients)
    rounds = [
        (ix, run, fig)
        for ix in doc.get("indexes", [])
        for run in ix.get("runs", [])
        for fig in (((run.get("paced") or {}).get(clients) or {}).get("by_rate") or {}).values()
    ]
    who = f"{clients} client{'s' if clients != '1' else ''}"
    rate_goal = doc.get("paced_goal_rate_per_s")
    op_p99, goal_p99, _ = goal_from(doc.get("goal"), 0, "retrieval_p99_ms")
    if best:
        params = ", ".join(f"{k}={v}" for k, v in {**best["build_params"], **best["search_params"]}.items())
        shown = (
            f"{fmt(best['offered_per_s'], 0)} q/s offered by {who}: p99 {fmt(best['p99_ms'])} ms "
            f"(p50 {fmt(best['p50_ms'])}) at recall {fmt(best['recall_at_100'], 3)}, {best['index_type']} {params}"
        )
        load = f"mean {fmt(best.get('load_1m_mean'), 1)}, max {fmt(best.get('load_1m_max'), 1)} (sampled while it ran)"
    else:
        ok = [r for r in rounds if r[1]["recall_at_100"] >= 0.95]
        lowest = min(ok, key=lambda r: (r[2]["offered_per_s"], r[2]["p99_ms"]), default=None)
        shown = f"{who}: p99 over the goal already at the lowest rate tried"
        if lowest:
            # The setting that came closest at the lowest rate, with its p99 at every rate tried.
            figs = sorted(lowest[1]["paced"][clients]["by_rate"].values(), key=lambda f: f["offered_per_s"])
            params = ", ".join(f"{k}={v}" for k, v in {**lowest[0]["build_params"], **lowest[1]["params"]}.items())
            shown += (
                f"; {lowest[0]['index_type']} {params} (recall {fmt(lowest[1]['recall_at_100'], 3)}): p99 "
                + " / ".join(fmt(f["p99_ms"]) for f in figs)
                + " ms at "
                + " / ".join(fmt(f["offered_per_s"], 0) for f in figs)
                + " q/s offered"
            )
        means = [r[2]["load_1m_mean"] for r in rounds if r[2].get("load_1m_mean") is not None]
        load = (
            f"mean {fmt(min(means), 1)}–{fmt(max(means), 1)} over its rounds (sampled while it ran)"
            if means
            else NOT_RECORDED
        )
    tried = sorted({float(r[2]["offered_per_s"]) for r in rounds})
    return Figure(
        area,
        f"top-100 over 1M trained vectors, {who} at a fixed pace: highest offered rate with p99 "
        f"{goal_text(op_p99, goal_p99, 'ms')} at recall@100 ≥ 0.95",
        best["offered_per_s"] if best else None,
        "q/s",
        MET if best and rate_goal is not None and best["offered_per_s"] >= rate_goal else NOT_MET,
        name,
        shown=shown,
        goal=f"≥ {fmt(rate_goal, 0)} q/s offered (the serving goal's requests/s, one search each)",
        goal_source="issue 16 (p99 ≤ 5 ms, 1 and 4 clients) at the serving goal's rate",
        meaning=f"{doc.get('paced_client_model', '')}; rates tried: {', '.join(fmt(t, 0) for t in tried)} q/s, "
        f"{fmt(rounds[0][1]['paced'][clients].get('seconds') if rounds else None, 0)} s each, per setting; "
        "the same vectors, queries and Milvus as the closed-loop row",
        command=" ; then ".join(doc.get("commands") or [doc.get("command") or ""]),
        measured_at=measured_at(doc, path),
        load_1m=load,
    )


def feast_section(docs: dict[str, tuple[Path, dict[str, Any]]]) -> Section:
    """Online feature reads and the pusher."""
    section = Section("Online features")
    entry = docs.get("feast.json")
    if entry is None:
        section.figures.append(
            Figure(
                section.area,
                "ranking features, 1 user + 100 items, p99",
                None,
                "ms",
                MISSING,
                "feast.json",
                command=f"{PY} bench/bench_feast.py",
            )
        )
        return section
    path, doc = entry
    op, threshold, source = goal_from(doc.get("goal"), 0, "online_features_p99_ms")
    command = f"{PY} {doc['command']}" if doc.get("command") else f"{PY} bench/bench_feast.py"
    when = measured_at(doc, path)
    paths = {
        "reader": "OnlineFeatureReader, each read interleaved with a Feast read of the same request (pessimistic)",
        "reader_alone": "OnlineFeatureReader alone, reads back to back (as a serving process reads)",
        "feast": "Feast's get_online_features (for comparison)",
    }
    for backend, result in doc.get("backends", {}).items():
        if "skipped" in result:
            section.figures.append(
                Figure(section.area, f"{backend}: reads", None, "ms", MISSING, "feast.json", note=result["skipped"])
            )
            continue
        for key, reads in result.items():
            if not key.startswith("ranking") or not isinstance(reads, dict):
                continue
            for read_path, meaning in paths.items():
                stats = reads.get(read_path)
                if not stats:
                    continue
                judged = read_path != "feast"
                section.figures.append(
                    Figure(
                        section.area,
                        f"{key} p99 on {backend}: {read_path}",
                        stats.get("p99_ms"),
                        "ms",
                        judge(stats.get("p99_ms"), op, threshold) if judged else NO_GOAL,
                        "feast.json",
                        goal=goal_text(op, threshold, "ms") if judged else None,
                        goal_source=source if judged else None,
                        meaning=(
                            f"{meaning}; p50 {fmt(stats.get('p50_ms'))} ms, CPU p99 "
                            f"{fmt((stats.get('cpu') or {}).get('p99_ms'))} ms, {fmt(stats.get('reads'))} reads over "
                            f"{fmt(doc.get('users'))} users / {fmt(doc.get('items'))} items, nothing else in the "
                            "process"
                        ),
                        command=command,
                        measured_at=when,
                        load_1m=first_load(result),
                    )
                )
        materialize = result.get("materialize", {})
        if materialize:
            section.figures.append(
                Figure(
                    section.area,
                    f"materialize on {backend}",
                    materialize.get("rows_per_s"),
                    "rows/s",
                    NO_GOAL,
                    "feast.json",
                    command=command,
                    measured_at=when,
                    load_1m=first_load(result),
                )
            )
    pusher = doc.get("pusher")
    if isinstance(pusher, dict):
        p_op, p_threshold, p_source = goal_from(pusher.get("goal"), 0, "online_features_p99_ms")
        for case, result in pusher.items():
            if not isinstance(result, dict) or "pusher" not in result:
                continue
            rate = result["pusher"].get("rows_written_per_s")
            section.figures.append(
                Figure(
                    section.area,
                    f"pusher into SQLite, {case.replace('_', ' ')}",
                    rate,
                    "rows/s",
                    judge(rate, p_op, p_threshold),
                    "feast.json",
                    goal=goal_text(p_op, p_threshold, "rows/s"),
                    goal_source=p_source,
                    meaning=(
                        f"{fmt(result.get('records'))} records of {fmt(result.get('sessions'))} sessions, no Kafka "
                        f"(a stand-in consumer); {fmt(result['pusher'].get('rows_written_per_cpu_s'))} rows per "
                        "CPU-second"
                    ),
                    command=f"{PY} {pusher['command']}" if pusher.get("command") else command,
                    measured_at=str(pusher.get("when") or NOT_RECORDED),
                    load_1m=first_load(result),
                )
            )
    section.figures += _online_read_figures(section.area, docs, op, threshold)
    return section


def _online_read_figures(
    area: str, docs: dict[str, tuple[Path, dict[str, Any]]], op: str, threshold: float
) -> list[Figure]:
    """ranking_v2 as the recommender reads it (online_reads.json), and the same call alone per store."""
    title = "ranking_v2 reads as the recommender makes them, interleaved with its other work (p99)"
    entry = docs.get("online_reads.json")
    if entry is None:
        return [
            Figure(
                area,
                title,
                None,
                "ms",
                MISSING,
                "–",
                goal=goal_text(op, threshold, "ms"),
                goal_source="issue 16",
                command=f"{PY} bench/bench_online_reads.py --state-dir <a finished demo>",
            )
        ]
    path, doc = entry
    when = measured_at(doc, path)
    command = f"{PY} {doc['command']}" if doc.get("command") else f"{PY} bench/bench_online_reads.py"
    figures: list[Figure] = []
    for name, run in (doc.get("served") or {}).items():
        for key, which in (
            ("candidate_features_one_request_batches", "one-request batches"),
            ("candidate_features_all_answers", "all answers"),
        ):
            stats = run.get(key) or {}
            single = run.get("candidate_features_one_request_batches") or {}
            if not stats.get("n") or (which == "all answers" and stats.get("n") == single.get("n")):
                continue  # no answers, or every batch held one request (the row above says it)
            figures.append(
                Figure(
                    area,
                    f"{title}: {name.replace('_', ' ')} at {fmt(run.get('offered_rps'))} req/s, {which}",
                    stats.get("p99_ms"),
                    "ms",
                    judge(stats.get("p99_ms"), op, threshold),
                    "online_reads.json",
                    goal=goal_text(op, threshold, "ms"),
                    goal_source="issue 16",
                    meaning=(
                        "the recommender's candidate_features stage (the ranking_v2 read of the request's user and "
                        "candidates, SQLite, the demo stack running) from each answer's own timings; "
                        f"p50 {fmt(stats.get('p50_ms'))} ms over {fmt(stats.get('n'))} answers, mean batch "
                        f"{fmt(run.get('batch_size_mean'))}, client-side request p99 "
                        f"{fmt((run.get('request_latency_client_ms') or {}).get('p99_ms'))} ms"
                    ),
                    command=command,
                    measured_at=when,
                    load_1m=first_load(run),
                )
            )
    labels = {
        "sqlite": "SQLite (the demo's store)",
        "redis_direct": "Redis, the reader's direct HMGET",
        "redis_through_feast_online_read": "Redis through Feast's online_read (the previous path)",
    }
    for key, label in labels.items():
        stats = (doc.get("alone") or {}).get(key)
        if not stats:
            continue
        judged = key != "redis_through_feast_online_read"
        figures.append(
            Figure(
                area,
                f"ranking_v2, 1 user + 100 items, the recommender's call alone: {label} (p99)",
                stats.get("p99_ms"),
                "ms",
                judge(stats.get("p99_ms"), op, threshold) if judged else NO_GOAL,
                "online_reads.json",
                goal=goal_text(op, threshold, "ms") if judged else None,
                goal_source="issue 16" if judged else None,
                meaning=(
                    f"p50 {fmt(stats.get('p50_ms'))} ms, CPU {fmt(stats.get('cpu_mean_ms'))} ms per read, "
                    f"{fmt(stats.get('n'))} reads of random gold items back to back in one process"
                ),
                command=command,
                measured_at=when,
                load_1m=first_load(stats),
            )
        )
    return figures


def models_section(docs: dict[str, tuple[Path, dict[str, Any]]]) -> tuple[Section, Scale | None]:
    """Training time and quality of the two-stage recommender."""
    section = Section("Models")
    # models.json first; runs written elsewhere (e.g. --out models_1m.json) beside it.
    files = sorted(
        (n for n, (_, d) in docs.items() if d.get("benchmark") == "models"), key=lambda n: (n != "models.json", n)
    )
    command = f"{PY} bench/bench_models.py --datasets synthetic uci rees46 --events 1000000"
    if not files:
        section.figures.append(
            Figure(
                section.area, "training both models at 1M events", None, "s", MISSING, "models.json", command=command
            )
        )
        return section, None
    doc = docs[files[0]][1]
    goals = doc.get("goals", {}) if isinstance(doc.get("goals"), dict) else {}
    goal_key = next((k for k in goals if k.startswith("train_both_s_at_")), "train_both_s_at_1M_events")
    goal_s = float(goals.get(goal_key, ISSUE_GOALS["train_both_s_at_1M_events"][1]))
    goal_src = "the JSON" if goal_key in goals else ISSUE_GOALS["train_both_s_at_1M_events"][3]
    size = re.search(r"at_([0-9.]+)M_events", goal_key)
    goal_events = int(float(size.group(1)) * 1_000_000) if size else 1_000_000
    quality_goal = str(goals.get("quality", ""))
    # "... (UCI, synthetic)": the datasets the quality goal names, in its last parentheses.
    named = re.findall(r"\(([^)]*)\)", quality_goal)
    quality_sets = [part.strip().lower() for part in named[-1].split(",")] if named else []
    quality_metrics = re.findall(r"(recall@\d+|ndcg@\d+|mrr@\d+)", quality_goal)
    # Issue 17: the two-tower alone against item-kNN ("... on recall@100 (UCI, REES46, synthetic)").
    retrieval_goal = str(goals.get("retrieval", ""))
    named_r = re.findall(r"\(([^)]*)\)", retrieval_goal)
    retrieval_sets = [part.strip().lower() for part in named_r[-1].split(",")] if named_r else []
    retrieval_metric = next(iter(re.findall(r"(recall@\d+|ndcg@\d+)", retrieval_goal)), "recall@100")
    points: dict[str, list[tuple[float, float]]] = {}
    rows = []
    at_goal_through_store = False
    seen: set[tuple[str, str, str]] = set()
    for phase in ("sequence", "after", "before"):
        for file in files:
            block = docs[file][1].get(phase) or {}
            how = "through the feature store" if phase != "before" else "in process (dataset adapters)"
            # The "before" table predates training through the store (issue 9): kept for comparison only.
            superseded = "" if phase != "before" else "superseded: the models now train through the feature store"
            for dataset, result in (block.get("datasets") or {}).items():
                # Files copied from one another repeat results: each once, from the first file holding it.
                key = (phase, dataset, str(result.get("fingerprint") or result.get("not_run") or ""))
                if key in seen:
                    continue
                seen.add(key)
                # A dataset's own time when recorded (the block's is only its latest run's).
                when = str(result.get("measured_at") or block.get("measured_at") or NOT_RECORDED)
                encoder = str(result.get("two_tower_encoder") or "mean")
                if phase == "sequence":
                    # The sequence-aware query tower (issue 17), beside the mean tower's "after" run.
                    how = f"through the feature store, {encoder} query tower"
                    if result.get("two_tower_fallback"):
                        how += f" (asked {(result.get('config') or {}).get('sequence_encoder_asked')}, fell back)"
                name = str(result.get("dataset", dataset))
                named_in_goal = any(s in name.lower() or s == dataset for s in quality_sets)
                if result.get("not_run"):
                    section.figures.append(
                        Figure(
                            section.area,
                            f"quality and training time, {dataset}, {how}",
                            None,
                            "",
                            MISSING,
                            file,
                            goal=quality_goal if named_in_goal else None,
                            goal_source="the JSON" if named_in_goal else None,
                            meaning=str(result["not_run"]),
                            command=f"{PY} bench/bench_models.py --datasets {dataset}",
                            measured_at=when,
                        )
                    )
                    continue
                split, training, timings = (
                    result.get("split", {}),
                    result.get("training", {}),
                    result.get("timings", {}),
                )
                events = split.get("events")
                rerun = (
                    f"{PY} bench/bench_models.py --datasets {dataset.split('+', 1)[0]}"
                    + (f" --events {events}" if dataset == "synthetic" and events else "")
                    + (
                        f" --reuse-lake --sequence-encoder {(result.get('config') or {}).get('sequence_encoder_asked')}"
                        if phase == "sequence"
                        else ""
                    )
                    + (
                        f" --two-tower-epochs {(result.get('config') or {}).get('two_tower_epochs')}"
                        f" --two-tower-patience {(result.get('config') or {}).get('two_tower_patience')}"
                        f" --tag {dataset.split('+', 1)[1]}"
                        if phase == "sequence" and "+" in dataset
                        else ""
                    )
                    if phase != "before"
                    else "none: the in-process pipeline is gone (bench_models.py now trains through the store)"
                )
                if "train_both_s" in result:
                    train_s = result.get("train_both_s")
                elif "two_tower_train_s" in training:
                    train_s = (
                        training["two_tower_train_s"]
                        + training.get("deepfm_train_s", 0)
                        + training.get("two_tower_refit_s", 0)
                    )
                else:
                    train_s = None
                at_goal = bool(events) and abs(events - goal_events) <= 0.05 * goal_events
                at_goal_through_store = at_goal_through_store or (at_goal and phase != "before")
                load = first_load(timings.get("total"), timings)
                section.figures.append(
                    Figure(
                        section.area,
                        f"training both models, {dataset} ({fmt(events)} events), {how}",
                        train_s,
                        "s",
                        judge(train_s, "<=", goal_s) if at_goal else NO_GOAL,
                        file,
                        goal=goal_text("<=", goal_s, "s") + f" at {fmt(goal_events)} events" if at_goal else None,
                        goal_source=goal_src if at_goal else None,
                        meaning=(
                            "two-tower + DeepFM training wall seconds (their fit loops and what each needs around it"
                            + (
                                f": fit loops {fmt((timings.get('two_tower') or {}).get('loop_wall_s'))} s + "
                                f"{fmt((timings.get('deepfm') or {}).get('loop_wall_s'))} s"
                                + _refit_text(timings.get("two_tower") or {})
                                if timings.get("two_tower")
                                else ""
                            )
                            + "); "
                            + (
                                f"whole run {fmt((timings.get('total') or {}).get('wall_s'))} s wall / "
                                f"{fmt((timings.get('total') or {}).get('cpu_s'))} CPU-s"
                                if timings.get("total")
                                else f"whole run {fmt(result.get('total_s'))} s"
                            )
                        ),
                        command=rerun,
                        measured_at=when,
                        load_1m=load,
                        note="; ".join(
                            n
                            for n in (superseded, "" if at_goal else f"the goal is set at {fmt(goal_events)} events")
                            if n
                        ),
                    )
                )
                if dataset == "synthetic" and events and train_s is not None:
                    points.setdefault(how, []).append((float(events), float(train_s)))
                    total = timings.get("total") or {}
                    rows.append(
                        [
                            how,
                            fmt(events),
                            fmt(split.get("train_examples")),
                            fmt(train_s),
                            fmt(total.get("wall_s", result.get("total_s"))),
                            fmt(total.get("cpu_s")),
                            fmt(timings.get("peak_rss_mib", result.get("peak_rss_mib"))),
                            load,
                        ]
                    )
                beats = result.get("beats_baselines") or {}
                by_method_r = {r.get("method"): r for r in result.get("rows", [])}
                tower, knn = by_method_r.get("two-tower (retrieval only)"), by_method_r.get("item-kNN")
                if retrieval_goal and phase != "before" and tower and knn:
                    named_r_here = any(s in name.lower() or s == dataset for s in retrieval_sets)
                    ours_r, theirs_r = tower.get(retrieval_metric), knn.get(retrieval_metric)
                    met_r = ours_r is not None and theirs_r is not None and ours_r > theirs_r
                    section.figures.append(
                        Figure(
                            section.area,
                            f"two-tower alone vs item-kNN, {dataset} ({fmt(events)} events), {how}"
                            + ("" if phase == "sequence" else f", {encoder} query tower"),
                            ours_r,
                            "",
                            (MET if met_r else NOT_MET) if named_r_here else NO_GOAL,
                            file,
                            shown=(
                                f"two-tower ({encoder} query tower) {retrieval_metric} {fmt(ours_r, 4)} vs item-kNN "
                                f"{fmt(theirs_r, 4)} ({'+' if met_r else ''}"
                                f"{fmt((ours_r or 0) - (theirs_r or 0), 4)})"
                            ),
                            goal=retrieval_goal if named_r_here else None,
                            goal_source="the JSON" if named_r_here else None,
                            meaning=f"{fmt(split.get('test_examples_evaluated'))} test targets, temporal split; "
                            f"two-tower fit {fmt((timings.get('two_tower') or {}).get('loop_wall_s'))} s",
                            command=rerun,
                            measured_at=when,
                            load_1m=load,
                        )
                    )
                if quality_metrics:
                    metric = quality_metrics[0]
                    met = all(beats.get(m) for m in quality_metrics)
                    by_method = {r.get("method"): r for r in result.get("rows", [])}
                    ours = by_method.get("two-stage (two-tower + DeepFM)", {})
                    best: dict[str, Any] = max(
                        (r for m, r in by_method.items() if m and "two" not in m),
                        key=lambda r: r.get(quality_metrics[0], 0),
                        default={},
                    )
                    section.figures.append(
                        Figure(
                            section.area,
                            f"quality, {dataset} ({fmt(events)} events), {how}",
                            ours.get(quality_metrics[0]),
                            "",
                            (MET if met else NOT_MET) if named_in_goal else NO_GOAL,
                            file,
                            shown=(
                                f"two-stage {metric} {fmt(ours.get(metric), 4)} vs best baseline "
                                f"{fmt(best.get(metric), 4)} ({best.get('method')}); beats every baseline on: "
                                + (", ".join(m for m, v in beats.items() if v) or "none")
                            ),
                            goal=quality_goal if named_in_goal else None,
                            goal_source="the JSON" if named_in_goal else None,
                            meaning=f"{fmt(split.get('test_examples_evaluated'))} test targets, temporal split",
                            note=superseded,
                            command=rerun,
                            measured_at=when,
                            load_1m=load,
                        )
                    )
    if not at_goal_through_store:
        estimate = (doc.get("after") or {}).get("extrapolation_1M") or {}
        section.figures.append(
            Figure(
                section.area,
                f"training both models through the feature store at {fmt(goal_events)} events",
                None,
                "s",
                MISSING,
                "models.json",
                goal=goal_text("<=", goal_s, "s"),
                goal_source=goal_src,
                meaning=str(estimate.get("why", "not run")),
                command=f"{PY} bench/bench_models.py --datasets synthetic --events {goal_events}",
            )
        )
    conditions = (doc.get("after") or {}).get("conditions")
    if conditions:
        section.notes.append(f"Conditions of the runs through the store: {conditions}.")
    scale = None
    if rows:
        same = [how for how, pts in points.items() if len(pts) > 1]
        # A time budget caps the fit loops, so training time need not grow with the events: say so when recorded.
        budgets = sorted(
            {
                fmt((result.get("config") or {}).get("train_budget_s"))
                for file in files
                for result in ((docs[file][1].get("after") or {}).get("datasets") or {}).values()
                if (result.get("config") or {}).get("train_budget_s")
            }
        )
        scale = Scale(
            "Models: training time by synthetic events",
            ["pipeline", "events", "training examples", "train both s", "whole run s", "CPU-s", "peak MiB", "load"],
            rows,
            notes=[
                "Growth within one pipeline: "
                + "; ".join(f"{how} ({' → '.join(fmt(x) for x, _ in sorted(points[how]))} events)" for how in same)
                + (f"; the training loops stop at their time budget ({', '.join(budgets)} s)" if budgets else "")
                if same
                else "Each pipeline has one size only, so growth within a pipeline is not measured yet; the "
                "pipelines differ (in process vs through the store), so the sizes are not comparable across them. "
                f"Measure: `{PY} bench/bench_models.py --datasets synthetic --events 200000` and `--events 1000000`."
            ],
            plot="models_scale.png",
            series=points,
            x_label="synthetic events",
            y_label="train both models, s",
            goal_line=goal_s,
        )
    return section, scale


QUALITY_SETS = ("uci", "rees46", "synthetic")
QUALITY_METRICS = ("recall@20", "recall@100", "ndcg@10", "mrr@20")
QUALITY_HEADER = [
    "method",
    "R@20",
    "R@100",
    "NDCG@10",
    "MRR@20",
    "training wall s (epochs)",
    "training CPU s",
    "1-min load while it trained",
    "source",
]
PEER_COMMAND = "make bench-peers  # or: .venv/bin/python bench/bench_peers.py --datasets {dataset}"


@dataclass
class QualityTable:
    """One dataset's quality table: our towers, the baselines and the peers, on one split."""

    dataset: str
    conditions: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def _metric_cells(metrics: dict[str, Any]) -> list[str]:
    return [fmt(metrics.get(m), 4) for m in QUALITY_METRICS]


def _refit_text(tower: dict[str, Any]) -> str:
    """ ", then refit N epochs on every training example in S s" when the run refitted its two-tower."""
    if not tower.get("refit_loop_wall_s"):
        return ""
    return (
        f"; then refit {fmt(tower.get('refit_epochs'))} epochs on every training example in "
        f"{fmt(tower.get('refit_loop_wall_s'))} s"
    )


def _tower_rows(result: dict[str, Any], label: str, source: str) -> list[list[str]]:
    """The two-tower alone and the two-stage rows of one bench_models run, with their training loops."""
    rows = {r["method"]: r for r in result.get("rows", [])}
    timings = result.get("timings") or {}
    tower, ranker = timings.get("two_tower") or {}, timings.get("deepfm") or {}
    load = load_text(tower) or NOT_RECORDED
    out = []
    alone = rows.get("two-tower (retrieval only)")
    refit_s = tower.get("refit_loop_wall_s") or 0
    if alone:
        time = f"{fmt(tower.get('loop_wall_s'))} ({fmt(tower.get('epochs'))})" + _refit_text(tower)
        cpu = fmt(tower.get("cpu_s_between_steps"))
        out.append([f"two-tower alone, {label}", *_metric_cells(alone), time, cpu, load, source])
    both = rows.get("two-stage (two-tower + DeepFM)")
    if both:
        seconds = [
            v for v in (tower.get("loop_wall_s"), ranker.get("loop_wall_s"), refit_s) if isinstance(v, int | float)
        ]
        refit = f" + refit {fmt(tower.get('refit_epochs'))}" if refit_s else ""
        time = (
            f"{fmt(sum(seconds))} ({fmt(tower.get('epochs'))} + {fmt(ranker.get('epochs'))}{refit}; two-tower + DeepFM)"
            if seconds
            else "–"
        )
        cpus = [v for v in (tower.get("cpu_s_between_steps"), ranker.get("cpu_s_between_steps")) if v is not None]
        cpu = fmt(sum(cpus)) if cpus else "–"
        out.append([f"two-stage, {label} + DeepFM", *_metric_cells(both), time, cpu, load, source])
    return out


def quality_tables(docs: dict[str, tuple[Path, dict[str, Any]]]) -> list[QualityTable]:
    """Per dataset, side by side on the same split: the baselines, the mean and the sequence-aware query
    towers (alone and in the two-stage pipeline; models.json) and RecBole's peers (peers.json).

    Every figure is read from those files; a peer that failed or was not run says so in its row.
    """
    models = docs.get("models.json", (None, {}))[1]
    peers = docs.get("peers.json", (None, {}))[1]
    after = (models.get("after") or {}).get("datasets") or {}
    sequence = models.get("sequence") or {}
    peer_sets = peers.get("datasets") or {}
    tables = []
    for name in QUALITY_SETS:
        mean, seq, peer = after.get(name) or {}, (sequence.get("datasets") or {}).get(name) or {}, peer_sets.get(name)
        peer = peer or {}
        if not (mean.get("rows") or seq.get("rows") or peer):
            continue
        rows: list[list[str]] = []
        baselines = {r["method"]: r for r in (mean or seq).get("rows", [])}
        base_load = load_text(((mean or seq).get("timings") or {}).get("total")) or NOT_RECORDED
        when_after = str(mean.get("measured_at") or (models.get("after") or {}).get("measured_at") or NOT_RECORDED)
        for method in ("most-popular", "item-kNN", "session-kNN"):
            r = baselines.get(method)
            if r:
                time = f"{fmt(r.get('seconds'))} (fit + scoring, no epochs)"
                rows.append([method, *_metric_cells(r), time, "–", base_load, "models.json (after)"])
        if mean.get("rows"):
            rows += _tower_rows(mean, "mean query tower", f"models.json (after, {when_after})")
        if seq.get("rows"):
            encoder = str(seq.get("two_tower_encoder") or (seq.get("config") or {}).get("sequence_encoder_asked"))
            when = str(seq.get("measured_at") or sequence.get("measured_at") or NOT_RECORDED)
            rows += _tower_rows(seq, f"{encoder} query tower", f"models.json (sequence, {when})")
        # The plain peer runs, then experiments recorded as <dataset>+<tag> (another budget, say).
        runs = [(m, r, "") for m, r in (peer.get("models") or {}).items()]
        for key in sorted(k for k in peer_sets if k.startswith(f"{name}+")):
            tag = str(peer_sets[key].get("experiment") or key.split("+", 1)[1])
            runs += [(m, r, f", {tag}") for m, r in (peer_sets[key].get("models") or {}).items()]
        for model, run, experiment in runs:
            label = f"{model} (RecBole {run.get('recbole_version', '?')}, peer{experiment})"
            status = str(run.get("status", NOT_RECORDED))
            if run.get("metrics"):
                best = run.get("best_epoch")
                best_text = f"best: epoch {best + 1}" if isinstance(best, int) and best >= 0 else "no best epoch"
                time = f"{fmt(run.get('train_s'))} ({_peer_epochs(run)}, {best_text})"
                if status != "ok":
                    time += f"; {status}"
                # The training loop's CPU seconds; older runs recorded the whole peer process only.
                cpu = fmt(run["train_cpu_s"]) if "train_cpu_s" in run else f"{fmt(run.get('cpu_s'))} (whole process)"
                load = load_text(run) or NOT_RECORDED
                rows.append([label, *_metric_cells(run["metrics"]), time, cpu, load, "peers.json"])
            else:
                why = str(run.get("reason") or run.get("error") or status)
                rows.append([label, *["–"] * 4, f"{status}: {why}", "–", "–", "peers.json"])
        split = mean.get("split") or seq.get("split") or {}
        conditions = [
            f"{fmt(split.get('events'))} events; {fmt(split.get('train_examples'))} training examples (the latest "
            f"200,000 at most); {fmt(split.get('test_examples_evaluated'))} test targets evaluated (a seeded sample), "
            f"{fmt(100 * (split.get('test_unseen_target_share') or 0), 1)}% of them unseen in training (a miss for "
            "every method)."
        ]
        notes = []
        if peer:
            check = peer.get("split_check") or {}
            export = peer.get("export") or {}
            same = check.get("same_metrics") and check.get("same_split_stats")
            knn = (check.get("item_knn_here") or {}).get("recall@100")
            conditions.append(
                "Peers: the same split rebuilt from bench_models.py's lake ("
                + (
                    f"checked: item-kNN on it gives models.json's figures, recall@100 {fmt(knn, 4)}, and the same "
                    "split counts"
                    if same
                    else "**not** the same split as models.json: item-kNN or the split counts differ"
                )
                + f"); trained on {fmt(export.get('train_examples'))} of the training examples, the latest "
                f"{fmt(export.get('valid_examples'))} held out for early stopping; scored with the project's "
                f"metric functions; measured {peers.get('measured_at', NOT_RECORDED)}."
            )
            notes += _peer_notes(mean, seq, peer)
        else:
            notes.append(f"Peers: **missing** (no peers.json entry). Measure: `{PEER_COMMAND.format(dataset=name)}`.")
        tables.append(QualityTable(name, conditions, rows, notes))
    return tables


def _peer_epochs(run: dict[str, Any]) -> str:
    """Epochs a peer ran, a cut-short last one as a fraction (steps over a whole epoch's steps)."""
    history, batch = run.get("history") or [], (run.get("config") or {}).get("train_batch_size")
    steps = [h.get("steps") for h in history]
    if not history or None in steps or not batch or not run.get("train_examples"):
        return fmt(run.get("epochs_run"))
    per_epoch = -(-int(run["train_examples"]) // int(batch))
    return f"{sum(steps) / per_epoch:.2f}"


def _peer_notes(mean: dict[str, Any], seq: dict[str, Any], peer: dict[str, Any]) -> list[str]:
    """The best peer beside our best two-tower alone (recall@100) and two-stage (recall@20, ndcg@10)."""
    runs = {m: r for m, r in (peer.get("models") or {}).items() if r.get("metrics")}
    if not runs:
        return []
    ours: dict[str, dict[str, float]] = {}
    for label, result in (("mean", mean), (str(seq.get("two_tower_encoder") or "sequence"), seq)):
        for r in result.get("rows", []):
            if r["method"] in ("two-tower (retrieval only)", "two-stage (two-tower + DeepFM)", "item-kNN"):
                ours.setdefault(r["method"], {})[label] = r
    notes = []
    for metric, method in (
        ("recall@100", "two-tower (retrieval only)"),
        ("recall@20", "two-stage (two-tower + DeepFM)"),
        ("ndcg@10", "two-stage (two-tower + DeepFM)"),
    ):
        best_peer = max(runs, key=lambda m: runs[m]["metrics"][metric])
        candidates = ours.get(method) or {}
        if not candidates:
            continue
        best_ours = max(candidates, key=lambda k: candidates[k][metric])
        p, o = runs[best_peer]["metrics"][metric], candidates[best_ours][metric]
        knn = next(iter((ours.get("item-kNN") or {}).values()), {}).get(metric)
        notes.append(
            f"{metric}: best peer {best_peer} {fmt(p, 4)} vs our {method.split(' (')[0]} ({best_ours} tower) "
            f"{fmt(o, 4)} ({'+' if o - p >= 0 else ''}{fmt(o - p, 4)} for ours); item-kNN {fmt(knn, 4)}."
        )
    return notes


def peers_section(docs: dict[str, tuple[Path, dict[str, Any]]]) -> Section:
    """RecBole's peers (peers.json): one figure per dataset and model, no goal of their own (the quality
    table sets them beside ours); a run that failed or was not run is missing, with its command."""
    section = Section("Peers (RecBole)")
    entry = docs.get("peers.json")
    if entry is None:
        section.figures.append(
            Figure(
                section.area,
                "RecBole SASRec and GRU4Rec on the models' split",
                None,
                "",
                MISSING,
                "peers.json",
                meaning="not measured yet",
                command=PEER_COMMAND.format(dataset="uci rees46 synthetic"),
            )
        )
        return section
    path, doc = entry
    when = measured_at(doc, path)
    for dataset, block in (doc.get("datasets") or {}).items():
        export = block.get("export") or {}
        for model, run in (block.get("models") or {}).items():
            name = f"{model} (RecBole {run.get('recbole_version', '?')}), {dataset}"
            command = f"{PY} bench/bench_peers.py --datasets {dataset} --models {model}"
            metrics = run.get("metrics")
            if not metrics:
                section.figures.append(
                    Figure(
                        section.area,
                        name,
                        None,
                        "",
                        MISSING,
                        "peers.json",
                        meaning=f"{run.get('status', NOT_RECORDED)}: {run.get('reason') or run.get('error') or ''}",
                        command=command,
                        measured_at=when,
                    )
                )
                continue
            config = run.get("config") or {}
            section.figures.append(
                Figure(
                    section.area,
                    name,
                    metrics.get("recall@20"),
                    "",
                    NO_GOAL,
                    "peers.json",
                    shown=" / ".join(f"{m} {fmt(metrics.get(m), 4)}" for m in QUALITY_METRICS),
                    meaning=f"trained {fmt(run.get('train_s'))} s wall, {fmt(run.get('cpu_s'))} CPU-s in the peer "
                    f"process, {_peer_epochs(run)} epochs (best: epoch {fmt((run.get('best_epoch') or 0) + 1)}, "
                    f"{run.get('stopped')}) on {fmt(export.get('train_examples'))} training examples, batch "
                    f"{config.get('train_batch_size')}, {fmt(config.get('time_budget_s'))} s budget, torch threads "
                    f"{run.get('torch_threads')}; {fmt(export.get('test_cases'))} test cases, "
                    f"{fmt(run.get('test_cases_without_known_prefix_item'))} of them with no prefix item the peer "
                    f"knows (ranked by popularity); status {run.get('status')}",
                    command=command,
                    measured_at=when,
                    load_1m=load_text(run) or NOT_RECORDED,
                )
            )
    return section


def _serving_runs_key(run: dict[str, Any]) -> tuple[str, int, bool]:
    return (str(run.get("protocol")), int(run.get("target_rps", 0)), bool(run.get("batching", True)))


def serving_section(docs: dict[str, tuple[Path, dict[str, Any]]]) -> tuple[Section, Scale | None]:
    """The recommender under load, over the demo catalogue and, when measured, 1M indexed items."""
    section = Section("Serving")
    # Without --state-dir, bench_serving.py runs its own 20k-event demo first.
    demo_cmd = f"{PY} bench/bench_serving.py --max-search"
    one_m_cmd = f"{PY} bench/bench_serving.py --index-items 1000000 --out bench/results/serving_1m.json"
    op_p99, goal_p99, _, src = ISSUE_GOALS["serving_p99_ms"]
    goal_rps = ISSUE_GOALS["serving_rps"][1]
    for name, default_cmd in (("serving.json", demo_cmd), ("serving_1m.json", one_m_cmd)):
        entry = docs.get(name)
        if entry is None:
            section.figures.append(
                Figure(
                    section.area,
                    "/recommend with 1M items indexed" if "1m" in name else "/recommend on the demo stack",
                    None,
                    "req/s",
                    MISSING,
                    name,
                    goal=f"p99 {goal_text(op_p99, goal_p99, 'ms')} at {goal_text('>=', goal_rps, 'req/s')}, 0 errors",
                    goal_source=src,
                    meaning="not measured yet",
                    command=default_cmd,
                )
            )
            continue
        path, doc = entry
        goal: dict[str, Any] = doc["goal"] if isinstance(doc.get("goal"), dict) else {}
        p99_goal, rps_goal = float(goal.get("p99_ms", goal_p99)), float(goal.get("rps", goal_rps))
        errors_goal = int(goal.get("errors", 0))
        source = "the JSON" if goal else src
        commands = doc.get("commands") or ([doc["command"]] if doc.get("command") else [default_cmd])
        command = "; ".join(str(c) for c in commands)
        index = doc.get("index") or {}
        catalogue = (
            f"{fmt(index['items_indexed'])} items indexed ({fmt(index.get('trained_vectors'))} trained vectors, "
            f"{fmt(index.get('synthetic_vectors'))} content-only synthetic items)"
            if isinstance(index.get("items_indexed"), int)
            else "the demo catalogue"
        )
        runs = doc.get("runs", [])
        for protocol in sorted({str(r.get("protocol")) for r in runs}):
            for batching in (True, False):
                mine = [r for r in runs if r.get("protocol") == protocol and bool(r.get("batching", True)) == batching]
                if not mine:
                    continue
                held = [r for r in mine if r.get("p99_ms", 1e9) <= p99_goal and r.get("errors", 1) <= errors_goal]
                best = max(held, key=lambda r: r.get("achieved_rps", 0)) if held else None
                top = max(mine, key=lambda r: r.get("target_rps", 0))
                section.figures.append(
                    Figure(
                        section.area,
                        f"{protocol.upper()} over {catalogue}, batching {'on' if batching else 'off'}: highest "
                        f"achieved rate with p99 ≤ {fmt(p99_goal)} ms and ≤ {fmt(errors_goal)} errors",
                        best.get("achieved_rps") if best else None,
                        "req/s",
                        judge(best.get("achieved_rps"), ">=", rps_goal) if best else NOT_MET,
                        name,
                        shown=(
                            f"{fmt(best['achieved_rps'])} req/s at p99 {fmt(best['p99_ms'])} ms"
                            if best
                            else f"none: at {fmt(top.get('target_rps'))} offered, {fmt(top.get('achieved_rps'))} "
                            f"achieved, p99 {fmt(top.get('p99_ms'))} ms, {fmt(top.get('errors'))} errors"
                        ),
                        goal=f"p99 ≤ {fmt(p99_goal)} ms at ≥ {fmt(rps_goal)} req/s, {fmt(errors_goal)} errors",
                        goal_source=source,
                        meaning="; ".join(
                            str(part)
                            for part in (
                                doc.get("what"),
                                index.get("how"),
                                f"{index['index_type']} index built in {fmt(index.get('build_s'))} s"
                                if index.get("index_type")
                                else None,
                                doc.get("conditions"),
                            )
                            if part
                        ),
                        command=command,
                        measured_at=measured_at(doc, path),
                        load_1m=load_of_runs(mine),
                    )
                )
        for missing in doc.get("not_measured", []):
            if re.search(r"\b1M items", str(missing)):
                continue  # serving_1m.json has its own row, measured or missing
            section.figures.append(
                Figure(
                    section.area,
                    str(missing),
                    None,
                    "",
                    MISSING,
                    name,
                    meaning="listed as not measured in the JSON",
                    command=one_m_cmd if "1m" in str(missing).lower().replace(" ", "") else demo_cmd,
                )
            )
    if not any(
        r.get("batching") is False
        for name in ("serving.json", "serving_1m.json")
        if name in docs
        for r in docs[name][1].get("runs", [])
    ) and not any("batching off" in f.name for f in section.figures):
        section.figures.append(
            Figure(
                section.area,
                "adaptive batching off",
                None,
                "",
                MISSING,
                "–",
                command=demo_cmd + " (its batching-off step runs unless --no-batching-compare)",
            )
        )
    return section, serving_scale(docs)


def serving_scale(docs: dict[str, tuple[Path, dict[str, Any]]]) -> Scale | None:
    """The same load over the demo catalogue and over 1M indexed items, side by side."""
    if "serving.json" not in docs:
        return None
    small = {_serving_runs_key(r): r for r in docs["serving.json"][1].get("runs", [])}
    large_doc = docs.get("serving_1m.json", (None, {}))[1]
    large = {_serving_runs_key(r): r for r in large_doc.get("runs", [])}
    rows: list[list[str]] = []
    series: dict[str, list[tuple[float, float]]] = {}
    for key in sorted(set(small) | set(large)):
        a, b = small.get(key), large.get(key)

        def cell(run: dict[str, Any] | None) -> str:
            if not run:
                return "–"
            search = (run.get("stage_ms_per_batch") or {}).get("index_search")
            return (
                f"{fmt(run.get('achieved_rps'))} req/s, p50 {fmt(run.get('p50_ms'))} / p99 {fmt(run.get('p99_ms'))}"
                f" ms, Milvus {fmt(search)} ms/batch"
            )

        rows.append([key[0].upper(), fmt(key[1]), "on" if key[2] else "off", cell(a), cell(b)])
        for label, run in (("demo catalogue", a), ("1M items", b)):
            if run:
                series.setdefault(f"{key[0].upper()} {label}, batching {'on' if key[2] else 'off'}", []).append(
                    (float(key[1]), float(run["p99_ms"]))
                )
    # Different loads make the two files' latencies hard to compare: say so beside the table.
    notes = [
        "1-minute load while the runs ran: "
        + "; ".join(
            f"{name} {load_of_runs(docs[name][1].get('runs', []))}"
            for name in ("serving.json", "serving_1m.json")
            if name in docs
        )
        + "."
    ]
    if not large:
        notes.append(
            "1M items indexed: **missing** (no serving_1m.json yet). Measure: "
            f"`{PY} bench/bench_serving.py --index-items 1000000 --out bench/results/serving_1m.json`."
        )
    return Scale(
        "Serving: the demo catalogue → 1M indexed items" + ("" if large else " (1M: missing)"),
        ["protocol", "offered req/s", "batching", "demo catalogue (serving.json)", "1M items (serving_1m.json)"],
        rows,
        notes=notes,
        plot="serving_scale.png",
        series=series,
        x_label="offered req/s",
        y_label="p99 ms",
        goal_line=ISSUE_GOALS["serving_p99_ms"][1],
        log_x=False,
    )


def stack_section(docs: dict[str, tuple[Path, dict[str, Any]]]) -> Section:
    """The embedded services: start-up time and resident memory."""
    section = Section("Stack")
    op, threshold, unit, src = ISSUE_GOALS["stack_rss_gb"]
    entry = docs.get("services.json")
    command = f"{PY} bench/bench_services.py"
    if entry is not None:
        path, doc = entry
        when, load = measured_at(doc, path), first_load(doc)
        services = ", ".join(doc.get("services", []))
        for phase in ("cold", "warm"):
            start, rss = doc.get(f"{phase}_start", {}), doc.get(f"{phase}_idle_rss", {})
            section.figures.append(
                Figure(
                    section.area,
                    f"{phase} start of {services} to all healthy",
                    start.get("total_s"),
                    "s",
                    NO_GOAL,
                    "services.json",
                    command=command,
                    measured_at=when,
                    load_1m=load,
                )
            )
            mb = rss.get("total_mb")
            section.figures.append(
                Figure(
                    section.area,
                    f"idle resident memory of {services} after a {phase} start",
                    mb,
                    "MB",
                    NOT_COMPARABLE,
                    "services.json",
                    goal=f"whole stack during the demo {goal_text(op, threshold, unit)}",
                    goal_source=src,
                    meaning=f"idle after {fmt(doc.get('idle_s'))} s, {len(doc.get('services', []))} services only "
                    "(no Flink, Spark, Redis or recommender)",
                    command=command,
                    measured_at=when,
                    load_1m=load,
                )
            )
    memory = docs.get("stack_memory.json")
    memory_command = f"{PY} bench/bench_stack_memory.py"
    if memory is None:
        section.figures.append(
            Figure(
                section.area,
                "memory of the whole stack during the demo, peak and steady, per service",
                None,
                unit,
                MISSING,
                "–",
                goal=goal_text(op, threshold, unit),
                goal_source=src,
                meaning="not measured yet",
                command=memory_command,
            )
        )
        return section
    path, doc = memory
    when, load = measured_at(doc, path), first_load(doc)
    per_service = doc.get("per_service", {})
    split = ", ".join(
        f"{name} {fmt(v.get('peak_mb'))}/{fmt(v.get('steady_mb'))}"
        for name, v in sorted(per_service.items(), key=lambda kv: -(kv[1].get("peak_mb") or 0))
    )
    for which in ("peak", "steady"):
        mb = doc.get(f"total_{which}_mb")
        gb = None if mb is None else mb / 1024
        section.figures.append(
            Figure(
                section.area,
                f"memory of the whole stack during the demo ({doc.get('events', 0):,} events), {which}",
                gb,
                unit,
                judge(gb, op, threshold),
                "stack_memory.json",
                goal=goal_text(op, threshold, unit),
                goal_source=src,
                meaning="PSS summed over every service's processes and the demo process (Spark driver, training); "
                + (
                    "the highest one-second sum while the demo ran"
                    if which == "peak"
                    else f"median over {fmt(doc.get('steady_s'))} s after it, every service up and idle"
                )
                + (f". Per service, peak/steady MB: {split}" if which == "peak" else ""),
                command=memory_command,
                measured_at=when,
                load_1m=load,
            )
        )
    return section


def throughput_section(docs: dict[str, tuple[Path, dict[str, Any]]]) -> Section:
    """Kafka, the generator and drift: figures without a goal in the issues (drift has its own)."""
    section = Section("Events, generator, drift")
    if "kafka.json" in docs:
        path, doc = docs["kafka.json"]
        for key, what in (
            ("produce_validated", "produce with validation (EventPublisher.publish)"),
            ("produce_prevalidated", "produce pre-validated events"),
            ("consume_validated", "consume with decode + validation (EventConsumer)"),
        ):
            block = doc.get(key) or {}
            section.figures.append(
                Figure(
                    section.area,
                    f"Kafka: {what}",
                    block.get("events_per_s"),
                    "events/s",
                    NO_GOAL,
                    "kafka.json",
                    meaning=f"{fmt(block.get('events'))} events of ~{fmt(doc.get('avg_event_bytes'))} bytes on "
                    f"loopback, {fmt(block.get('mb_per_s'))} MB/s",
                    command=f"{PY} bench/bench_kafka.py --events {(doc.get('produce_validated') or {}).get('events')}",
                    measured_at=measured_at(doc, path),
                    load_1m=first_load(doc),
                )
            )
    if "generator.json" in docs:
        path, doc = docs["generator.json"]
        params = doc.get("params", {})
        section.figures.append(
            Figure(
                section.area,
                f"generator: {fmt(params.get('events'))} events to Parquet",
                doc.get("events_per_second"),
                "events/s",
                NO_GOAL,
                "generator.json",
                meaning=f"{fmt(doc.get('seconds'))} s, peak RSS {fmt(doc.get('peak_rss_mib'))} MiB",
                command=f"{PY} bench/bench_generator.py --events {params.get('events')}",
                measured_at=measured_at(doc, path),
                load_1m=first_load(doc),
            )
        )
    if "drift.json" in docs:
        path, doc = docs["drift.json"]
        goal_s = doc.get("goal_s")
        section.figures.append(
            Figure(
                section.area,
                f"drift: profile + compare, {fmt(doc.get('features'))} features × {fmt(doc.get('rows_per_window'))} "
                "rows",
                doc.get("total_s"),
                "s",
                judge(doc.get("total_s"), "<=", goal_s) if isinstance(goal_s, int | float) else NO_GOAL,
                "drift.json",
                goal=goal_text("<=", goal_s, "s") if isinstance(goal_s, int | float) else None,
                goal_source="the JSON" if goal_s is not None else None,
                meaning=f"wall seconds; {fmt(doc.get('total_cpu_s'))} CPU-s (the work itself on a shared machine)",
                command=f"{PY} bench/bench_drift.py --features {doc.get('features')} "
                f"--rows {doc.get('rows_per_window')}",
                measured_at=measured_at(doc, path),
                load_1m=first_load(doc),
            )
        )
    return section


def orchestration_section(docs: dict[str, tuple[Path, dict[str, Any]]]) -> Section:
    """The DAGs' tasks: what a nightly ``daily_features`` and a ``weekly_retrain`` cost, per task."""
    section = Section("Orchestration")
    entry = docs.get("dags.json")
    if entry is None:
        return section
    path, doc = entry
    when = measured_at(doc, path)
    command = str(doc.get("command", f"{PY} bench/bench_dags.py"))
    lake = f"a demo lake of {fmt(doc.get('events'))} events over {fmt(doc.get('silver_dates'))} dates"
    op_inc, goal_inc, _, inc_src = ISSUE_GOALS["batch_daily_incremental_s"]
    for dag, total_key in (("daily_features", "daily_features_total_s"), ("weekly_retrain", "weekly_retrain_total_s")):
        tasks = doc.get(dag, {})
        timed = {k: v for k, v in tasks.items() if isinstance(v, dict) and "wall_s" in v}
        split = ", ".join(f"{k} {fmt(v['wall_s'])} s ({fmt(v.get('cpu_s'))} CPU-s)" for k, v in timed.items())
        loads = [float(v["load_1m_mean"]) for v in timed.values() if v.get("load_1m_mean") is not None]
        daily = dag == "daily_features"
        section.figures.append(
            Figure(
                section.area,
                f"{dag}: every task, on {lake}" + (f", day {tasks.get('day')}" if tasks.get("day") else ""),
                doc.get(total_key),
                "s",
                NOT_COMPARABLE if daily else NO_GOAL,
                "dags.json",
                goal=f"daily incremental run {goal_text(op_inc, goal_inc, 's')} at 10M events" if daily else None,
                goal_source=inc_src if daily else None,
                meaning=f"wall seconds of the DAG's step functions in order: {split}"
                + (
                    f"; spark-submit jobs {tasks.get('jobs')}, gold of {fmt(tasks.get('gold_dates'))} date(s)"
                    if daily
                    else f"; training budget {fmt(tasks.get('train_budget_s'))} s, promoted: {tasks.get('promoted')}"
                ),
                command=command,
                measured_at=when,
                load_1m=f"mean {fmt(sum(loads) / len(loads))}" if loads else NOT_RECORDED,
            )
        )
    return section


# -- reading, plotting, writing -------------------------------------------------------------------
def read_results(results: Path) -> tuple[dict[str, tuple[Path, dict[str, Any]]], dict[str, str]]:
    """Every result JSON of the folder by file name; and the files that could not be read, with why."""
    docs, unreadable = {}, {}
    for path in sorted(results.glob("*.json")):
        if path.name in GENERATED:
            continue
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:  # a benchmark may be writing it right now
            unreadable[path.name] = str(exc)
            continue
        if isinstance(doc, dict):
            docs[path.name] = (path, doc)
        else:
            unreadable[path.name] = "not a JSON object"
    return docs, unreadable


def draw(scale: Scale, out: Path) -> bool:
    """Draw a scale's series to ``out`` (PNG); False when there is nothing to draw."""
    if not scale.series:
        return False
    import matplotlib

    matplotlib.use("Agg")  # no display on the reference machine
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    colours: dict[str, str] = {}
    for label, points in sorted(scale.series.items()):
        pts = sorted(points)
        # A stage's CPU seconds share its wall line's colour, dashed.
        base = label.split(" (CPU")[0]
        colour = colours.setdefault(base, f"C{len(colours) % 10}")
        style = "--" if "CPU" in label else "-"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=colour, marker="o", label=label)
    if scale.goal_line is not None:
        ax.axhline(scale.goal_line, color="red", linewidth=1, linestyle=":", label=f"goal {fmt(scale.goal_line)}")
    if scale.log_x:
        ax.set_xscale("log")
    values = [y for points in scale.series.values() for _, y in points if y > 0]
    # A log axis shows growth over decades; over less than one decade it only hides the numbers.
    log_y = bool(values) and max(values) / min(values) >= 10
    if log_y:
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, max([*values, scale.goal_line or 0]) * 1.1)
    plain = FuncFormatter(lambda v, _: fmt(v))
    for axis in (ax.xaxis, ax.yaxis) if log_y else (ax.xaxis,):
        axis.set_major_formatter(plain)
        # Label the 2s, 3s and 5s between decades, or a log axis may show a single number.
        axis.set_minor_formatter(FuncFormatter(lambda v, _: fmt(v) if f"{v:.0e}"[0] in "235" else ""))
    ax.set_xlabel(scale.x_label)
    ax.set_ylabel(scale.y_label)
    ax.set_title(scale.title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata={"Software": None})  # no version stamp: the same data gives the same file
    plt.close(fig)
    return True


def md_escape(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def render(
    sections: list[Section],
    scales: list[Scale],
    docs: dict[str, tuple[Path, dict[str, Any]]],
    unreadable: dict[str, str],
    known: set[str],
    quality: list[QualityTable] | None = None,
) -> str:
    """The Markdown report."""
    figures = [f for s in sections for f in s.figures]
    judged = [f for f in figures if f.goal]
    counts = {s: sum(f.status == s for f in judged) for s in (MET, NOT_MET, MISSING, NOT_COMPARABLE)}
    lines = [
        "# Benchmark report",
        "",
        "Written by `bench/report.py` from the JSON files in `bench/results/`: every figure below is read from one "
        "of them, none is typed in. Regenerate without measuring: `make bench-report`; measure everything again, "
        "then regenerate: `make bench` (hours on the reference machine). A measurement no file holds is marked "
        "**missing**, with the command that would produce it.",
        "",
        f"Against their goals: **{counts[MET]} met, {counts[NOT_MET]} not met, {counts[MISSING]} missing**, "
        f"{counts[NOT_COMPARABLE]} not comparable (the figure measures something easier or different from the goal).",
        "",
        "## The machine",
        "",
        "| result file | cores | memory | platform | python | measured at |",
        "|---|---|---|---|---|---|",
    ]
    for name, (path, doc) in sorted(docs.items()):
        machine = machine_of(doc)
        memory = machine.get("memory_gib", machine.get("memory_gb"))
        when = measured_at(doc, path)
        if doc.get("benchmark") == "models":
            after, before = doc.get("after") or {}, doc.get("before") or {}
            when = f"after {after.get('measured_at', NOT_RECORDED)}; before {before.get('measured_at', NOT_RECORDED)}"
        lines.append(
            f"| {name} | {machine.get('cpus', NOT_RECORDED)} | "
            f"{f'{fmt(memory)} GiB' if memory is not None else NOT_RECORDED} | "
            f"{machine.get('platform', NOT_RECORDED)} | {machine.get('python', NOT_RECORDED)} | {md_escape(when)} |"
        )
    cpus = sorted({str(machine_of(d)["cpus"]) for _, d in docs.values() if machine_of(d).get("cpus")})
    platforms = sorted({str(machine_of(d)["platform"]) for _, d in docs.values() if machine_of(d).get("platform")})
    lines += [
        "",
        f"Cores recorded: {', '.join(cpus) or NOT_RECORDED}; platforms recorded: "
        f"{', '.join(platforms) or NOT_RECORDED}. The machine is shared (other engineers' jobs ran beside most "
        "runs): read wall-clock figures with the 1-minute load average beside them.",
        "",
        "## Each figure beside its goal",
        "",
        "| area | figure | measured | goal | status | 1-min load while it ran | measured at | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in judged:
        status = f"**{f.status}**" if f.status in (MET, NOT_MET, MISSING) else f.status
        status += f" ({f.note})" if f.note else ""
        goal = f"{f.goal} ({f.goal_source})" if f.goal_source else str(f.goal)
        lines.append(
            f"| {f.area} | {md_escape(f.name)} | {md_escape(f.display())} | {md_escape(goal)} | {status} | "
            f"{md_escape(f.load_1m)} | {md_escape(f.measured_at)} | {f.source} |"
        )
    if quality:
        lines += [
            "",
            "## Quality side by side: our towers, the baselines and a peer library (issue 17)",
            "",
            "Per dataset, one temporal split (the latest 20% of events are the future), one test set, the project's "
            "metric functions; from models.json (ours and the baselines) and peers.json (RecBole). Training time is "
            "the training loop's wall seconds (epochs run, a cut-short one included) on the shared 2-core machine, "
            "with its CPU seconds and the 1-minute load while it trained: compare wall times only at like loads; "
            "the CPU seconds are the steadier figure. Peers' epochs count a cut-short last epoch as a fraction; the "
            "peers train on one torch thread (two threads waited on each other under load: see "
            "bench/peers/run_recbole.py), ours on two. Baselines: fit + scoring the test set, wall.",
        ]
        for table in quality:
            lines += ["", f"### {table.dataset}", "", *table.conditions, ""]
            lines.append("| " + " | ".join(QUALITY_HEADER) + " |")
            lines.append("|---|" + "---:|" * 4 + "---|---:|---|---|")
            lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in table.rows]
            if table.notes:
                lines += ["", *[f"- {note}" for note in table.notes]]
    lines += ["", "## What each figure means, and the command that reproduces it", ""]
    for section in sections:
        lines += [f"### {section.area}", ""]
        for f in section.figures:
            status = f.status + (f" ({f.goal})" if f.goal else "")
            lines.append(f"- **{f.name}**: {f.display()} — {status}.")
            details = []
            if f.meaning:
                details.append(f"What it means: {f.meaning}.")
            if f.note:
                details.append(f"Note: {f.note}.")
            details.append(f"1-min load while it ran: {f.load_1m}. Measured: {f.measured_at}. Source: {f.source}.")
            if f.command:
                details.append(f"Command: `{f.command}`")
            lines.append("  " + " ".join(details))
        for note in section.notes:
            lines.append(f"- {note}")
        lines.append("")
    lines += ["## How cost grows with scale", ""]
    for scale in scales:
        lines += [f"### {scale.title}", ""]
        lines.append("| " + " | ".join(scale.header) + " |")
        lines.append("|" + "---|" * len(scale.header))
        lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in scale.rows]
        lines.append("")
        lines += [*scale.notes, ""] if scale.notes else []
        if scale.plot:
            lines += [f"![{scale.title}](plots/{scale.plot})", ""]
    missing_scales = {
        "batch_scale.png": f"batch at two sizes: `{PY} bench/bench_batch.py --events 1000000 10000000`",
        "retrieval_scale.png": f"retrieval at two sizes: `{PY} bench/bench_retrieval.py --items 300000 --out "
        f"bench/results/retrieval_300k.json` and `--items 1000000 --out bench/results/retrieval_1m.json`",
    }
    drawn = {s.plot for s in scales}
    for plot, how in missing_scales.items():
        if plot not in drawn:
            lines += [f"- **missing**: {how}", ""]
    missing = [f for f in figures if f.status == MISSING]
    lines += [
        "## Missing measurements",
        "",
        "| area | what | why | command that would produce it |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {f.area} | {md_escape(f.name)} | {md_escape(f.meaning or f.note or '–')} | "
        f"{md_escape('`' + f.command + '`' if f.command else '–')} |"
        for f in missing
    ]
    other = sorted(set(docs) - known)
    if other or unreadable:
        lines += ["", "## Other result files", ""]
        lines += [f"- `{name}`: read, not summarised here (no section knows its format)." for name in other]
        lines += [f"- `{name}`: could not be read ({why})." for name, why in unreadable.items()]
    return "\n".join(lines).rstrip() + "\n"


def summarised(name: str, doc: dict[str, Any]) -> bool:
    """Whether a section of the report reads this result file."""
    fixed = {
        "batch.json",
        "feast.json",
        "models.json",
        "services.json",
        "kafka.json",
        "generator.json",
        "drift.json",
        "dags.json",
        "peers.json",
    }
    return (
        name in fixed
        or name in {"serving.json", "serving_1m.json"}
        or str(doc.get("benchmark", "")).startswith("stream")
        or doc.get("benchmark") in ("retrieval", "models")
    )


def build(results: Path, out: Path) -> dict[str, Any]:
    """Read the results, write REPORT.md, report.json and the plots; return what report.json holds.

    Args:
        results: The folder of result JSONs.
        out: Where the report goes (its plots in ``out / "plots"``).
    """
    docs, unreadable = read_results(results)
    stream = stream_section(docs)
    batch, batch_scale = batch_section(docs)
    models, models_scale = models_section(docs)
    retrieval, retrieval_scale = retrieval_section(docs)
    feast = feast_section(docs)
    serving, serving_scale_ = serving_section(docs)
    quality = quality_tables(docs)
    sections = [
        stream,
        batch,
        models,
        peers_section(docs),
        retrieval,
        feast,
        serving,
        stack_section(docs),
        orchestration_section(docs),
        throughput_section(docs),
    ]
    scales = [s for s in (batch_scale, retrieval_scale, models_scale, serving_scale_) if s is not None]
    plots_dir = out / "plots"
    for scale in scales:
        if scale.plot and not draw(scale, plots_dir / scale.plot):
            scale.plot = None
    drawn = {s.plot for s in scales if s.plot}
    for stale in PLOTS:
        if stale not in drawn:
            (plots_dir / stale).unlink(missing_ok=True)
    known = {n for n, (_, d) in docs.items() if summarised(n, d)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "REPORT.md").write_text(render(sections, scales, docs, unreadable, known, quality))
    figures = [asdict(f) for s in sections for f in s.figures]
    report = {
        "generated_by": "bench/report.py",
        "sources": {
            name: {
                "benchmark": doc.get("benchmark"),
                "measured_at": measured_at(doc),
                "machine": machine_of(doc),
            }
            for name, (_, doc) in sorted(docs.items())
        },
        "unreadable": unreadable,
        "summary": {s: sum(f["status"] == s for f in figures if f["goal"]) for s in (MET, NOT_MET, MISSING)},
        "figures": figures,
        "scale": [
            {"title": s.title, "header": s.header, "rows": s.rows, "notes": s.notes, "plot": s.plot} for s in scales
        ],
        "plots": sorted(f"plots/{p}" for p in drawn),
        "quality": [asdict(t) for t in quality],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    """Write the report from the results folder."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of result JSONs")
    parser.add_argument("--out", type=Path, default=None, help="where REPORT.md etc. go (default: --results)")
    args = parser.parse_args(argv)
    report = build(args.results, args.out or args.results)
    summary = report["summary"]
    print(
        f"wrote {(args.out or args.results) / 'REPORT.md'}: {summary[MET]} met, {summary[NOT_MET]} not met, "
        f"{summary[MISSING]} missing; plots: {', '.join(report['plots']) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
