"""Stage behaviour on the local backend that the handler and state-machine tests do not reach."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.errors import InvalidInputError
from lakehouse.settings import Settings
from lakehouse.stages.ingest import inspect_object
from lakehouse.stages.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]


def test_an_object_deleted_before_its_run_is_a_clear_input_error(tmp_path: Path) -> None:
    rt = Runtime.create(
        Settings(LAKEHOUSE_BACKEND="local", LAKEHOUSE_HOME=tmp_path, DATASETS_DIR=ROOT / "datasets")
    )
    state = {"run_id": "orders-1", "dataset": "orders", "bucket": "landing", "key": "orders/gone.csv"}

    with pytest.raises(InvalidInputError, match=r"s3://landing/orders/gone.csv: the object no longer exists"):
        inspect_object(rt, state)


def test_a_key_outside_the_datasets_landing_prefix_is_refused(tmp_path: Path) -> None:
    rt = Runtime.create(
        Settings(LAKEHOUSE_BACKEND="local", LAKEHOUSE_HOME=tmp_path, DATASETS_DIR=ROOT / "datasets")
    )
    rt.adapters.objects.put_bytes("landing", "lineitem/x.csv", b"a,b\n1,2\n")
    state = {"run_id": "orders-2", "dataset": "orders", "bucket": "landing", "key": "lineitem/x.csv"}

    with pytest.raises(InvalidInputError, match="outside the landing prefix 'orders/'"):
        inspect_object(rt, state)


def test_derived_tables_are_registered_and_a_missing_one_is_reported(tmp_path: Path) -> None:
    import duckdb
    from deltalake import write_deltalake

    from lakehouse.stages.ingest import register_table

    rt = Runtime.create(
        Settings(LAKEHOUSE_BACKEND="local", LAKEHOUSE_HOME=tmp_path, DATASETS_DIR=ROOT / "datasets")
    )
    gold = duckdb.sql("SELECT 'O' AS o_orderstatus, 3::BIGINT AS orders, 12.5::DECIMAL(15,2) AS revenue")
    write_deltalake(rt.derived_uri("orders_by_status"), gold)

    out = register_table(
        rt, {"dataset": "orders", "run_id": "r", "models": ["orders_by_status", "not_built"]}
    )

    assert out["tables"][0] == {"table": "orders_by_status", "created": True, "schema_changed": False}
    assert out["tables"][1] == {"table": "not_built", "created": False, "missing": True}
    entry = rt.adapters.catalog.get_table(rt.settings.glue_database, "orders_by_status")
    assert entry is not None
    assert entry["Parameters"]["table_type"] == "DELTA"
    assert [c["Name"] for c in entry["StorageDescriptor"]["Columns"]] == [
        "o_orderstatus",
        "orders",
        "revenue",
    ]


@pytest.mark.parametrize(("interval", "expected"), [(0, True), (3600, False)])
def test_derived_refresh_is_skipped_within_its_minimum_interval(
    tmp_path: Path, interval: int, expected: bool
) -> None:
    import duckdb
    from deltalake import write_deltalake

    rt = Runtime.create(
        Settings(
            LAKEHOUSE_BACKEND="local",
            LAKEHOUSE_HOME=tmp_path,
            DATASETS_DIR=ROOT / "datasets",
            DERIVED_REFRESH_MIN_INTERVAL_S=interval,
        )
    )
    header = b"o_orderkey,o_custkey,o_orderstatus,o_totalprice,o_orderdate,o_orderpriority,o_clerk,"
    body = header + b"o_shippriority,o_comment\n1,2,O,3.00,1996-01-02,5-LOW,C,0,x\n"
    rt.adapters.objects.put_bytes("landing", "orders/a.csv", body)
    state = {"run_id": "orders-3", "dataset": "orders", "bucket": "landing", "key": "orders/a.csv"}
    assert inspect_object(rt, state)["has_derived"] is True  # never refreshed: due whatever the interval

    # Refreshed just now: within an hour's interval the next drain skips it.
    write_deltalake(rt.derived_uri("orders_by_status"), duckdb.sql("SELECT 'O' AS o_orderstatus, 1 AS n"))
    assert inspect_object(rt, state)["has_derived"] is expected


def test_an_arrival_that_queues_its_object_kicks_without_reading_the_pending_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A burst of N arrivals read the whole pending set at every arrival (N²/2 item reads); the arrival
    # that has just queued its object knows something is pending. A duplicate event still looks.
    from lakehouse.adapters.starter import LocalStarter
    from lakehouse.events import ObjectCreated
    from lakehouse.stages.start import start_run

    rt = Runtime.create(
        Settings(LAKEHOUSE_BACKEND="local", LAKEHOUSE_HOME=tmp_path, DATASETS_DIR=ROOT / "datasets")
    )
    reads: list[str] = []
    pending = rt.adapters.pending
    items, oldest = pending.items, pending.oldest

    def counted_items(dataset: str) -> list[dict[str, object]]:
        reads.append(dataset)
        return items(dataset)

    def counted_oldest(dataset: str, limit: int) -> list[dict[str, object]]:
        reads.append(dataset)
        return oldest(dataset, limit)

    monkeypatch.setattr(pending, "items", counted_items)
    monkeypatch.setattr(pending, "oldest", counted_oldest)
    starter = LocalStarter(rt)
    drains = set()
    for n in range(3):
        key = f"orders/o{n}.csv"
        info = rt.adapters.objects.put_bytes("landing", key, b"o_orderkey\n1\n")
        obj = ObjectCreated(
            bucket="landing", key=key, size=info.size, etag=info.etag, version_id=info.version_id
        )
        started = start_run(rt, obj, starter)
        assert started is not None
        assert started["queued"] is True
        drains.add(started["drain"])
    assert reads == []
    assert len(drains) == 1  # one drain for the burst, as before
    again = start_run(rt, obj, starter)  # the same event again: nothing queued, the set is read
    assert again is not None
    assert again["queued"] is False
    assert reads == ["orders"]
