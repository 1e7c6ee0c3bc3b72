"""The catalogue is the newest gold item_stats snapshot, re-read when the batch layer writes a newer one."""

from __future__ import annotations

from pathlib import Path

from storefront_fakes import item_rows, write_item_stats

from lambdarec.storefront.catalogue import UNCATEGORISED, CatalogueSource, read_catalogue


def test_the_newest_snapshot_is_the_catalogue(tmp_path: Path) -> None:
    write_item_stats(tmp_path, "2026-11-29", [{**item_rows(1)[0], "item_id": "old"}])
    write_item_stats(tmp_path, "2026-11-30", item_rows(2))
    catalogue = read_catalogue(tmp_path)
    assert catalogue.snapshot == "2026-11-30" and len(catalogue) == 6 and catalogue.get("old") is None
    assert catalogue.categories() == [("books", 2), ("phones", 2), ("shoes", 2)]
    assert [i.item_id for i in catalogue.in_category("shoes")] == ["shoes-0", "shoes-1"]
    item = catalogue.get("shoes-1")
    assert item is not None and item.brand == "acme" and item.price == 11.0 and item.popularity == 99


def test_items_without_a_category_share_one_shelf_and_nulls_stay_unknown(tmp_path: Path) -> None:
    write_item_stats(
        tmp_path,
        "2026-11-30",
        [
            {
                "item_id": 7,
                "item_category": None,
                "item_brand": None,
                "item_price_mean_30d": None,
                "item_popularity_30d": None,
            }
        ],
    )
    item = read_catalogue(tmp_path).get("7")
    assert item is not None and item.category == UNCATEGORISED and item.price is None and item.popularity == 0


def test_no_snapshot_is_an_empty_catalogue_and_a_new_one_is_picked_up(tmp_path: Path) -> None:
    source = CatalogueSource(tmp_path / "gold" / "item_stats")
    assert len(source.get()) == 0 and source.get().snapshot is None
    write_item_stats(tmp_path / "gold" / "item_stats", "2026-11-30", item_rows(1))
    assert len(source.get()) == 3
    first = source.get()
    assert source.get() is first  # read once per snapshot
    write_item_stats(tmp_path / "gold" / "item_stats", "2026-12-01", item_rows(2))
    assert source.get().snapshot == "2026-12-01" and len(source.get()) == 6


def test_popular_items_skip_the_excluded(tmp_path: Path) -> None:
    write_item_stats(tmp_path, "2026-11-30", item_rows(2))
    catalogue = read_catalogue(tmp_path)
    top = [i.item_id for i in catalogue.popular(3, exclude=["books-0"])]
    assert top == ["phones-0", "shoes-0", "books-1"]
