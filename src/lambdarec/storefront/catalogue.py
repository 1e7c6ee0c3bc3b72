"""The shop's catalogue: the batch layer's latest gold ``item_stats`` snapshot.

The storefront sells what the batch layer has seen: one item per row of the newest ``date=``
partition of ``gold/item_stats`` (the same snapshot the item index is built from), with its
category, brand, mean price and 30-day popularity. A new snapshot is picked up on the next
request that finds a newer partition.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

UNCATEGORISED = "uncategorised"
"""Shelf of the items whose events never named a category."""


@dataclass(frozen=True)
class CatalogueItem:
    """One item on sale.

    Attributes:
        item_id: The item id, as in the events.
        category: Its category (the latest event's), or :data:`UNCATEGORISED`.
        brand: Its brand, if any event named one.
        price: Mean price over 30 days, if known.
        popularity: Events on it over the 30 days before the snapshot.
    """

    item_id: str
    category: str
    brand: str | None = None
    price: float | None = None
    popularity: int = 0

    @property
    def title(self) -> str:
        """What the page calls the item (the datasets carry no product names)."""
        return f"{self.brand or 'item'} {self.item_id}"


@dataclass
class Catalogue:
    """Items by id and by category, most popular first.

    Attributes:
        items: Every item by id.
        snapshot: The gold snapshot date they come from (None: no snapshot yet).
    """

    items: dict[str, CatalogueItem] = field(default_factory=dict)
    snapshot: str | None = None

    @classmethod
    def of(cls, items: Iterable[CatalogueItem], snapshot: str | None = None) -> Catalogue:
        """A catalogue of the given items."""
        return cls({item.item_id: item for item in items}, snapshot)

    def __len__(self) -> int:
        return len(self.items)

    def get(self, item_id: str) -> CatalogueItem | None:
        """One item, or None when the shop does not sell it."""
        return self.items.get(item_id)

    def categories(self) -> list[tuple[str, int]]:
        """``(category, item count)``, the largest shelves first (ties by name)."""
        counts: dict[str, int] = {}
        for item in self.items.values():
            counts[item.category] = counts.get(item.category, 0) + 1
        return sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))

    def in_category(self, category: str, limit: int | None = None) -> list[CatalogueItem]:
        """The items of one category, most popular first (ties by id)."""
        shelf = sorted(
            (item for item in self.items.values() if item.category == category),
            key=lambda item: (-item.popularity, item.item_id),
        )
        return shelf[:limit] if limit is not None else shelf

    def popular(self, limit: int, exclude: Iterable[str] = ()) -> list[CatalogueItem]:
        """The most popular items of the shop, without ``exclude``."""
        skip = set(exclude)
        ranked = sorted(self.items.values(), key=lambda item: (-item.popularity, item.item_id))
        return [item for item in ranked if item.item_id not in skip][:limit]


def latest_snapshot(folder: Path) -> Path | None:
    """The newest ``date=YYYY-MM-DD`` partition under a gold table folder, if any."""
    partitions = sorted(p for p in folder.glob("date=*") if p.is_dir())
    return partitions[-1] if partitions else None


def read_catalogue(folder: Path) -> Catalogue:
    """Read the newest snapshot of a gold ``item_stats`` table.

    Args:
        folder: ``<lake>/gold/item_stats``.

    Returns:
        The catalogue; empty (``snapshot`` None) when the batch layer has not written one yet.
    """
    import pyarrow.dataset as ds

    partition = latest_snapshot(folder)
    if partition is None:
        return Catalogue()
    columns = ["item_id", "item_category", "item_brand", "item_price_mean_30d", "item_popularity_30d"]
    rows = ds.dataset(str(partition), format="parquet").to_table(columns=columns).to_pylist()
    items = []
    for row in rows:
        price = row["item_price_mean_30d"]
        items.append(
            CatalogueItem(
                item_id=str(row["item_id"]),
                category=str(row["item_category"]) if row["item_category"] else UNCATEGORISED,
                brand=str(row["item_brand"]) if row["item_brand"] else None,
                price=float(price) if price is not None else None,
                popularity=int(row["item_popularity_30d"] or 0),
            )
        )
    return Catalogue.of(items, snapshot=partition.name.split("=", 1)[1])


class CatalogueSource:
    """The catalogue of a lake, re-read when the batch layer writes a newer snapshot.

    Args:
        folder: ``<lake>/gold/item_stats``.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._catalogue: Catalogue | None = None
        self._partition: Path | None = None

    def get(self) -> Catalogue:
        """The catalogue of the newest snapshot (read once per snapshot)."""
        partition = latest_snapshot(self.folder) if self.folder.is_dir() else None
        with self._lock:
            if self._catalogue is None or partition != self._partition:
                self._catalogue = read_catalogue(self.folder) if partition is not None else Catalogue()
                self._partition = partition
            return self._catalogue
