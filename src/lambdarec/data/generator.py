"""Synthetic clickstream: a seeded shop with skewed popularity and view->cart->purchase funnels.

The shop has a two-level category tree (``electronics.c007``), brands that belong to a
top-level category, log-normal prices per category and Zipf-like item popularity. Users
(and anonymous visitors) come in sessions that start over a time span with a daily cycle;
a session mostly browses one category the user likes, some views lead to carts, some carts
to one checkout at the end of the session.

Everything is vectorized numpy over blocks of sessions, and each block has its own seeded
random stream, so the output depends on the arguments and the seed only, not on the chunk
size, and memory is bounded by one chunk plus per-session and per-item arrays.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from lambdarec.data._clean import EVENT_SCHEMA
from lambdarec.names import EventType
from lambdarec.schemas import to_epoch_ms

TOP_CATEGORIES = (
    "electronics",
    "appliances",
    "computers",
    "apparel",
    "furniture",
    "kids",
    "construction",
    "auto",
    "sport",
    "accessories",
    "beauty",
    "books",
)
_DAY_MS = 86_400_000
IDLE_GAP_MS = (45 * 60_000, 90 * 60_000)
"""Range of the long idle gap of the sessions ``idle_gap_share`` picks (ms)."""
_MINUTES_PER_DAY = 1440
# Event type codes in the order of EVENT_TYPE_NAMES.
_VIEW, _CART, _PURCHASE = 0, 1, 2
EVENT_TYPE_NAMES = (EventType.VIEW.value, EventType.CART.value, EventType.PURCHASE.value)


@dataclass(frozen=True)
class GeneratorConfig:
    """Shape of the synthetic shop and its traffic (defaults resemble public logs).

    Attributes:
        start: First possible session start (UTC).
        days: Length of the time span sessions start in.
        zipf_exponent: Item popularity ~ rank ** -exponent (1.0-1.2 is typical of shops).
        mean_views_per_session: Mean of the geometric number of views per session.
        max_views_per_session: Cap on views per session (bots aside, sessions are short).
        cart_rate: Probability that a view leads to a cart (~6% in REES46-like logs).
        purchase_rate: Probability that a carted item is bought (~30%).
        anonymous_share: Share of sessions without a user id.
        focus_share: Share of a session's views in its intent category (rest: anything popular).
        favourite_categories: Leaf categories each user prefers.
        daily_seasonality: Amplitude of the daily cycle of session starts (0: flat).
        peak_hour_utc: Hour of day (UTC) with the most session starts.
        median_gap_s: Median seconds between two views of a session.
        brandless_share: Share of items without a brand.
        idle_gap_share: Share of sessions (of those with two views or more) that sit idle for
            45-90 minutes before one of their later views, as a shopper who leaves a tab open and
            comes back. They keep their session id: idle time never splits a session (see
            :data:`lambdarec.features.session.SESSION_KEY`). Other gaps stay under 30 minutes.
        block_sessions: Sessions per random block (the unit of reproducibility; keep fixed).
    """

    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    days: int = 30
    zipf_exponent: float = 1.05
    mean_views_per_session: float = 7.0
    max_views_per_session: int = 200
    cart_rate: float = 0.06
    purchase_rate: float = 0.30
    anonymous_share: float = 0.25
    focus_share: float = 0.7
    favourite_categories: int = 3
    daily_seasonality: float = 0.6
    peak_hour_utc: float = 20.0
    median_gap_s: float = 30.0
    brandless_share: float = 0.15
    idle_gap_share: float = 0.0
    block_sessions: int = 4096

    def __post_init__(self) -> None:
        for name in (
            "cart_rate",
            "purchase_rate",
            "anonymous_share",
            "focus_share",
            "brandless_share",
            "idle_gap_share",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.days < 1 or self.mean_views_per_session < 1 or self.block_sessions < 1:
            raise ValueError("days, mean_views_per_session and block_sessions must be at least 1")
        if not 0.0 <= self.daily_seasonality < 1.0:
            raise ValueError("daily_seasonality must be within [0, 1)")


@dataclass
class GeneratorReport:
    """What a generator run produced.

    Attributes:
        n_events: Rows written (exactly the number asked for).
        n_views: View events.
        n_carts: Cart events.
        n_purchases: Purchase events.
        n_sessions: Sessions with at least one event.
        n_anonymous_sessions: Of those, sessions without a user id.
        n_items: Catalogue size.
        n_items_seen: Items with at least one event.
        top1pct_item_share: Share of events on the most popular 1% of items.
        first_event_ms: Earliest event time.
        last_event_ms: Latest event time.
        seed: The seed.
        out_path: The Parquet file written (None for in-memory runs).
        row_groups: Parquet row groups (chunks) written.
        seconds: Wall time of the run.
    """

    n_events: int = 0
    n_views: int = 0
    n_carts: int = 0
    n_purchases: int = 0
    n_sessions: int = 0
    n_anonymous_sessions: int = 0
    n_items: int = 0
    n_items_seen: int = 0
    top1pct_item_share: float = 0.0
    first_event_ms: int | None = None
    last_event_ms: int | None = None
    seed: int = 0
    out_path: str | None = None
    row_groups: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class _Catalogue:
    """Items with category, brand, price and popularity, plus the arrays to sample them."""

    leaf_names: pa.Array
    brand_names: pa.Array
    item_leaf: np.ndarray
    item_brand: np.ndarray
    item_price: np.ndarray
    by_leaf: np.ndarray  # item indices sorted by leaf
    cum_weight: np.ndarray  # cumulative popularity along by_leaf
    leaf_first: np.ndarray  # first position of each leaf in by_leaf
    leaf_last: np.ndarray  # last position (inclusive); < leaf_first for an empty leaf
    leaf_cum_before: np.ndarray
    leaf_weight: np.ndarray
    leaf_cum: np.ndarray  # cumulative leaf popularity, to draw a category by popularity

    def sample_global(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Items drawn by popularity over the whole catalogue."""
        pos = np.searchsorted(self.cum_weight, rng.random(n) * self.cum_weight[-1], side="right")
        return self.by_leaf[np.minimum(pos, len(self.by_leaf) - 1)]

    def sample_in_leaf(self, rng: np.random.Generator, leaf: np.ndarray) -> np.ndarray:
        """One item per entry of ``leaf``, by popularity within that leaf (leaves non-empty)."""
        target = self.leaf_cum_before[leaf] + rng.random(len(leaf)) * self.leaf_weight[leaf]
        pos = np.searchsorted(self.cum_weight, target, side="right")
        # Float rounding may land one step outside the leaf's range.
        pos = np.clip(pos, self.leaf_first[leaf], self.leaf_last[leaf])
        return self.by_leaf[pos]

    def sample_leaves(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Leaf categories drawn by their total item popularity (never an empty leaf)."""
        pos = np.searchsorted(self.leaf_cum, rng.random(n) * self.leaf_cum[-1], side="right")
        return np.minimum(pos, len(self.leaf_cum) - 1)


def _build_catalogue(n_items: int, rng: np.random.Generator, config: GeneratorConfig) -> _Catalogue:
    n_leaves = max(1, min(n_items, max(len(TOP_CATEGORIES), min(2000, math.isqrt(n_items)))))
    n_tops = min(len(TOP_CATEGORIES), n_leaves)
    leaf_top = np.concatenate([np.arange(n_tops), rng.integers(0, n_tops, n_leaves - n_tops)])
    leaf_top.sort()
    within = np.arange(n_leaves) - np.searchsorted(leaf_top, leaf_top, side="left")
    leaf_names = pa.array([f"{TOP_CATEGORIES[t]}.c{k:03d}" for t, k in zip(leaf_top, within, strict=True)], pa.string())

    # Some categories are much bigger than others.
    leaf_size = rng.lognormal(0.0, 1.0, n_leaves)
    item_leaf = np.searchsorted(np.cumsum(leaf_size), rng.random(n_items) * leaf_size.sum(), side="right")
    item_leaf = np.minimum(item_leaf, n_leaves - 1).astype(np.int32)

    # Popularity rank is shuffled so that item ids say nothing about popularity.
    rank = rng.permutation(n_items).astype(np.float64) + 1.0
    weight = rank ** (-config.zipf_exponent)

    leaf_mu = rng.uniform(math.log(3.0), math.log(300.0), n_leaves)
    price = np.exp(leaf_mu[item_leaf] + rng.normal(0.0, 0.35, n_items))
    item_price = np.maximum(np.round(price, 2), 0.01)

    n_brands = int(np.clip(n_items // 50, 1, 50_000))
    brand_top = np.sort(rng.integers(0, n_tops, n_brands))
    brand_first = np.searchsorted(brand_top, np.arange(n_tops), side="left")
    brand_count = np.searchsorted(brand_top, np.arange(n_tops), side="right") - brand_first
    top_of_item = leaf_top[item_leaf]
    # Squaring the uniform draw makes a few brands per category dominant.
    offset = np.floor(rng.random(n_items) ** 2 * brand_count[top_of_item]).astype(np.int64)
    item_brand = np.where(brand_count[top_of_item] > 0, brand_first[top_of_item] + offset, -1)
    item_brand[rng.random(n_items) < config.brandless_share] = -1
    brand_names = pa.array([f"brand{k:05d}" for k in range(n_brands)], pa.string())

    by_leaf = np.argsort(item_leaf, kind="stable")
    cum_weight = np.cumsum(weight[by_leaf])
    sorted_leaf = item_leaf[by_leaf]
    leaf_first = np.searchsorted(sorted_leaf, np.arange(n_leaves), side="left")
    leaf_last = np.searchsorted(sorted_leaf, np.arange(n_leaves), side="right") - 1
    leaf_weight = np.bincount(item_leaf, weights=weight, minlength=n_leaves)
    leaf_cum_before = np.concatenate([[0.0], cum_weight])[leaf_first]
    return _Catalogue(
        leaf_names=leaf_names,
        brand_names=brand_names,
        item_leaf=item_leaf,
        item_brand=item_brand.astype(np.int64),
        item_price=item_price,
        by_leaf=by_leaf,
        cum_weight=cum_weight,
        leaf_first=leaf_first,
        leaf_last=leaf_last,
        leaf_cum_before=leaf_cum_before,
        leaf_weight=leaf_weight,
        leaf_cum=np.cumsum(leaf_weight),
    )


@dataclass
class _Plan:
    """Per-session counts, start times and users for the whole run, in start-time order."""

    views: np.ndarray
    carts: np.ndarray
    purchases: np.ndarray
    start_ms: np.ndarray
    user: np.ndarray  # -1: anonymous
    favourites: np.ndarray  # (n_users, favourite_categories) leaf indices
    fingerprint: str
    event_offset: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))


def _session_starts(rng: np.random.Generator, n: int, config: GeneratorConfig) -> np.ndarray:
    minute = np.arange(_MINUTES_PER_DAY)
    phase = 2 * math.pi * (minute / _MINUTES_PER_DAY - config.peak_hour_utc / 24)
    cdf = np.cumsum(1.0 + config.daily_seasonality * np.cos(phase))
    minute_of_day = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), 1439)
    day = rng.integers(0, config.days, n)
    within_minute = rng.integers(0, 60_000, n)
    starts = to_epoch_ms(config.start) + day * _DAY_MS + minute_of_day * 60_000 + within_minute
    return np.sort(starts)


def _plan(
    n_events: int, n_users: int, catalogue: _Catalogue, seed: int, config: GeneratorConfig, fingerprint: str
) -> _Plan:
    rng = np.random.default_rng([seed, 0])
    p_cart, p_buy = config.cart_rate, config.purchase_rate
    per_session = config.mean_views_per_session * (1 + p_cart * (1 + p_buy))
    views, carts, buys = [], [], []
    total = 0
    while total < n_events:
        # Draw a bit more than expected so one round nearly always suffices.
        n = int((n_events - total) / per_session * 1.05) + 64
        v = np.minimum(rng.geometric(1.0 / config.mean_views_per_session, n), config.max_views_per_session)
        c = rng.binomial(v, p_cart)
        b = rng.binomial(c, p_buy)
        views.append(v)
        carts.append(c)
        buys.append(b)
        total += int((v + c + b).sum())
    v, c, b = (np.concatenate(parts).astype(np.int64) for parts in (views, carts, buys))
    n_sessions = int(np.searchsorted(np.cumsum(v + c + b), n_events, side="left")) + 1
    v, c, b = v[:n_sessions], c[:n_sessions], b[:n_sessions]
    starts = _session_starts(rng, n_sessions, config)
    # Squared uniform: low user numbers are the frequent shoppers.
    user = np.floor(rng.random(n_sessions) ** 2 * n_users).astype(np.int64)
    user[rng.random(n_sessions) < config.anonymous_share] = -1
    favourites = (
        catalogue.sample_leaves(rng, n_users * config.favourite_categories)
        .astype(np.int32)
        .reshape(n_users, config.favourite_categories)
    )
    return _Plan(v, c, b, starts, user, favourites, fingerprint, np.cumsum(v + c + b) - (v + c + b))


def _rank_within(groups: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random order of rows grouped by ``groups`` (sorted ints) and each row's rank in its group."""
    order = np.lexsort((rng.random(len(groups)), groups))
    grouped = groups[order]
    first = np.searchsorted(grouped, grouped, side="left")
    return order, np.arange(len(groups)) - first


def _block(
    plan: _Plan, catalogue: _Catalogue, seed: int, block: int, config: GeneratorConfig
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Events of one block of sessions, sorted by time; also each row's item and session index."""
    rng = np.random.default_rng([seed, 1, block])
    a = block * config.block_sessions
    b = min(a + config.block_sessions, len(plan.views))
    nv, nc, nb = plan.views[a:b], plan.carts[a:b], plan.purchases[a:b]
    n_sessions = b - a
    users = plan.user[a:b]
    anonymous = users < 0

    # Each session browses mostly one category: a favourite of its user, or a popular one.
    intent = catalogue.sample_leaves(rng, n_sessions)
    pick = rng.integers(0, config.favourite_categories, n_sessions)
    known = ~anonymous
    intent[known] = plan.favourites[users[known], pick[known]]

    view_session = np.repeat(np.arange(n_sessions), nv)
    n_views = len(view_session)
    focused = rng.random(n_views) < config.focus_share
    view_item = catalogue.sample_global(rng, n_views)
    view_item[focused] = catalogue.sample_in_leaf(rng, intent[view_session[focused]])

    gaps = np.clip(rng.lognormal(math.log(config.median_gap_s * 1000), 1.0, n_views), 1_000, 1_800_000)
    first_view = np.cumsum(nv) - nv
    gaps[first_view] = 0
    if config.idle_gap_share > 0:
        # Its own random stream, so the rest of the shop is the same with or without idle gaps.
        idle_rng = np.random.default_rng([seed, 3, block])
        several = np.flatnonzero(nv >= 2)
        idle = several[idle_rng.random(len(several)) < config.idle_gap_share]
        # Before a view in the middle: any one but the first; carts and the checkout follow.
        later = 1 + np.floor(idle_rng.random(len(idle)) * (nv[idle] - 1)).astype(np.int64)
        gaps[first_view[idle] + later] = idle_rng.uniform(*IDLE_GAP_MS, len(idle))
    elapsed = np.cumsum(gaps)
    view_time = plan.start_ms[a:b][view_session] + (elapsed - elapsed[first_view][view_session]).astype(np.int64)

    # The carted views of each session: the first nc of a random order within the session.
    order, rank = _rank_within(view_session, rng)
    carted = order[rank < nc[view_session[order]]]
    carted.sort()
    cart_session = view_session[carted]
    cart_item = view_item[carted]
    cart_time = view_time[carted] + np.clip(rng.lognormal(math.log(20_000), 0.8, len(carted)), 500, 600_000)
    cart_time = cart_time.astype(np.int64)

    order, rank = _rank_within(cart_session, rng)
    bought = order[rank < nb[cart_session[order]]]
    bought.sort()
    buy_session = cart_session[bought]
    buy_item = cart_item[bought]
    # One checkout per session, after everything else the session did.
    last = view_time[np.cumsum(nv) - 1].copy()
    np.maximum.at(last, cart_session, cart_time)
    checkout = last + np.clip(rng.lognormal(math.log(90_000), 0.7, n_sessions), 5_000, 3_600_000).astype(np.int64)
    buy_time = checkout[buy_session]

    session = np.concatenate([view_session, cart_session, buy_session])
    item = np.concatenate([view_item, cart_item, buy_item])
    when = np.concatenate([view_time, cart_time, buy_time])
    kind = np.concatenate(
        [
            np.full(n_views, _VIEW, np.int8),
            np.full(len(cart_item), _CART, np.int8),
            np.full(len(buy_item), _PURCHASE, np.int8),
        ]
    )
    order = np.lexsort((kind, when))  # by time; at equal times the funnel order
    session, item, when, kind = session[order], item[order], when[order], kind[order]

    index = plan.event_offset[a] + np.arange(len(order))
    prefix = f"syn-{plan.fingerprint}-"
    user_of_row = users[session]
    brand = catalogue.item_brand[item]
    table = pa.Table.from_arrays(
        [
            pc.binary_join_element_wise(prefix, pc.cast(pa.array(index), pa.string()), ""),
            pa.array(when, pa.int64()),
            pc.binary_join_element_wise(prefix + "s", pc.cast(pa.array(session + a), pa.string()), ""),
            pc.if_else(
                pa.array(user_of_row < 0),
                pa.scalar(None, pa.string()),
                pc.binary_join_element_wise("u", pc.cast(pa.array(np.maximum(user_of_row, 0)), pa.string()), ""),
            ),
            pc.cast(pa.array(item), pa.string()),
            pa.array(EVENT_TYPE_NAMES, pa.string()).take(pa.array(kind)),
            pa.array(catalogue.item_price[item], pa.float64()),
            catalogue.leaf_names.take(pa.array(catalogue.item_leaf[item])),
            catalogue.brand_names.take(pa.array(np.maximum(brand, 0), mask=brand < 0)),
        ],
        schema=EVENT_SCHEMA,
    )
    return table, item, session + a


def _fingerprint(n_events: int, n_items: int, n_users: int, seed: int, config: GeneratorConfig) -> str:
    # Ids name the run, so two different synthetic datasets never share event ids. Options at
    # their "off" value stay out, so datasets generated before an option existed keep their ids.
    shape = {k: v for k, v in asdict(config).items() if not (k == "idle_gap_share" and v == 0.0)}
    text = repr((n_events, n_items, n_users, seed, sorted(shape.items())))
    return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()


def _check_sizes(n_events: int, n_items: int, n_users: int) -> None:
    if n_events < 1 or n_items < 1 or n_users < 1:
        raise ValueError("n_events, n_items and n_users must be at least 1")


def iter_event_tables(
    n_events: int,
    n_items: int,
    n_users: int,
    seed: int,
    *,
    config: GeneratorConfig | None = None,
    report: GeneratorReport | None = None,
) -> Iterator[pa.Table]:
    """Stream a synthetic event log as Arrow tables (one per block of sessions).

    Args:
        n_events: Exact number of events.
        n_items: Catalogue size.
        n_users: Number of known shoppers (anonymous sessions come on top).
        seed: Same seed and arguments, same events.
        config: Shop and traffic shape.
        report: Filled in as the blocks are produced, when given.

    Yields:
        Tables in the event schema, each sorted by event_time; sessions start in time
        order across tables, so the stream is nearly (not strictly) time-ordered.
    """
    _check_sizes(n_events, n_items, n_users)
    config = config or GeneratorConfig()
    report = report if report is not None else GeneratorReport()
    report.seed, report.n_items = seed, n_items
    catalogue = _build_catalogue(n_items, np.random.default_rng([seed, 2]), config)
    plan = _plan(n_events, n_users, catalogue, seed, config, _fingerprint(n_events, n_items, n_users, seed, config))
    item_counts = np.zeros(n_items, np.int64)
    remaining = n_events
    n_blocks = -(-len(plan.views) // config.block_sessions)
    for block in range(n_blocks):
        table, items, sessions = _block(plan, catalogue, seed, block, config)
        if table.num_rows > remaining:
            # The last block is cut; its latest events go, so funnels stay in order.
            table, items, sessions = table.slice(0, remaining), items[:remaining], sessions[:remaining]
        remaining -= table.num_rows
        kinds = pc.value_counts(table.column("event_type")).to_pylist()
        counts = {entry["values"]: entry["counts"] for entry in kinds}
        report.n_events += table.num_rows
        report.n_views += counts.get(EventType.VIEW.value, 0)
        report.n_carts += counts.get(EventType.CART.value, 0)
        report.n_purchases += counts.get(EventType.PURCHASE.value, 0)
        item_counts += np.bincount(items, minlength=n_items)
        seen = np.unique(sessions)  # a session never spans two blocks
        report.n_sessions += len(seen)
        report.n_anonymous_sessions += int((plan.user[seen] < 0).sum())
        times = table.column("event_time")
        lo, hi = pc.min(times).as_py(), pc.max(times).as_py()
        report.first_event_ms = lo if report.first_event_ms is None else min(report.first_event_ms, lo)
        report.last_event_ms = hi if report.last_event_ms is None else max(report.last_event_ms, hi)
        yield table
        if remaining == 0:
            break
    report.n_items_seen = int((item_counts > 0).sum())
    top = max(1, n_items // 100)
    report.top1pct_item_share = float(np.sort(item_counts)[-top:].sum() / max(1, item_counts.sum()))


def generate_events_table(
    n_events: int,
    n_items: int,
    n_users: int,
    seed: int,
    *,
    config: GeneratorConfig | None = None,
    report: GeneratorReport | None = None,
) -> pa.Table:
    """Generate a small synthetic event log in memory (tests, notebooks).

    Args:
        n_events: Exact number of events.
        n_items: Catalogue size.
        n_users: Number of known shoppers.
        seed: Same seed and arguments, same table.
        config: Shop and traffic shape.
        report: Filled in when given.

    Returns:
        One table in the event schema (see :func:`iter_event_tables` for its order).
    """
    started = time.perf_counter()
    report = report if report is not None else GeneratorReport()
    tables = list(iter_event_tables(n_events, n_items, n_users, seed, config=config, report=report))
    report.seconds = time.perf_counter() - started
    return pa.concat_tables(tables)


def generate_events(
    n_events: int,
    n_items: int,
    n_users: int,
    seed: int,
    out_path: str | Path,
    chunk_size: int = 500_000,
    *,
    config: GeneratorConfig | None = None,
    progress: bool = True,
) -> GeneratorReport:
    """Generate a synthetic event log and stream it to one Parquet file.

    Memory holds one chunk of events plus per-item, per-user and per-session arrays
    (tens of bytes each), so 10M events over 1M items fit in well under a gigabyte.

    Args:
        n_events: Exact number of events.
        n_items: Catalogue size.
        n_users: Number of known shoppers (anonymous sessions come on top).
        seed: Same seed and arguments, same file contents whatever the chunk size.
        out_path: The Parquet file, or a folder to write ``events.parquet`` into.
        chunk_size: Events per Parquet row group (and per write).
        config: Shop and traffic shape.
        progress: Show a progress bar.

    Returns:
        Counts, popularity skew, time range and wall time of the run.
    """
    _check_sizes(n_events, n_items, n_users)
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    started = time.perf_counter()
    path = Path(out_path)
    if path.is_dir() or (not path.suffix and not path.exists()):
        path = path / "events.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    report = GeneratorReport(out_path=str(path))
    pending: list[pa.Table] = []
    pending_rows = 0
    bar = tqdm(total=n_events, unit="ev", unit_scale=True, desc="generate", disable=not progress)
    with bar, pq.ParquetWriter(path, EVENT_SCHEMA, compression="zstd") as writer:

        def flush(final: bool) -> None:
            # Row groups of exactly chunk_size rows (the last may be short); the rest waits.
            nonlocal pending, pending_rows
            table = pa.concat_tables(pending)
            ready = table.num_rows if final else table.num_rows - table.num_rows % chunk_size
            for start in range(0, ready, chunk_size):
                writer.write_table(table.slice(start, min(chunk_size, ready - start)), row_group_size=chunk_size)
                report.row_groups += 1
            bar.update(ready)
            pending = [table.slice(ready)] if ready < table.num_rows else []
            pending_rows = table.num_rows - ready

        for table in iter_event_tables(n_events, n_items, n_users, seed, config=config, report=report):
            pending.append(table)
            pending_rows += table.num_rows
            if pending_rows >= chunk_size:
                flush(final=False)
        if pending_rows:
            flush(final=True)
    report.seconds = time.perf_counter() - started
    return report
