"""Great Expectations checkpoints over the lake's tables, from the declarative suites in ``expectations/``.

A suite file (``expectations/suites/<name>.yml``) says what a table must hold: columns, non-null and
unique columns, value ranges and sets, a row count, freshness (the newest event no older than a bound
before the run's moment), and *learned* bounds: statistics of a reference window (mean, median, standard
deviation) that the validated batch must stay near. :func:`validate` turns a suite into GX
expectations, runs it as a checkpoint on a pandas batch in a file context under the state folder,
adds the result to the data-docs site and answers with a :class:`ValidationOutcome` that names every
failed expectation and its column.

GX runs on pandas here: its Spark datasource caps pyspark below the 4.2 the batch layer uses.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lambdarec.settings import find_project_root

DATASOURCE = "lambdarec"
SITE_NAME = "local_site"
SUITES = ("raw_events", "silver_events", "gold_item_stats", "training_examples")
"""The suites ``expectations/suites/`` defines, in pipeline order."""
LEARNED_STATS = ("mean", "median", "stdev")


class SuiteSpecError(ValueError):
    """A suite file is missing or malformed."""


def expectations_dir() -> Path:
    """The ``expectations/`` folder of the checkout (or ``LAMBDAREC_EXPECTATIONS_DIR``).

    Raises:
        FileNotFoundError: When neither is found.
    """
    override = os.environ.get("LAMBDAREC_EXPECTATIONS_DIR")
    if override:
        return Path(override).resolve()
    root = find_project_root()
    if root is None or not (root / "expectations" / "suites").is_dir():
        raise FileNotFoundError("no expectations/suites found: set LAMBDAREC_EXPECTATIONS_DIR to the folder")
    return root / "expectations"


def gx_root(state_dir: Path) -> Path:
    """The GX file context of a state folder (suites as run, validation results, the data-docs site)."""
    return state_dir / "quality"


def site_dir(state_dir: Path) -> Path:
    """The data-docs site GX builds under a state folder."""
    return gx_root(state_dir) / "gx" / "uncommitted" / "data_docs" / SITE_NAME


def load_spec(name: str, folder: Path | None = None) -> dict[str, Any]:
    """Read one suite file.

    Raises:
        SuiteSpecError: No such suite, or a key this module does not know.
    """
    import yaml

    path = (folder or expectations_dir()) / "suites" / f"{name}.yml"
    if not path.is_file():
        raise SuiteSpecError(f"no suite {name!r} at {path}")
    spec = yaml.safe_load(path.read_text()) or {}
    known = {"name", "description", "columns", "not_null", "unique", "between", "in_set", "min_rows", "freshness"}
    unknown = set(spec) - known - {"learned"}
    if unknown:
        raise SuiteSpecError(f"{path}: unknown keys {sorted(unknown)}")
    if spec.get("name") != name:
        raise SuiteSpecError(f"{path}: name must be {name!r}")
    return dict(spec)


@dataclass
class Failure:
    """One failed expectation.

    Attributes:
        expectation: GX expectation type, e.g. ``expect_column_values_to_not_be_null``.
        column: The column it checks (None for table-level ones).
        observed: What GX observed (a statistic, or the share / sample of unexpected values).
        bounds: The expected bounds or set, as configured.
    """

    expectation: str
    column: str | None
    observed: Any
    bounds: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """``expectation on column: observed ... expected ...``."""
        where = f" on {self.column}" if self.column else ""
        return f"{self.expectation}{where}: observed {self.observed}, expected {self.bounds}"


@dataclass
class ValidationOutcome:
    """What one checkpoint run found.

    Attributes:
        suite: Suite name.
        success: Every expectation held.
        evaluated: Expectations evaluated.
        failures: The failed ones.
        rows: Rows of the validated batch.
        run_name: The checkpoint run's name (e.g. the data interval).
        docs_page: Path of the run's page inside the data-docs site, when docs were built.
    """

    suite: str
    success: bool
    evaluated: int
    failures: list[Failure]
    rows: int
    run_name: str
    docs_page: str | None = None

    def summary(self) -> str:
        """One line: passed, or which expectation failed on which column."""
        if self.success:
            return f"{self.suite}: {self.evaluated} expectations passed on {self.rows:,} rows"
        shown = "; ".join(f.describe() for f in self.failures[:5])
        more = f" (+{len(self.failures) - 5} more)" if len(self.failures) > 5 else ""
        return f"{self.suite}: {len(self.failures)} of {self.evaluated} expectations failed: {shown}{more}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _plain(value: Any) -> Any:
    """Numpy scalars and containers as plain Python (for messages, JSON and MLflow)."""
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def learned_bounds(spec: dict[str, Any], reference: pd.DataFrame) -> dict[str, dict[str, tuple[float, float]]]:
    """Bounds of each learned statistic from the reference window: value ± tolerance · |value|.

    A statistic of an empty or all-null reference column is not learned (no bound rather than a wrong one).
    """
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for column, rule in (spec.get("learned") or {}).items():
        if column not in reference.columns:
            continue
        values = pd.to_numeric(reference[column], errors="coerce").dropna()
        if values.empty:
            continue
        tolerance = float(rule.get("tolerance", 0.5))
        stats = {"mean": values.mean(), "median": values.median(), "stdev": values.std(ddof=1)}
        for stat in rule.get("stats", ["mean"]):
            if stat not in LEARNED_STATS:
                raise SuiteSpecError(f"learned {column}: unknown statistic {stat!r} (one of {LEARNED_STATS})")
            value = float(stats[stat])
            if not math.isfinite(value):
                continue
            out.setdefault(column, {})[stat] = (value - tolerance * abs(value), value + tolerance * abs(value))
    return out


def build_expectations(
    spec: dict[str, Any], *, reference: pd.DataFrame | None = None, as_of_ms: int | None = None
) -> list[Any]:
    """The GX expectations of a suite spec, with learned bounds from ``reference`` and freshness at ``as_of_ms``.

    Args:
        spec: A suite (:func:`load_spec`).
        reference: The reference window for the learned bounds (none learned without it).
        as_of_ms: The run's moment (the data interval's end), for freshness (not checked without it).
    """
    import great_expectations.expectations as gxe

    out: list[Any] = []
    if spec.get("columns"):
        out.append(gxe.ExpectTableColumnsToMatchSet(column_set=list(spec["columns"]), exact_match=False))
    if spec.get("min_rows") is not None:
        out.append(gxe.ExpectTableRowCountToBeBetween(min_value=int(spec["min_rows"])))
    for column in spec.get("not_null") or []:
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=column))
    for column in spec.get("unique") or []:
        out.append(gxe.ExpectColumnValuesToBeUnique(column=column))
    for column, bounds in (spec.get("between") or {}).items():
        out.append(
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=bounds.get("min"), max_value=bounds.get("max"))
        )
    for column, values in (spec.get("in_set") or {}).items():
        out.append(gxe.ExpectColumnValuesToBeInSet(column=column, value_set=list(values)))
    freshness = spec.get("freshness")
    if freshness and as_of_ms is not None:
        max_age_ms = int(float(freshness["max_age_hours"]) * 3_600_000)
        out.append(gxe.ExpectColumnMaxToBeBetween(column=freshness["column"], min_value=as_of_ms - max_age_ms))
    if reference is not None:
        kinds: dict[str, Any] = {
            "mean": gxe.ExpectColumnMeanToBeBetween,
            "median": gxe.ExpectColumnMedianToBeBetween,
            "stdev": gxe.ExpectColumnStdevToBeBetween,
        }
        for column, stats in learned_bounds(spec, reference).items():
            for stat, (low, high) in stats.items():
                out.append(kinds[stat](column=column, min_value=low, max_value=high))
    return out


def _context(state_dir: Path) -> Any:
    import great_expectations as gx

    root = gx_root(state_dir)
    root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(root))
    # GX reports usage to a remote endpoint unless told not to; nothing here should call out.
    if context.config.analytics_enabled is not False:
        context.enable_analytics(False)
    return context


def _batch_definition(context: Any, asset_name: str) -> Any:
    try:
        source = context.data_sources.get(DATASOURCE)
    except (KeyError, ValueError, LookupError):
        source = context.data_sources.add_pandas(DATASOURCE)
    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        asset = source.add_dataframe_asset(asset_name)
    try:
        return asset.get_batch_definition("whole")
    except (KeyError, ValueError, LookupError):
        return asset.add_batch_definition_whole_dataframe("whole")


def validate(
    frame: pd.DataFrame,
    suite: str,
    *,
    state_dir: Path,
    reference: pd.DataFrame | None = None,
    as_of_ms: int | None = None,
    run_name: str = "adhoc",
    build_docs: bool = True,
    spec_folder: Path | None = None,
) -> ValidationOutcome:
    """Validate a batch against a suite as a GX checkpoint and add the result to the data-docs site.

    The suite is rebuilt on each run (its learned bounds and freshness depend on the run), saved
    in the file context, and the checkpoint's result is stored there; rerunning the same
    ``run_name`` adds another result, it does not change data.

    Args:
        frame: The batch (e.g. one date of silver events).
        suite: Suite name (:data:`SUITES`).
        state_dir: State folder holding the GX file context.
        reference: Reference window for the learned bounds.
        as_of_ms: The run's moment (epoch ms) for freshness.
        run_name: Name of the checkpoint run (shown in the docs; the DAGs pass the data interval).
        build_docs: Add the result to the data-docs site (and make the site work offline).
        spec_folder: The ``expectations/`` folder (default :func:`expectations_dir`).

    Raises:
        SuiteSpecError: The suite file is missing or malformed.
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier

    spec = load_spec(suite, spec_folder)
    context = _context(state_dir)
    expectation_suite = gx.ExpectationSuite(name=suite, meta={"description": str(spec.get("description", ""))})
    for expectation in build_expectations(spec, reference=reference, as_of_ms=as_of_ms):
        expectation_suite.add_expectation(expectation)
    expectation_suite = context.suites.add_or_update(expectation_suite)
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=suite, data=_batch_definition(context, suite), suite=expectation_suite)
    )
    actions: list[Any] = [UpdateDataDocsAction(name="update_data_docs", site_names=[SITE_NAME])] if build_docs else []
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=suite,
            validation_definitions=[definition],
            actions=actions,
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=RunIdentifier(run_name=run_name))
    identifier, validation = next(iter(result.run_results.items()))
    failures = []
    for item in validation.results:
        if item.success:
            continue
        config = item.expectation_config
        kwargs = {k: _plain(v) for k, v in config.kwargs.items() if k not in ("column", "batch_id")}
        details = item.result or {}
        observed = details.get("observed_value")
        if observed is None and "unexpected_count" in details:
            observed = {
                "unexpected_count": details.get("unexpected_count"),
                "unexpected_percent": round(float(details.get("unexpected_percent") or 0.0), 4),
                "sample": details.get("partial_unexpected_list", [])[:5],
            }
        if item.exception_info and item.exception_info.get("raised_exception"):
            observed = f"error: {item.exception_info.get('exception_message')}"
        failures.append(Failure(config.type, config.kwargs.get("column"), _plain(observed), kwargs))
    page = None
    if build_docs:
        from lambdarec.quality.docs_site import make_offline

        site = site_dir(state_dir)
        urls = context.get_docs_sites_urls(resource_identifier=identifier, site_name=SITE_NAME)
        url = (urls[0].get("site_url") if urls else None) or ""
        if url.startswith("file://") and str(site) in url:
            page = url.split(str(site), 1)[1].lstrip("/")
        make_offline(site)
    return ValidationOutcome(
        suite=suite,
        success=bool(validation.success),
        evaluated=len(validation.results),
        failures=failures,
        rows=len(frame),
        run_name=run_name,
        docs_page=page,
    )
