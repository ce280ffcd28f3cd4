"""A Glue manifest of several objects: one Delta commit, one app transaction per object, exactly once.

The table a manifest leaves is compared with a clean run's: the same objects ingested one by one by
the single-object Spark engine (native MERGE), rows equal. Replaying a manifest adds nothing, and a bad
object fails the batch with an error that names it, leaving the table as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from engine_helpers import INGESTED_AT, read_rows

from lakehouse import errors
from lakehouse.contracts import load_contract
from lakehouse.events import app_id_for
from lakehouse.sql.compiler import RunMeta

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.xdist_group("spark")]

REPO = Path(__file__).resolve().parents[3]
COLUMNS = "o_orderkey,o_custkey,o_orderstatus,o_totalprice,o_orderdate"
HEADER = COLUMNS + ",o_orderpriority,o_clerk,o_shippriority,o_comment"


def orders_csv(path: Path, rows: list[tuple[int, str, str]]) -> Path:
    lines = [HEADER] + [
        f"{key},{key * 10},{status},{price},2026-01-0{1 + key % 9},1-URGENT,Clerk#000000001,0,c{key}"
        for key, status, price in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def obj(path: Path, n: int) -> dict[str, Any]:
    key = f"orders/{path.name}"
    return {
        "object_id": f"orders-obj{n}",
        "bucket": "landing",
        "key": key,
        "etag": f"e{n}",
        "source_version": f"e{n}",
        "ingested_at": INGESTED_AT.isoformat(),
        "app_id": app_id_for("orders", "landing", key, f"e{n}"),
    }


def run_manifest(
    spark: Any, tmp: Path, run_id: str, table: str, files: list[tuple[int, Path]]
) -> dict[str, Any]:
    from lakehouse.spark.runs import ingest_manifest

    objects = [obj(path, n) for n, path in files]
    manifest = tmp / "lake" / "runs" / run_id / "manifest.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(
        json.dumps({"run_id": run_id, "dataset": "orders", "table_uri": table, "objects": objects})
    )
    return ingest_manifest(
        spark,
        str(manifest),
        run_id=run_id,
        datasets_dir=REPO / "datasets",
        result_uri=str(manifest.parent / "commit.json"),
        source_uris={o["object_id"]: str(path) for o, (_, path) in zip(objects, files, strict=True)},
        rejects_uris={o["object_id"]: str(tmp / "rejects" / o["object_id"] / "r.parquet") for o in objects},
    )


def clean_run(spark: Any, tmp: Path, table: str, files: list[tuple[int, Path]]) -> None:
    """The same objects, one commit each, through the single-object engine (native Delta MERGE)."""
    from lakehouse.spark.ingest import ingest_object

    contract = load_contract(REPO / "datasets" / "orders.yaml")
    for n, path in files:
        o = obj(path, n)
        meta = RunMeta(
            source_uri=f"s3://landing/{o['key']}", source_version=o["source_version"],
            ingested_at=INGESTED_AT, run_id=f"clean-{n}",
        )  # fmt: skip
        ingest_object(
            spark, str(path), contract, table, meta, app_id=o["app_id"],
            rejects_uri=str(tmp / "clean-rejects" / f"{n}.parquet"),
        )  # fmt: skip


def rows_of(table: str) -> list[dict[str, Any]]:
    rows = read_rows(table, with_metadata=True)
    for row in rows:
        row.pop("_run_id", None)  # the batch's run id vs the clean run's per-object ids
    return sorted(rows, key=lambda r: r["o_orderkey"])


def test_two_object_manifests_commit_once_each_and_equal_a_clean_run(spark: Any, tmp_path: Path) -> None:
    files = [
        (1, orders_csv(tmp_path / "a.csv", [(1, "O", "10.00"), (2, "O", "20.00")])),
        (2, orders_csv(tmp_path / "b.csv", [(2, "F", "21.00"), (3, "O", "30.00")])),  # key 2: b wins
        (3, orders_csv(tmp_path / "c.csv", [(3, "P", "31.00"), (4, "O", "40.00")])),
        (4, orders_csv(tmp_path / "d.csv", [(4, "F", "41.00"), (1, "F", "11.00")])),
    ]
    table = str(tmp_path / "lake" / "tables" / "orders")
    first = run_manifest(spark, tmp_path, "orders-drain-1", table, files[:2])  # creates the table
    second = run_manifest(spark, tmp_path, "orders-drain-2", table, files[2:])  # merges into it

    for result, versions in ((first, (-1, 0)), (second, (0, 1))):
        assert result["status"] == "committed", result
        assert (result["version_before"], result["version_after"]) == versions
        assert [o["status"] for o in result["objects"]] == ["committed", "committed"]
    assert second["rows_written"] == 3  # keys 3 and 1 updated, 4 inserted (d's row: the last object wins)
    delta = DeltaTable(table)
    assert delta.version() == 1  # one commit per manifest
    for n, path in files:
        assert delta.transaction_version(obj(path, n)["app_id"]) == 1
    batch_rows = rows_of(table)
    assert [(r["o_orderkey"], r["o_orderstatus"]) for r in batch_rows] == [
        (1, "F"),
        (2, "F"),
        (3, "P"),
        (4, "F"),
    ]

    clean = str(tmp_path / "clean" / "orders")
    clean_run(spark, tmp_path, clean, files)
    assert batch_rows == rows_of(clean)

    # Exactly once: the same run again resumes after its own commit; another run is a duplicate.
    again = run_manifest(spark, tmp_path, "orders-drain-2", table, files[2:])
    assert (again["status"], again["resumed"], again["version_after"]) == ("committed", True, 1)
    other = run_manifest(spark, tmp_path, "orders-drain-3", table, files)
    assert other["status"] == "duplicate"
    assert {o["duplicate_of"] for o in other["objects"]} == {"orders-drain-1", "orders-drain-2"}
    assert DeltaTable(table).version() == 1
    assert rows_of(table) == batch_rows


def test_a_bad_object_fails_the_batch_naming_it_and_commits_nothing(spark: Any, tmp_path: Path) -> None:
    good = orders_csv(tmp_path / "good.csv", [(1, "O", "10.00")])
    bad = tmp_path / "bad.csv"
    bad.write_text("o_orderkey,o_custkey\n1,2\n", encoding="utf-8")  # lacks required columns
    table = str(tmp_path / "lake" / "tables" / "orders")
    run_manifest(spark, tmp_path, "orders-drain-1", table, [(1, good)])

    with pytest.raises(errors.InvalidInputError) as failed:
        run_manifest(
            spark,
            tmp_path,
            "orders-drain-2",
            table,
            [(2, orders_csv(tmp_path / "g2.csv", [(5, "O", "5.00")])), (3, bad)],
        )
    assert "(object orders-obj3)" in str(failed.value)
    assert "(object orders-obj2)" not in str(failed.value)
    assert DeltaTable(table).version() == 0
    assert [r["o_orderkey"] for r in rows_of(table)] == [1]


LINEITEM_COLUMNS = (
    "l_orderkey,l_partkey,l_suppkey,l_linenumber,l_quantity,l_extendedprice,l_discount,l_tax,l_returnflag,"
    "l_linestatus,l_shipdate,l_commitdate,l_receiptdate,l_shipinstruct,l_shipmode,l_comment"
)


def lineitem_csv(path: Path, first_key: int, modes: list[str]) -> Path:
    lines = [LINEITEM_COLUMNS] + [
        f"{first_key + i},1552,93,1,17,24710.35,0.04,0.02,N,O,1996-03-13,1996-02-12,1996-03-22,"
        f"DELIVER IN PERSON,{mode},line {first_key + i}"
        for i, mode in enumerate(modes)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("write_mode", ["append", "overwrite_partitions"])
def test_append_and_partition_overwrite_manifests_equal_a_clean_run(
    spark: Any, tmp_path: Path, write_mode: str
) -> None:
    """Append adds both objects' rows; a partition overwrite takes each partition from the last object
    that has it (as one replaceWhere write per object would)."""
    import yaml

    from lakehouse.contracts import parse_contract
    from lakehouse.spark.ingest import ingest_object
    from lakehouse.spark.runs import ingest_manifest

    spec = yaml.safe_load((REPO / "datasets" / "lineitem.yaml").read_text())
    spec.update(write_mode=write_mode, checks=[])
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    text = yaml.safe_dump(spec, sort_keys=False)
    (datasets / "lineitem.yaml").write_text(text)
    contract = parse_contract(text)
    files = [
        lineitem_csv(tmp_path / "l0.csv", 1, ["TRUCK", "MAIL", "AIR"]),
        lineitem_csv(tmp_path / "l1.csv", 10, ["TRUCK", "MAIL", "AIR", "TRUCK"]),
        lineitem_csv(tmp_path / "l2.csv", 20, ["MAIL", "TRUCK"]),
    ]

    def entry(n: int, path: Path) -> dict[str, Any]:
        key = f"lineitem/{path.name}"
        return {
            "object_id": f"lineitem-obj{n}", "bucket": "landing", "key": key, "etag": f"e{n}",
            "source_version": f"e{n}", "ingested_at": INGESTED_AT.isoformat(),
            "app_id": app_id_for("lineitem", "landing", key, f"e{n}"),
        }  # fmt: skip

    table = str(tmp_path / "lake" / "tables" / "lineitem")
    for run_id, batch in (("lineitem-drain-1", [0]), ("lineitem-drain-2", [1, 2])):
        objects = [entry(n, files[n]) for n in batch]
        manifest = tmp_path / "runs" / run_id / "manifest.json"
        manifest.parent.mkdir(parents=True)
        body = {"run_id": run_id, "dataset": "lineitem", "table_uri": table, "objects": objects}
        manifest.write_text(json.dumps(body))
        result = ingest_manifest(
            spark, str(manifest), datasets_dir=datasets, result_uri=str(manifest.parent / "commit.json"),
            source_uris={o["object_id"]: str(files[n]) for o, n in zip(objects, batch, strict=True)},
            rejects_uris={o["object_id"]: str(tmp_path / "rejects" / o["object_id"]) for o in objects},
        )  # fmt: skip
        assert result["status"] == "committed", result
    assert DeltaTable(table).version() == 1

    clean = str(tmp_path / "clean")
    for n, path in enumerate(files):
        o = entry(n, path)
        meta = RunMeta(
            source_uri=f"s3://landing/{o['key']}", source_version=o["source_version"],
            ingested_at=INGESTED_AT, run_id=f"clean-{n}",
        )  # fmt: skip
        ingest_object(
            spark, str(path), contract, clean, meta, app_id=o["app_id"],
            rejects_uri=str(tmp_path / "clean-rejects" / f"{n}.parquet"),
        )  # fmt: skip

    def rows(uri: str) -> list[tuple[Any, ...]]:
        found = read_rows(uri, with_metadata=True)
        return sorted(tuple(v for k, v in sorted(r.items()) if k != "_run_id") for r in found)

    assert rows(table) == rows(clean)
    keys = sorted(r["l_orderkey"] for r in read_rows(table))
    if write_mode == "append":
        assert keys == [1, 2, 3, 10, 11, 12, 13, 20, 21]
    else:  # TRUCK and MAIL from l2 (the last that has them), AIR from l1
        assert keys == [12, 20, 21]
