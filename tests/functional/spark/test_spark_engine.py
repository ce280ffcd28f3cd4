"""The Spark engine against the shared vectors and against the DuckDB engine: identical tables.

Every case ingests the same file with the same RunMeta and app id into two tables, one per engine,
and compares them row for row, metadata columns included.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from deltalake import DeltaTable
from engine_helpers import (
    INGESTED_AT,
    app_id,
    assert_rows_equal,
    ingest,
    load_vector,
    meta_for,
    read_rows,
    vector_names,
)

from lakehouse import errors
from lakehouse.contracts import Contract, ContractRegistry, load_contract, parse_contract
from lakehouse.sql.derived import derived_document

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.xdist_group("spark")]

REPO = Path(__file__).resolve().parents[3]
TPCHGEN = Path(sys.executable).parent / "tpchgen-cli"


def spark_ingest(
    spark: Any,
    path: Path,
    contract: Contract,
    uri: str,
    rejects: Path,
    *,
    version: str = "v1",
    run_id: str = "run-1",
) -> dict[str, Any]:
    from lakehouse.spark.ingest import ingest_object

    return ingest_object(
        spark,
        str(path),
        contract,
        uri,
        meta_for(path, run_id, version),
        app_id=app_id(contract, path, version),
        rejects_uri=str(rejects),
    )


def sorted_rows(uri: str, key: list[str]) -> list[dict[str, Any]]:
    rows = read_rows(uri, with_metadata=True)
    return sorted(rows, key=lambda r: tuple((r[k] is None, r[k]) for k in key))


def assert_same_tables(spark_uri: str, duck_uri: str, key: list[str]) -> None:
    """Same schema (names and types), same rows, metadata columns included."""
    left, right = DeltaTable(spark_uri), DeltaTable(duck_uri)
    left_schema = {f.name: str(f.type) for f in left.schema().fields}
    right_schema = {f.name: str(f.type) for f in right.schema().fields}
    assert left_schema == right_schema
    assert left.metadata().partition_columns == right.metadata().partition_columns
    assert left.metadata().configuration == right.metadata().configuration
    spark_rows, duck_rows = sorted_rows(spark_uri, key), sorted_rows(duck_uri, key)
    assert len(spark_rows) == len(duck_rows)
    for got, want in zip(spark_rows, duck_rows, strict=True):
        assert got == want


def reject_rows(path: str | None) -> list[tuple[Any, ...]]:
    if path is None:
        return []
    return duckdb.execute(
        f"SELECT source_row, source_line, reason, raw_line FROM read_parquet('{path}') ORDER BY ALL"
    ).fetchall()


COUNTS = (
    "status",
    "rows_read",
    "rows_written",
    "rows_rejected",
    "rows_dropped",
    "version_before",
    "version_after",
)


def same_counts(spark_result: dict[str, Any], duck_result: dict[str, Any]) -> None:
    assert {k: spark_result[k] for k in COUNTS} == {k: duck_result[k] for k in COUNTS}
    assert spark_result["added_columns"] == duck_result["added_columns"]
    assert spark_result["format"] == duck_result["format"]
    assert spark_result["bytes_read"] == duck_result["bytes_read"]


# --- shared vectors ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", vector_names())
def test_vector_matches_expected_and_duckdb(name: str, spark: Any, tmp_path: Path) -> None:
    vector = load_vector(name)
    expected = vector.expected
    spark_uri = str(tmp_path / "spark" / vector.contract.name)
    duck_uri = str(tmp_path / "duck" / vector.contract.name)
    rejects = tmp_path / "quarantine" / "rejects.parquet"

    if expected["status"] == "error":
        error = getattr(errors, expected["error"])
        with pytest.raises(error) as info:
            spark_ingest(spark, vector.input, vector.contract, spark_uri, rejects)
        assert type(info.value).__name__ == expected["error"]
        assert vector.input.name in str(info.value)
        assert not Path(spark_uri, "_delta_log").exists()
        with pytest.raises(error):
            ingest(vector.input, vector.contract, duck_uri, tmp_path / "work")
        return

    result = spark_ingest(spark, vector.input, vector.contract, spark_uri, rejects)
    assert result["status"] == "committed"
    assert (result["rows_written"], result["rows_rejected"], result["rows_dropped"]) == (
        expected["rows_written"],
        expected["rows_rejected"],
        expected["rows_dropped"],
    )
    assert_rows_equal(read_rows(spark_uri), expected)
    if expected.get("rejects"):
        assert result["rejects_path"] == str(rejects)
        found = duckdb.execute(f"SELECT source_row, reason FROM read_parquet('{rejects}')").fetchall()
        reasons: dict[int, str] = dict(found)
        assert len(reasons) == expected["rows_rejected"]
        for item in expected["rejects"]:
            assert item["reason_contains"] in reasons[item["row"]], (item, reasons.get(item["row"]))

    duck = ingest(vector.input, vector.contract, duck_uri, tmp_path / "work").as_dict()
    same_counts(result, duck)
    assert_same_tables(spark_uri, duck_uri, expected["key"])
    assert reject_rows(result["rejects_path"]) == reject_rows(duck["rejects_path"])


# --- TPC-H: both engines, identical tables -------------------------------------------------------


@pytest.fixture(scope="module")
def tpch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tpch")
    for table in ("orders", "lineitem"):
        subprocess.run([str(TPCHGEN), "csv", "-s", "0.001", "-T", table, "-o", str(out)], check=True)
    return out


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_tpch_lineitem_append_identical(spark: Any, tpch: Path, tmp_path: Path) -> None:
    contract = load_contract(REPO / "datasets" / "lineitem.yaml")
    source = tpch / "lineitem.csv"
    spark_uri, duck_uri = str(tmp_path / "spark"), str(tmp_path / "duck")

    result = spark_ingest(spark, source, contract, spark_uri, tmp_path / "rejects.parquet")
    duck = ingest(source, contract, duck_uri, tmp_path / "work").as_dict()

    lines = len(_csv_rows(source))
    assert (result["status"], result["rows_read"], result["rows_written"]) == ("committed", lines, lines)
    same_counts(result, duck)
    assert DeltaTable(spark_uri).metadata().partition_columns == ["l_shipmode"]
    assert_same_tables(spark_uri, duck_uri, ["l_orderkey", "l_linenumber"])


def test_tpch_orders_merge_update_identical(spark: Any, tpch: Path, tmp_path: Path) -> None:
    contract = load_contract(REPO / "datasets" / "orders.yaml")
    source = tpch / "orders.csv"
    lines = _csv_rows(source)
    spark_uri, duck_uri = str(tmp_path / "spark"), str(tmp_path / "duck")
    first = spark_ingest(spark, source, contract, spark_uri, tmp_path / "r1.parquet")
    same_counts(first, ingest(source, contract, duck_uri, tmp_path / "w1").as_dict())
    assert_same_tables(spark_uri, duck_uri, ["o_orderkey"])

    # A second object: 50 changed orders (price, status), 5 new ones, and a new column (add_columns).
    update = tmp_path / "landing" / "orders-update.csv"
    update.parent.mkdir()
    with update.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*lines[0], "o_channel"])
        writer.writeheader()
        for row in lines[100:150]:
            price = str(Decimal(row["o_totalprice"]) + Decimal("1.01"))
            writer.writerow({**row, "o_totalprice": price, "o_orderstatus": "P", "o_channel": "web"})
        for key in range(5):
            writer.writerow({**lines[0], "o_orderkey": str(10_000_000 + key), "o_channel": ""})

    second = spark_ingest(spark, update, contract, spark_uri, tmp_path / "r2.parquet", run_id="run-2")
    duck = ingest(update, contract, duck_uri, tmp_path / "w2", run_id="run-2").as_dict()
    assert (second["status"], second["rows_written"], second["added_columns"]) == (
        "committed",
        55,
        ["o_channel"],
    )
    same_counts(second, duck)
    assert_same_tables(spark_uri, duck_uri, ["o_orderkey"])
    rows = {r["o_orderkey"]: r for r in read_rows(spark_uri)}
    assert len(rows) == len(lines) + 5
    changed = lines[120]
    assert rows[int(changed["o_orderkey"])]["o_totalprice"] == Decimal(changed["o_totalprice"]) + Decimal(
        "1.01"
    )
    assert rows[int(changed["o_orderkey"])]["o_channel"] == "web"
    assert rows[int(lines[300]["o_orderkey"])]["o_channel"] is None


# --- exactly once, schema policy, partitions -----------------------------------------------------

SMALL = """
name: items
landing_prefix: items/
format: {{type: csv}}
columns:
  - {{name: id, type: int, nullable: false}}
  - {{name: day, type: date}}
  - {{name: amount, type: "{amount}"}}
primary_key: [id]
partition_by: {partitions}
write_mode: {mode}
"""


def small_contract(mode: str = "append", amount: str = "decimal(10,2)", partitions: str = "[]") -> Contract:
    return parse_contract(SMALL.format(mode=mode, amount=amount, partitions=partitions), "items.yaml")


def write_file(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_same_app_id_twice_is_a_duplicate(mode: str, spark: Any, tmp_path: Path) -> None:
    contract = small_contract(mode=mode)
    path = write_file(tmp_path / "in", "a.csv", "id,day,amount\n1,2024-01-01,1.00\n2,2024-01-02,2.00\n")
    uri = str(tmp_path / "items")
    first = spark_ingest(spark, path, contract, uri, tmp_path / "r.parquet")
    # Append creates a missing table in its first commit; merge creates it first, then commits.
    expected_version = 0 if mode == "append" else 1
    assert (first["status"], first["rows_written"], first["version_after"]) == (
        "committed",
        2,
        expected_version,
    )
    before = (DeltaTable(uri).version(), sorted_rows(uri, ["id"]))

    second = spark_ingest(spark, path, contract, uri, tmp_path / "r.parquet", run_id="run-2")

    assert (second["status"], second["rows_written"], second["duplicate_of"]) == ("duplicate", 0, "run-1")
    assert second["version_before"] == second["version_after"] == first["version_after"]
    assert (DeltaTable(uri).version(), sorted_rows(uri, ["id"])) == before
    # The DuckDB engine sees the Spark engine's app transaction too (one protocol, two writers).
    assert ingest(path, contract, uri, tmp_path / "w", run_id="run-9").status == "duplicate"
    # The same run again (a Glue job retried after it committed): it finds its own commit and resumes.
    retried = spark_ingest(spark, path, contract, uri, tmp_path / "r.parquet")
    assert (retried["status"], retried["resumed"]) == ("committed", True)
    assert retried["version_after"] == first["version_after"]
    # ... and so does the Lambda side, reading the Spark commit's userMetadata through delta-rs.
    from lakehouse.commit_log import find_commit

    ref = find_commit(DeltaTable(uri).history(), app_id(contract, path, "v1"))
    assert ref is not None
    assert (ref.version, ref.run_id) == (first["version_after"], "run-1")
    assert (DeltaTable(uri).version(), sorted_rows(uri, ["id"])) == before
    # A new version of the object is a new source.
    third = spark_ingest(spark, path, contract, uri, tmp_path / "r.parquet", version="v2", run_id="run-3")
    assert third["status"] == "committed"
    assert len(read_rows(uri)) == (4 if mode == "append" else 2)


def test_strict_type_change_raises_and_leaves_the_table(spark: Any, tmp_path: Path) -> None:
    uri = str(tmp_path / "items")
    spark_ingest(
        spark,
        write_file(tmp_path / "in", "a.csv", "id,day,amount\n1,2024-01-01,1.00\n"),
        small_contract(),
        uri,
        tmp_path / "r.parquet",
    )
    before = (DeltaTable(uri).version(), sorted_rows(uri, ["id"]))
    drifted = write_file(tmp_path / "in", "b.csv", "id,day,amount\n2,2024-01-02,2.5\n")

    with pytest.raises(errors.SchemaMismatchError) as info:
        spark_ingest(spark, drifted, small_contract(amount="double"), uri, tmp_path / "r.parquet")

    message = str(info.value)
    assert all(part in message for part in ("b.csv", "amount", "decimal(10,2)", "double"))
    assert (DeltaTable(uri).version(), sorted_rows(uri, ["id"])) == before
    extra = write_file(tmp_path / "in", "c.csv", "id,day,amount,coupon\n3,2024-01-03,1.00,X\n")
    with pytest.raises(errors.SchemaMismatchError, match=r"c\.csv.*coupon"):
        spark_ingest(spark, extra, small_contract(), uri, tmp_path / "r.parquet")
    assert (DeltaTable(uri).version(), sorted_rows(uri, ["id"])) == before


def test_overwrite_partitions_and_malformed_lines_identical(spark: Any, tmp_path: Path) -> None:
    contract = small_contract(mode="overwrite_partitions", partitions="[day]")
    first = write_file(
        tmp_path / "in", "a.csv", "id,day,amount\n1,2024-01-01,1.00\n2,2024-01-02,2.00\n3,2024-01-02,3.00\n"
    )
    # Replaces day 2024-01-02 only; one line has too many fields, one too few, one a bad amount.
    second = write_file(
        tmp_path / "in",
        "b.csv",
        'id,day,amount\n4,2024-01-02,4.00\n5,2024-01-02,5,extra\n6,2024-01-02\n7,2024-01-03,"x"\n8,2024-01-03,8\n',
    )
    spark_uri, duck_uri = str(tmp_path / "spark"), str(tmp_path / "duck")
    for n, path in enumerate((first, second)):
        result = spark_ingest(spark, path, contract, spark_uri, tmp_path / f"s{n}.parquet")
        duck = ingest(path, contract, duck_uri, tmp_path / f"w{n}").as_dict()
        same_counts(result, duck)
        assert_same_tables(spark_uri, duck_uri, ["id"])
    assert sorted(r["id"] for r in read_rows(spark_uri)) == [1, 4, 8]
    assert (result["rows_read"], result["rows_rejected"]) == (5, 3)
    got = reject_rows(result["rejects_path"])
    assert [(r[0], r[1]) for r in got] == [(2, None), (None, 3), (None, 4)]  # data rows skip bad lines
    assert "'x' is not a valid decimal(10,2)" in got[0][2]
    assert [r[3] for r in got[1:]] == ["5,2024-01-02,5,extra", "6,2024-01-02"]
    assert [(r[0], r[1]) for r in got] == [(r[0], r[1]) for r in reject_rows(duck["rejects_path"])]


# --- job entry points ----------------------------------------------------------------------------


def _load_script(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_glue_job_writes_its_result_json_and_derived_and_maintenance_run(
    spark: Any, tpch: Path, tmp_path: Path
) -> None:
    lake = tmp_path / "buckets" / "lake"
    obj = {
        "object_id": "orders-abc123",
        "bucket": "landing",
        "key": "orders/orders.csv",
        "etag": "e1",
        "source_version": "e1",
        "ingested_at": INGESTED_AT.isoformat(),
        "app_id": "lakehouse:orders:abc123",
    }

    def manifest_for(run_id: str) -> str:
        manifest = {"run_id": run_id, "dataset": "orders", "table_uri": str(lake / "tables" / "orders")}
        path = lake / "runs" / run_id / "manifest.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**manifest, "objects": [obj]}))
        return str(path)

    result_path = lake / "runs" / "orders-abc123" / "commit.json"
    glue = _load_script(REPO / "jobs" / "glue" / "ingest_large_object.py")
    rejects = tmp_path / "buckets" / "quarantine" / "rows" / "orders" / "rejects.parquet"
    argv = [
        "ingest_large_object.py",
        "--manifest_uri", manifest_for("orders-abc123"),
        "--run_id", "orders-abc123",
        "--datasets_dir", str(REPO / "datasets"),
        "--result_uri", str(result_path),
        "--rejects_uris", json.dumps({"orders-abc123": str(rejects)}),
        "--source_uris", json.dumps({"orders-abc123": str(tpch / "orders.csv")}),
    ]  # fmt: skip
    returned = glue.main(argv)

    written = json.loads(result_path.read_text())
    assert written == returned
    assert written["status"] == "committed"
    assert written["rows_written"] == len(_csv_rows(tpch / "orders.csv"))
    assert {"version_before", "version_after", "rejects_uri", "duration_ms"} <= set(written)
    [row] = read_rows(str(lake / "tables" / "orders"), with_metadata=True)[:1]
    assert row["_source_uri"] == "s3://landing/orders/orders.csv"
    assert row["_ingested_at"] == INGESTED_AT
    # A retried job run (the same run) finds its own commit and resumes; another run is a duplicate.
    retried = glue.main(argv)
    assert (retried["status"], retried["resumed"]) == ("committed", True)
    other = [*argv[:2], manifest_for("orders-def456"), "--run_id", "orders-def456", *argv[5:]]
    duplicate = glue.main(other)
    assert (duplicate["status"], duplicate["duplicate_of"]) == ("duplicate", "orders-abc123")

    derived = _load_script(REPO / "jobs" / "emr" / "refresh_derived.py")
    models_uri = tmp_path / "derived_models.json"  # what scripts/upload_artifacts.sh uploads
    models_uri.write_text(json.dumps(derived_document(ContractRegistry.from_location(REPO / "datasets"))))
    out = derived.main(
        ["--dataset", "orders", "--lake_root", str(lake), "--models_uri", str(models_uri), "--local"]
    )
    gold = str(lake / "derived" / "orders_by_status")
    assert out["orders_by_status"]["uri"] == gold
    by_status = {r["o_orderstatus"]: r for r in DeltaTable(gold).to_pyarrow_table().to_pylist()}
    source = _csv_rows(tpch / "orders.csv")
    assert sum(r["orders"] for r in by_status.values()) == len(source)
    for status, row in by_status.items():
        assert row["revenue"] == sum(
            Decimal(s["o_totalprice"]) for s in source if s["o_orderstatus"] == status
        )
    assert DeltaTable(gold).metadata().configuration.get("delta.enableDeletionVectors") == "false"

    maintain = _load_script(REPO / "jobs" / "emr" / "maintain_table.py")
    report = maintain.main(
        ["--table_uri", str(lake / "tables" / "orders"), "--retention_hours", "0", "--local"]
    )
    assert report["checkpoint_version"] == report["version_after"]
    assert list((lake / "tables" / "orders" / "_delta_log").glob("*.checkpoint.parquet"))
    assert len(read_rows(str(lake / "tables" / "orders"))) == len(source)


def test_spark_available_probe_names_what_it_found() -> None:
    from lakehouse.spark.session import spark_available

    ok, message = spark_available()
    assert ok, message
    assert "delta-spark_2.12-3.3.0.jar" in message
