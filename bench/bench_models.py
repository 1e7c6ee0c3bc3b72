"""Benchmark model quality and training cost, trained through the feature store.

Each dataset takes the path `lambdarec evaluate --dataset` takes: the batch layer writes it into
a private lake (`run_batch(..., gold_days=None, materialize=False)`: bronze →
silver → gold of every date in one Spark pass), then `train_from_store` splits the silver events
in time, reads every example point in time through Feast (`get_historical_features` over the DuckDB
offline store), trains the two-tower and DeepFM and scores the quality table (most-popular,
item-kNN, session-kNN, two-tower alone, two-stage) on the test side of the split.

Nothing is tuned on the test split: the configs are the CLI's (`models.commands._config` with
--train-budget). Each dataset runs in a child process (peak memory per dataset). Per phase it
records wall and CPU seconds of the process tree (the Spark JVM included; children that exit are
counted from their last sample), the Feast point-in-time reads per feature service (through a
timing subclass of `OfflineFeatureSource`, patched in for the run: core code is unchanged), and
the machine's 1-minute load average while the phase ran: the machine is shared, so wall time alone
says little.

bench/results/models.json keeps the previous table (trained from the dataset adapters in process)
as `before` and this one as `after`; the Markdown table in bench/README.md is rewritten from it.
A run with `--sequence-encoder gru|attention` (issue 17: the query tower reading the session's
items in order), or one with `--tag` (an experiment such as another epoch cap, recorded as
`<dataset>+<tag>`), is written to the `sequence` block instead, so the new tower sits next to the
old one (`after`, the mean tower) rather than replacing it.

    nice -n 10 .venv/bin/python bench/bench_models.py --datasets rees46 uci synthetic --events 200000
    .venv/bin/python bench/bench_models.py --datasets uci --reuse-lake --sequence-encoder gru
    .venv/bin/python bench/bench_models.py --quick          # 20k synthetic events, small budgets
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "datasets"
DATASETS = {
    "rees46": f"rees46:{SHARED / 'rees46_2019oct_head' / '2019-Oct.head.clean.csv'}",
    "uci": f"uci:{SHARED / 'uci_online_retail' / 'retail_session.parquet.snappy'}",
    "synthetic": "synthetic",
}
WORK = ROOT / ".cache" / "bench" / "models"
EMBEDDINGS = ROOT / ".cache" / "bench" / "synthetic_embeddings.npz"
README = HERE / "README.md"
BEGIN, END = "<!-- models:begin -->", "<!-- models:end -->"
METRICS = ("recall@20", "recall@100", "ndcg@10", "mrr@20")


# -- measuring ---------------------------------------------------------------------------------
class Meter:
    """Samples this process tree in a thread: CPU seconds (exited children kept at their last
    sample), peak RSS and the 1-minute load average, so any interval can be read back."""

    def __init__(self, interval_s: float = 1.0, max_rss_gib: float | None = None) -> None:
        self.interval_s = interval_s
        self.max_rss = max_rss_gib * 2**30 if max_rss_gib else None
        self.me = psutil.Process()
        self._children_cpu: dict[int, float] = {}
        self.peak_rss = 0
        self.loads: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        rss = 0
        try:
            rss = self.me.memory_info().rss
        except psutil.Error:
            pass
        for child in self.me.children(recursive=True):
            try:
                times = child.cpu_times()
                rss += child.memory_info().rss
                with self._lock:
                    self._children_cpu[child.pid] = times.user + times.system
            except psutil.Error:
                continue
        self.peak_rss = max(self.peak_rss, rss)
        if self.max_rss and rss > self.max_rss:
            # A shared machine without swap: stop this tree before the kernel picks a victim.
            print(f"  resident memory {rss / 2**30:.1f} GiB over the limit: stopping", file=sys.stderr, flush=True)
            for child in self.me.children(recursive=True):
                with suppress(psutil.Error):
                    child.kill()
            os._exit(3)
        self.loads.append((time.monotonic(), os.getloadavg()[0]))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def start(self) -> Meter:
        """Start sampling."""
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()

    def cpu_s(self) -> float:
        """CPU seconds of this process (all threads) and its children so far."""
        self._sample()
        own = self.me.cpu_times()
        with self._lock:
            return own.user + own.system + sum(self._children_cpu.values())

    def load(self, start: float, end: float) -> dict[str, float]:
        """1-minute load average over [start, end]: mean and max of the samples."""
        values = [v for t, v in self.loads if start <= t <= end] or [os.getloadavg()[0]]
        return {"load_1m_mean": round(sum(values) / len(values), 2), "load_1m_max": round(max(values), 2)}


class Phases:
    """Wall and CPU seconds (and the load) of named phases."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.figures: dict[str, dict[str, float]] = {}

    @contextmanager
    def phase(self, name: str) -> Any:
        """Time the block as phase ``name``."""
        wall, cpu = time.monotonic(), self.meter.cpu_s()
        try:
            yield
        finally:
            end = time.monotonic()
            self.figures[name] = {
                "wall_s": round(end - wall, 2),
                "cpu_s": round(self.meter.cpu_s() - cpu, 2),
                **self.meter.load(wall, end),
            }


class Tracker:
    """Where a run stands (split, two-tower fit, ranker inputs, DeepFM fit, test scoring), fed by the
    patched `temporal_split` and the training progress callback; logs every Feast read."""

    def __init__(self) -> None:
        self.in_split = False
        self.fit: dict[str, dict[str, float]] = {}
        self.reads: list[dict[str, Any]] = []

    def stage(self) -> str:
        if self.in_split:
            return "split"
        if "deepfm" in self.fit:
            return "test"
        if "two-tower" in self.fit:
            return "ranker"
        return "other"

    def progress(self, stage: str, step: int, total: int, loss: float) -> None:
        now, cpu = time.monotonic(), time.process_time()
        mark = self.fit.setdefault(stage, {"first_wall": now, "first_cpu": cpu, "steps": 0})
        mark.update(last_wall=now, last_cpu=cpu, steps=mark["steps"] + 1)


def timed_source_class(tracker: Tracker, meter: Meter) -> type:
    """An `OfflineFeatureSource` that logs the wall/CPU seconds and rows of every read."""
    from lambdarec.models.sources import OfflineFeatureSource

    class TimedOfflineFeatureSource(OfflineFeatureSource):
        def _timed(self, service: str, rows: int, read: Any) -> Any:
            wall, cpu = time.monotonic(), meter.cpu_s()
            out = read()
            tracker.reads.append(
                {
                    "service": service,
                    "stage": tracker.stage(),
                    "rows": rows,
                    "wall_s": time.monotonic() - wall,
                    "cpu_s": meter.cpu_s() - cpu,
                    "at": wall,
                }
            )
            return out

        def query_rows(self, session_ids: Any, user_ids: Any, moments_ms: Any) -> Any:
            read = super().query_rows
            return self._timed("retrieval_v2", len(moments_ms), lambda: read(session_ids, user_ids, moments_ms))

        def candidate_rows(self, user_ids: Any, item_ids: Any, moments_ms: Any) -> Any:
            read = super().candidate_rows
            return self._timed("ranking_v2", len(moments_ms), lambda: read(user_ids, item_ids, moments_ms))

        def neighbour_rows(self, item_ids: Any, moments_ms: Any) -> Any:
            read = super().neighbour_rows
            return self._timed("neighbours_v1", len(moments_ms), lambda: read(item_ids, moments_ms))

    return TimedOfflineFeatureSource


def _sum_reads(reads: list[dict[str, Any]]) -> dict[str, Any]:
    rows = sum(r["rows"] for r in reads)
    wall = sum(r["wall_s"] for r in reads)
    return {
        "calls": len(reads),
        "rows": rows,
        "wall_s": round(wall, 2),
        "cpu_s": round(sum(r["cpu_s"] for r in reads), 2),
        "rows_per_s": round(rows / wall, 1) if wall else None,
    }


# -- one dataset (child process) ----------------------------------------------------------------
def run_one(spec: str, state_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Batch layer into a private lake, then train and evaluate through the store; return the figures."""
    import torch

    import lambdarec.models.data as data_module
    import lambdarec.models.sources as sources_module
    from lambdarec.batch.pipeline import run_batch
    from lambdarec.models.commands import _config, train_from_store
    from lambdarec.settings import load_settings

    torch.set_num_threads(min(torch.get_num_threads(), 2))  # as the CLI does
    meter = Meter(max_rss_gib=args.max_rss_gib).start()
    phases = Phases(meter)
    tracker = Tracker()
    started, cpu0 = time.monotonic(), meter.cpu_s()
    loads_at_start = os.getloadavg()
    settings = load_settings().model_copy(update={"state_dir": state_dir})
    if state_dir.exists() and not args.reuse_lake:
        shutil.rmtree(state_dir)
    batch: dict[str, Any] = {}
    if not args.reuse_lake or not (state_dir / "lake").exists():
        with phases.phase("batch layer"):
            summary = run_batch(settings, dataset=spec, gold_days=None, materialize=False)
        batch = summary.to_dict()
    print(f"  batch layer: {phases.figures.get('batch layer')} stages {batch.get('stages_s')}", flush=True)

    split_holder: dict[str, Any] = {}
    real_split = data_module.temporal_split

    def recorded_split(*a: Any, **kw: Any) -> Any:
        tracker.in_split = True
        try:
            with phases.phase("split (examples through Feast)"):
                split = real_split(*a, **kw)
        finally:
            tracker.in_split = False
        split_holder["split"] = split
        print(f"  split: {phases.figures['split (examples through Feast)']} {split.stats}", flush=True)
        return split

    real_source = sources_module.OfflineFeatureSource
    data_module.temporal_split = recorded_split  # type: ignore[assignment]
    sources_module.OfflineFeatureSource = timed_source_class(tracker, meter)  # type: ignore[misc]
    try:
        config = _config(args.train_budget)
        changes: dict[str, Any] = {"sequence_encoder": args.sequence_encoder} if args.sequence_encoder else {}
        changes.update({"epochs": args.two_tower_epochs} if args.two_tower_epochs else {})
        changes.update({"patience": args.two_tower_patience} if args.two_tower_patience else {})
        if changes:
            config = dataclasses.replace(config, two_tower=dataclasses.replace(config.two_tower, **changes))
        with phases.phase("train_from_store"):
            result, recommender, _ = train_from_store(
                settings,
                label=spec,
                config=config,
                max_test=args.max_test,
                progress=tracker.progress,
            )
    except Exception as err:  # the store path refused the dataset: keep what was measured
        meter.stop()
        return {
            "dataset": spec,
            "error": f"{type(err).__name__}: {err}",
            "timings": {
                "batch_layer": {**phases.figures.get("batch layer", {}), "stages_s": batch.get("stages_s", {})},
                "phases": phases.figures,
                "feast_reads": {
                    "total": _sum_reads(tracker.reads),
                    "by_service": {
                        s: _sum_reads([r for r in tracker.reads if r["service"] == s])
                        for s in sorted({r["service"] for r in tracker.reads})
                    },
                },
                "total": {"wall_s": round(time.monotonic() - started, 2), "cpu_s": round(meter.cpu_s() - cpu0, 2)},
                "load_avg_at_start": [round(v, 2) for v in loads_at_start],
                "peak_rss_mib": round(meter.peak_rss / 2**20),
            },
            "batch": {k: batch.get(k) for k in ("bronze", "stages_s")} if batch else {"reused_lake": True},
        }
    finally:
        data_module.temporal_split = real_split
        sources_module.OfflineFeatureSource = real_source  # type: ignore[misc]
    total_wall, total_cpu = time.monotonic() - started, meter.cpu_s() - cpu0
    meter.stop()

    if args.embeddings_out and "split" in split_holder:
        import numpy as np

        out = Path(args.embeddings_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        queries = recommender.retrieval.query_embeddings(split_holder["split"].test)
        # index_vectors: the items the batch layer knows (those with events); bench_retrieval.py
        # embeds the rest of a catalogue from content with the bundle saved beside the npz.
        np.savez(
            out,
            items=recommender.index_vectors,
            item_ids=np.asarray(recommender.index_ids, dtype=str),
            vocab_items=recommender.vocab.n_items - 1,
            queries=queries,
        )
        from lambdarec.models.bundle import save_bundle

        save_bundle(recommender, out.with_suffix(".bundle"))

    figures = result.to_dict()
    training = figures["training"]
    fits = {}
    for stage, key in (("two-tower", "two_tower_history"), ("deepfm", "deepfm_history")):
        mark = tracker.fit.get(stage, {})
        window = mark.get("last_wall", 0.0) - mark.get("first_wall", 0.0)
        fits[stage] = {
            "loop_wall_s": round(training[key]["seconds"], 2),
            "epochs": len(training[key]["train_loss"]),
            "best_epoch": training[key]["best_epoch"],
            "examples": training[key]["examples"],
            "steps": int(mark.get("steps", 0)),
            # process CPU (all threads) between the first and the last step's callback
            "cpu_s_between_steps": round(mark.get("last_cpu", 0.0) - mark.get("first_cpu", 0.0), 2),
            "wall_s_between_steps": round(window, 2),
            **meter.load(mark.get("first_wall", 0.0), mark.get("last_wall", 0.0)),
        }
    reads = tracker.reads
    by_service = {s: _sum_reads([r for r in reads if r["service"] == s]) for s in sorted({r["service"] for r in reads})}
    by_stage = {s: _sum_reads([r for r in reads if r["stage"] == s]) for s in ("split", "ranker", "test", "other")}
    ranker_reads = by_stage["ranker"]["wall_s"]
    test_reads = by_stage["test"]["wall_s"]
    train_s = phases.figures["train_from_store"]["wall_s"]
    split_s = phases.figures["split (examples through Feast)"]["wall_s"]
    timings = {
        "batch_layer": {**phases.figures.get("batch layer", {}), "stages_s": batch.get("stages_s", {})},
        "train_from_store": phases.figures["train_from_store"],
        "split": phases.figures["split (examples through Feast)"],
        "feast_reads": {"total": _sum_reads(reads), "by_service": by_service, "by_stage": by_stage},
        "two_tower": {
            **fits["two-tower"],
            "phase_s_with_index": round(training["two_tower_train_s"], 2),
            # The refit on every training example once the ranker is trained (PipelineConfig.refit_retrieval):
            # loop_wall_s above is the first (validated) fit alone.
            "refit_loop_wall_s": round(training["two_tower_history"].get("refit_seconds", 0.0), 2),
            "refit_epochs": training["two_tower_history"].get("refit_epochs", 0),
            "refit_examples": training["two_tower_history"].get("refit_examples", 0),
            "refit_phase_s_with_index": round(training.get("two_tower_refit_s", 0.0), 2),
        },
        "deepfm": {
            **fits["deepfm"],
            # the ranker phase: candidates of the ranker window (Feast reads) + features + fit
            "phase_s_with_inputs": round(training["deepfm_train_s"], 2),
            "ranker_input_reads_s": ranker_reads,
        },
        "baselines_s": round(sum(r["seconds"] for r in figures["rows"][:3]), 2),
        "test_scoring_s_with_reads": round(
            train_s
            - split_s
            - training["two_tower_train_s"]
            - training["deepfm_train_s"]
            - training.get("two_tower_refit_s", 0.0),
            2,
        ),
        "test_reads_s": test_reads,
        "total": {
            "wall_s": round(total_wall, 2),
            "cpu_s": round(total_cpu, 2),
            **meter.load(started, time.monotonic()),
        },
        "load_avg_at_start": [round(v, 2) for v in loads_at_start],
        "peak_rss_mib": round(meter.peak_rss / 2**20),
    }
    figures.update(
        timings=timings,
        batch={k: batch.get(k) for k in ("bronze", "stages_s")} if batch else {"reused_lake": True},
        config={
            "train_budget_s": args.train_budget,
            "max_test": args.max_test,
            "torch_threads": 2,
            # The two-tower sets its own intra-op threads while it trains (TwoTowerConfig.train_threads).
            "two_tower_train_threads": config.two_tower.train_threads,
            "two_tower_batch_size": config.two_tower.batch_size,
            "two_tower_temperature": config.two_tower.temperature,
            "sequence_encoder_asked": config.two_tower.sequence_encoder,
            "two_tower_epochs": config.two_tower.epochs,
            "two_tower_patience": config.two_tower.patience,
        },
        two_tower_encoder=recommender.retrieval.history.sequence_encoder,
        two_tower_fallback=recommender.retrieval.history.fallback,
    )
    for key in ("two_tower_history", "deepfm_history"):
        training[key] = {k: v for k, v in training[key].items() if k != "train_loss"}
    return figures


# -- output -------------------------------------------------------------------------------------
def _before(old: dict[str, Any]) -> dict[str, Any]:
    """The previous table (trained from the dataset adapters in process), summarised."""
    out = {}
    for name, fig in old.get("datasets", {}).items():
        if "rows" not in fig:
            continue
        out[name] = {
            "dataset": fig.get("dataset"),
            "fingerprint": fig.get("fingerprint"),
            "rows": fig["rows"],
            "ranker": fig.get("ranker"),
            "split": fig.get("split"),
            "beats_baselines": fig.get("beats_baselines"),
            "two_tower_train_s": fig.get("two_tower_train_s"),
            "deepfm_train_s": fig.get("deepfm_train_s"),
            "train_both_s": fig.get("train_both_s"),
            "total_s": fig.get("total_s"),
            "peak_rss_mib": fig.get("peak_rss_mib"),
        }
    return {
        "measured_at": old.get("measured_at"),
        "how": "dataset adapters → in-process features (load_events → temporal_split), max_test 20000, "
        "two-tower budget 300 s, DeepFM budget 150 s",
        "datasets": out,
    }


def _f(v: Any, digits: int = 4) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def render_markdown(doc: dict[str, Any]) -> str:
    """The README section: before/after quality per dataset, then the timings of the after run."""
    before, after = doc.get("before", {}).get("datasets", {}), doc.get("after", {}).get("datasets", {})
    lines = [
        "## Models: quality and training time, trained through the feature store",
        "",
        f"`bench_models.py` (after: measured {doc.get('after', {}).get('measured_at')}; "
        f"before: {doc.get('before', {}).get('measured_at')}, trained from the dataset adapters in process). "
        "Same temporal split rule (latest 20% of events are the future), default configs, nothing tuned on "
        "the test split. *Before* evaluated up to 20,000 test targets, *after* a seeded sample of "
        "`max_test` (see the JSON), so differences of a few thousandths are within sampling noise.",
        "",
    ]
    known = ("uci", "rees46", "synthetic")
    for name in [n for n in known if n in before or n in after] + sorted(
        n for n in set(before) | set(after) if n not in known
    ):
        a, b = after.get(name, {}), before.get(name.split("+", 1)[0], {})
        label = a.get("dataset") or b.get("dataset") or name
        split = a.get("split", {})
        lines += [f"### {name}: `{label}`", ""]
        if a.get("experiment"):
            lines += [f"*Experiment*: {a['experiment']}.", ""]
        if "error" in a:
            lines += [f"after: **the store path refused the dataset**: `{a['error']}`", ""]
        if a.get("not_run"):
            lines += [f"after: **not run**: {a['not_run']}", ""]
        if split:
            lines += [
                f"after: {split.get('events', 0):,} events, {split.get('train_examples', 0):,} training examples, "
                f"{split.get('test_examples_evaluated', 0):,} test targets evaluated, "
                f"{split.get('test_unseen_target_share', 0):.1%} of them unseen in training.",
            ]
        if b.get("dataset") and a.get("dataset") and b["dataset"] != a["dataset"]:
            lines += [f"before was measured on `{b['dataset']}`: a different set, not comparable row by row."]
        lines += [
            f"before: {b.get('split', {}).get('train_examples', 0):,} training examples, "
            f"{b.get('split', {}).get('test_examples_evaluated', 0):,} test targets evaluated.",
            "",
            "| method | R@20 before | R@20 after | R@100 before | R@100 after | NDCG@10 before | NDCG@10 after "
            "| MRR@20 before | MRR@20 after |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        rows_b = {r["method"]: r for r in b.get("rows", [])}
        rows_a = {r["method"]: r for r in a.get("rows", [])}
        for method in list(dict.fromkeys([*rows_b, *rows_a])):
            cells = []
            for m in METRICS:
                cells += [_f(rows_b.get(method, {}).get(m)), _f(rows_a.get(method, {}).get(m))]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        seq = doc.get("sequence", {}).get("datasets", {}).get(name, {})
        if seq.get("rows"):
            seq = {**seq, "measured_at": seq.get("measured_at") or doc["sequence"].get("measured_at")}
            lines += _sequence_table(seq, rows_a)
        ranker_b, ranker_a = b.get("ranker") or {}, a.get("ranker") or {}
        lines += [
            "",
            f"ranker AUC {_f(ranker_b.get('ranker_auc'))} → {_f(ranker_a.get('ranker_auc'))}; "
            f"candidate recall {_f(ranker_b.get('candidate_recall'), 3)} → {_f(ranker_a.get('candidate_recall'), 3)}; "
            "two-stage beats every baseline on (after): "
            + (
                (", ".join(m for m, ok in a["beats_baselines"].items() if ok) or "none")
                if a.get("beats_baselines")
                else "not measured"
            ),
            "",
        ]
    sequence = doc.get("sequence", {})
    for name, seq in sequence.get("datasets", {}).items():
        if name in after or not seq.get("rows"):
            continue
        base = {r["method"]: r for r in after.get(name.split("+", 1)[0], {}).get("rows", [])}
        lines += [f"### {name}: `{seq.get('dataset', name)}`", ""]
        if seq.get("experiment"):
            lines += [f"*Experiment*: {seq['experiment']}."]
        when = seq.get("measured_at") or sequence.get("measured_at")
        lines += [*_sequence_table({**seq, "measured_at": when}, base), ""]
    if sequence.get("notes"):
        lines += ["Sequence-aware query tower, what the runs say:", "", *[f"- {n}" for n in sequence["notes"]], ""]
    lines += [
        "### Time per phase (after), wall / CPU seconds, 1-minute load average (2 cores, shared)",
        "",
        "| dataset | batch layer (bronze / silver / gold) | Feast reads: split / ranker / test (rows) "
        "| two-tower fit | DeepFM fit | total | load mean / max |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, a in after.items():
        t = a.get("timings")
        if not t:
            continue
        bl, st = t["batch_layer"], t["batch_layer"].get("stages_s", {})
        feast = t["feast_reads"]
        if "by_stage" in feast:
            reads = feast["by_stage"]
            read_cells = " / ".join(
                f"{reads[s]['wall_s']:.0f} s ({reads[s]['rows']:,})" for s in ("split", "ranker", "test")
            )
        else:
            read_cells = f"{feast['total']['wall_s']:.0f} s ({feast['total']['rows']:,}) before the refusal"
        fits = [
            f"{t[m]['loop_wall_s']:.0f} / {t[m]['cpu_s_between_steps']:.0f} ({t[m]['epochs']} epochs)"
            if m in t
            else "–"
            for m in ("two_tower", "deepfm")
        ]
        total = t["total"]
        load = f"{total['load_1m_mean']:.1f} / {total['load_1m_max']:.1f}" if "load_1m_mean" in total else "–"
        # A run on a reused lake (--reuse-lake) did not run the batch layer: say so, not "0 s".
        batch_cell = (
            f"{bl.get('wall_s', 0):.0f} / {bl.get('cpu_s', 0):.0f} "
            f"({st.get('bronze', 0):.0f} / {st.get('silver', 0):.0f} / {st.get('gold', 0):.0f})"
            if bl.get("wall_s") or st
            else "lake reused, not rerun"
        )
        lines.append(
            f"| {name} | {batch_cell} "
            f"| {read_cells}; {feast['total']['rows_per_s'] or 0:,.0f} rows/s "
            f"| {fits[0]} | {fits[1]} | {total['wall_s']:.0f} / {total['cpu_s']:.0f} | {load} |"
        )
    conditions, scale = doc.get("after", {}).get("conditions"), doc.get("after", {}).get("extrapolation_1M")
    if conditions:
        lines += ["", f"Conditions: {conditions}."]
    if scale and not scale.get("run"):
        lines += ["", f"1M synthetic events were not run: {scale['why']}. Estimate: {scale['estimate']}."]
    notes = doc.get("after", {}).get("notes")
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def _sequence_table(seq: dict[str, Any], rows_after: dict[str, dict[str, Any]]) -> list[str]:
    """The sequence-aware query tower's run of a dataset beside the mean tower's (``after``)."""
    encoder = seq.get("two_tower_encoder", "?")
    asked = (seq.get("config") or {}).get("sequence_encoder_asked", encoder)
    fit = (seq.get("timings") or {}).get("two_tower") or {}
    load = ((seq.get("timings") or {}).get("total") or {}).get("load_1m_mean")
    lines = [
        "",
        f"sequence-aware query tower (issue 17): asked `{asked}`, trained `{encoder}`"
        + (f" (fell back: {seq['two_tower_fallback']})" if seq.get("two_tower_fallback") else "")
        + f"; measured {seq.get('measured_at', 'see the JSON')}; two-tower fit {_f(fit.get('loop_wall_s'), 0)} s "
        f"({fit.get('epochs', '–')} epochs), load {_f(load, 1)}.",
        "",
        "| method | R@20 mean tower | R@20 sequence | R@100 mean tower | R@100 sequence "
        "| NDCG@10 mean tower | NDCG@10 sequence | MRR@20 mean tower | MRR@20 sequence |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows_s = {r["method"]: r for r in seq["rows"]}
    for method in list(dict.fromkeys([*rows_after, *rows_s])):
        cells = []
        for m in METRICS:
            cells += [_f(rows_after.get(method, {}).get(m)), _f(rows_s.get(method, {}).get(m))]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def write_readme(doc: dict[str, Any]) -> None:
    """Replace the models section of bench/README.md (between the markers; appended the first time)."""
    text = README.read_text()
    section = f"{BEGIN}\n{render_markdown(doc)}{END}"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    README.write_text(text)


def main(argv: list[str] | None = None) -> int:
    """Run the selected datasets (each in a child process), merge into the JSON, rewrite the README section."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", "--only", nargs="*", default=list(DATASETS), help="names or <adapter>:<path>")
    parser.add_argument("--events", type=int, default=1_000_000, help="synthetic events")
    parser.add_argument("--items", type=int, default=50_000, help="synthetic catalogue size")
    parser.add_argument("--train-budget", type=float, default=450.0, help="seconds, both models (as the CLI)")
    parser.add_argument("--max-test", type=int, default=5_000, help="test targets evaluated (as the CLI)")
    parser.add_argument("--quick", action="store_true", help="20k synthetic events, 60 s budget, 1000 test")
    parser.add_argument("--max-rss-gib", type=float, default=10.0, help="stop a dataset's run above this")
    parser.add_argument("--reuse-lake", action="store_true", help="keep a lake built by an earlier run")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "models.json")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the README section")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-state", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--embeddings-out", help="save trained item/query embeddings (npz) for bench_retrieval.py")
    parser.add_argument(
        "--sequence-encoder",
        choices=["mean", "gru", "attention"],
        help="the query tower's session encoder; gru/attention results go to the `sequence` block",
    )
    parser.add_argument("--two-tower-epochs", type=int, help="override the two-tower's epoch cap (an experiment)")
    parser.add_argument("--two-tower-patience", type=int, help="override the two-tower's early-stop patience")
    parser.add_argument("--tag", help="record the run as <dataset>+<tag> (an experiment beside the plain run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.train_budget, args.max_test = 20_000, 60.0, 1_000
    if args.child:
        figures = run_one(args.child, Path(args.child_state), args)
        Path(args.child_out).write_text(json.dumps(figures, default=_json_default))
        return 0

    doc: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    if "before" not in doc:
        doc = {"before": _before(doc)}
    # The plain CLI-config run is `after`; the sequence towers and tagged experiments sit beside it.
    block = "sequence" if args.sequence_encoder in ("gru", "attention") or args.tag else "after"
    after = doc.setdefault(block, {"datasets": {}})
    WORK.mkdir(parents=True, exist_ok=True)
    for name in args.datasets:
        spec, key = DATASETS.get(name, name), name if name in DATASETS else name.split(":", 1)[0]
        if spec == "synthetic":
            from lambdarec.data import generate_events

            path = WORK / f"synthetic-{args.events}.parquet"
            if not path.exists():
                generate_events(args.events, args.items, max(500, args.events // 20), 42, path, progress=False)
            spec = f"synthetic:{path}"
        state = WORK / (f"{key}-{args.events}" if key == "synthetic" else key) / "state"
        out = WORK / f"{key}.json"
        out.unlink(missing_ok=True)
        command = [
            sys.executable,
            __file__,
            "--child",
            spec,
            "--child-state",
            str(state),
            "--child-out",
            str(out),
            "--train-budget",
            str(args.train_budget),
            "--max-test",
            str(args.max_test),
            "--max-rss-gib",
            str(args.max_rss_gib),
        ]
        command += ["--reuse-lake"] if args.reuse_lake else []
        command += ["--sequence-encoder", args.sequence_encoder] if args.sequence_encoder else []
        command += ["--two-tower-epochs", str(args.two_tower_epochs)] if args.two_tower_epochs else []
        command += ["--two-tower-patience", str(args.two_tower_patience)] if args.two_tower_patience else []
        if key == "synthetic" and (block == "after" or args.embeddings_out):
            command += ["--embeddings-out", str(args.embeddings_out or EMBEDDINGS)]
        print(f"=== {key}: {spec} (load {os.getloadavg()})", flush=True)
        code = subprocess.call(command)
        if code or not out.exists():
            after["datasets"][key] = {"dataset": spec, "error": f"exit code {code}"}
            continue
        figures = json.loads(out.read_text())
        if "error" in figures:
            after["datasets"][key] = figures
            print(f"  failed: {figures['error']}", flush=True)
            _write(args, doc)
            continue
        if key == "synthetic":
            figures["dataset"] = f"synthetic ({args.events:,} events, {args.items:,} items, seed 42)"
        if args.tag:
            figures["experiment"] = (
                f"{args.tag}: two-tower epochs {figures['config']['two_tower_epochs']}, "
                f"patience {figures['config']['two_tower_patience']}"
            )
            key = f"{key}+{args.tag}"
        # Per dataset: the block's measured_at is the latest run's, and the other datasets may be older.
        figures["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        after["datasets"][key] = figures
        for row in figures["rows"]:
            print(
                f"  {row['method']:<34} R@20 {row['recall@20']:.4f}  R@100 {row['recall@100']:.4f}  "
                f"NDCG@10 {row['ndcg@10']:.4f}  MRR@20 {row['mrr@20']:.4f}"
            )
        t = figures["timings"]
        print(
            f"  ranker AUC {figures['ranker']['ranker_auc']:.4f}; total {t['total']}; "
            f"Feast {t['feast_reads']['by_stage']}; beats: {figures['beats_baselines']}",
            flush=True,
        )
        after.update(
            measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
            how="run_batch (private lake, gold of every date) → train_from_store (Feast DuckDB offline store, "
            "point in time) with the CLI's configs"
            + (f", query tower sequence_encoder={args.sequence_encoder}" if block == "sequence" else ""),
        )
        _write(args, doc, block)
    _write(args, doc, block)
    return 0


def _write(args: argparse.Namespace, doc: dict[str, Any], block: str = "after") -> None:
    doc[block]["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    doc.update(
        benchmark="models",
        machine={
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": psutil.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30),
            "torch_threads": 2,
        },
        goals={
            "quality": "two-stage beats every baseline on recall@20 and ndcg@10 (UCI, REES46, synthetic)",
            "retrieval": "two-tower alone beats item-kNN on recall@100 (UCI, REES46, synthetic)",
            "train_both_s_at_1M_events": 600,
        },
    )
    ordered = {k: doc[k] for k in ("benchmark", "machine", "goals", "before", "after", "sequence") if k in doc}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(ordered, indent=2, default=_json_default) + "\n")
    if not args.no_readme:
        write_readme(ordered)
    print(f"written {args.out}", flush=True)


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
