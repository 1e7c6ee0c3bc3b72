"""A unit-test stand-in for the feature store: the feature services' rows computed from events in process.

Only for unit tests of the models' mechanics (no Feast, no Spark). It answers with the same
columns as ``retrieval_v2`` / ``ranking_v2`` / ``neighbours_v1``; the session fold is the shared
one, the user history is the user's events before the moment's day (a daily snapshot), item
content and neighbours are simplified (all-time). The real sources are tested on real engines.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import pandas as pd

from lambdarec import names
from lambdarec.features.session import fold_session
from lambdarec.featurestore.transforms import user_item_features

DAY_MS = 86_400_000


class EventFeatureSource:
    """Rows of the model feature services computed from ``events``."""

    def __init__(self, events: pd.DataFrame) -> None:
        frame = events.sort_values(["event_time", "event_id"], kind="stable")
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        self.sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.users: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in records:
            self.sessions[str(r["session_id"])].append(r)
            if r["user_id"] is not None:
                self.users[str(r["user_id"])].append(r)
        self.session_times = {s: [int(r["event_time"]) for r in rs] for s, rs in self.sessions.items()}
        self.user_times = {u: [int(r["event_time"]) for r in rs] for u, rs in self.users.items()}
        self.items: dict[str, dict[str, Any]] = {}
        counts: Counter[str] = Counter()
        for r in records:
            item = str(r["item_id"])
            counts[item] += 1
            entry = self.items.setdefault(item, {"category": None, "brand": None, "prices": []})
            entry["category"] = r["category"] or entry["category"]
            entry["brand"] = r["brand"] or entry["brand"]
            if r["price"] is not None and not math.isnan(float(r["price"])):
                entry["prices"].append(float(r["price"]))
        self.popularity = counts
        pairs: Counter[tuple[str, str]] = Counter()
        for rs in self.sessions.values():
            basket = sorted({str(r["item_id"]) for r in rs})[:50]
            for a in basket:
                for b in basket:
                    if a != b:
                        pairs[(a, b)] += 1
        neighbours: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for (a, b), n in pairs.items():
            neighbours[a].append((n / math.sqrt(counts[a] * counts[b]), b))
        self.neighbours = {a: sorted(v, key=lambda t: (-t[0], t[1]))[:20] for a, v in neighbours.items()}

    def _user_row(self, user: str, moment: int) -> dict[str, Any]:
        snapshot = (moment // DAY_MS) * DAY_MS  # the latest daily snapshot at or before the moment
        times = self.user_times.get(user, [])
        past = self.users.get(user, [])[: bisect.bisect_left(times, snapshot)]
        if not past:
            return dict.fromkeys(
                (
                    "user_recent_items_30d",
                    "user_events_30d",
                    "user_purchases_30d",
                    "user_spend_30d",
                    "user_visits_30d",
                    "user_top_categories",
                    "user_last_event_ms",
                )
            )
        recent: list[str] = []
        for r in reversed(past):
            item = str(r["item_id"])
            if item not in recent:
                recent.append(item)
            if len(recent) == 30:
                break
        purchases = [r for r in past if r["event_type"] == "purchase"]
        categories = Counter(r["category"] for r in past if r["category"])
        return {
            "user_recent_items_30d": recent[::-1],
            "user_events_30d": len(past),
            "user_purchases_30d": len(purchases),
            "user_spend_30d": float(sum(float(r["price"] or 0.0) for r in purchases)),
            "user_visits_30d": len({r["session_id"] for r in past}),
            "user_top_categories": [c for c, _ in categories.most_common(3)],
            "user_last_event_ms": int(past[-1]["event_time"]),
        }

    def query_rows(self, session_ids: Sequence[str], user_ids: Sequence[str], moments_ms: Sequence[int]) -> Any:
        """``retrieval_v2`` rows."""
        out: dict[str, list[Any]] = defaultdict(list)
        out[names.SESSION_ID] = [str(s) for s in session_ids]
        out[names.USER_ID] = [str(u) if u else "" for u in user_ids]
        for session, user, moment in zip(session_ids, user_ids, moments_ms, strict=True):
            times = self.session_times.get(str(session), [])
            prefix = self.sessions.get(str(session), [])[: bisect.bisect_right(times, int(moment))]
            row = fold_session(prefix) if prefix else dict.fromkeys(names.SESSION_FEATURES)
            for name in (*names.SESSION_FEATURES,):
                out[name].append(row[name])
            user_row = self._user_row(str(user) if user else "", int(moment))
            for name in (
                "user_recent_items_30d",
                "user_events_30d",
                "user_purchases_30d",
                "user_spend_30d",
                "user_visits_30d",
            ):
                out[name].append(user_row[name])
        return dict(out)

    def candidate_rows(self, user_ids: Sequence[str], item_ids: Sequence[str], moments_ms: Sequence[int]) -> Any:
        """``ranking_v2`` rows."""
        out: dict[str, list[Any]] = defaultdict(list)
        pair_inputs: dict[str, list[Any]] = defaultdict(list)
        out[names.USER_ID] = [str(u) if u else "" for u in user_ids]
        out[names.ITEM_ID] = [str(i) for i in item_ids]
        for user, item, moment in zip(user_ids, item_ids, moments_ms, strict=True):
            entry = self.items.get(str(item))
            n = self.popularity.get(str(item), 0)
            price = sum(entry["prices"]) / len(entry["prices"]) if entry and entry["prices"] else None
            values = {
                "item_category": entry["category"] if entry else None,
                "item_brand": entry["brand"] if entry else None,
                "item_price_mean_30d": price,
                "item_popularity_1d": n if entry else None,
                "item_popularity_7d": n if entry else None,
                "item_popularity_30d": n if entry else None,
                "item_cart_rate_30d": 0.1 if entry else None,
                "item_conversion_rate_30d": 0.05 if entry else None,
            }
            for name, value in values.items():
                out[name].append(value)
            user_row = self._user_row(str(user) if user else "", int(moment))
            for name in ("user_top_categories", "user_last_event_ms", "user_spend_30d", "user_purchases_30d"):
                pair_inputs[name].append(user_row[name])
            pair_inputs["item_category"].append(values["item_category"])
            pair_inputs["item_price_mean_30d"].append(price)
            pair_inputs[names.REQUEST_TIME_MS].append(int(moment))
        out.update(user_item_features(pair_inputs))
        return dict(out)

    def session_rule_rows(self, session_ids: Sequence[str], moments_ms: Sequence[int]) -> Any:
        """``session_rules_v1`` rows (the session fold's purchased items at the moment)."""
        rows = self.query_rows(session_ids, [""] * len(session_ids), moments_ms)
        return {
            names.SESSION_ID: rows[names.SESSION_ID],
            names.SESSION_PURCHASED_ITEMS: rows[names.SESSION_PURCHASED_ITEMS],
        }

    def neighbour_rows(self, item_ids: Sequence[str], moments_ms: Sequence[int]) -> Any:
        """``neighbours_v1`` rows (co-view only, all-time)."""
        out: dict[str, list[Any]] = defaultdict(list)
        out[names.ITEM_ID] = [str(i) for i in item_ids]
        for item in item_ids:
            found = self.neighbours.get(str(item), [])
            out["coview_items"].append([b for _, b in found])
            out["coview_scores"].append([s for s, _ in found])
            out["copurchase_items"].append([])
            out["copurchase_scores"].append([])
        return dict(out)
