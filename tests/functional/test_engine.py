"""The DuckDB + delta-rs engine on local tables: shared vectors, TPC-H, duplicates, merges, drift, rules."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pytest
from deltalake import DeltaTable
from engine_helpers import (
    app_id,
    assert_rows_equal,
    ingest,
    load_vector,
    meta_for,
    read_rows,
    sha256,
    table_version,
    vector_names,
)

from lakehouse import errors
from lakehouse.contracts import Contract, load_contract, parse_contract

REPO = Path(__file__).resolve().parents[2]
TPCHGEN = Path(sys.executable).parent / "tpchgen-cli"


# --- shared vectors ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", vector_names())
def test_vector(name: str, tmp_path: Path) -> None:
    vector = load_vector(name)
    expected = vector.expected
    uri = str(tmp_path / "tables" / vector.contract.name)
    before = sha256(vector.input)
    if expected["status"] == "error":
        error = getattr(errors, expected["error"])
        with pytest.raises(error) as info:
            ingest(vector.input, vector.contract, uri, tmp_path / "work")
        assert type(info.value).__name__ == expected["error"]
        assert vector.input.name in str(info.value)
        assert not (tmp_path / "tables" / vector.contract.name / "_delta_log").exists()
        assert sha256(vector.input) == before
        return

    result = ingest(vector.input, vector.contract, uri, tmp_path / "work")
    assert result.status == expected["status"]
    assert (result.rows_written, result.rows_rejected, result.rows_dropped) == (
        expected["rows_written"],
        expected["rows_rejected"],
        expected["rows_dropped"],
    )
    assert_rows_equal(read_rows(uri), expected)
    assert sha256(vector.input) == before

    rejects = expected.get("rejects", [])
    if rejects:
        assert result.rejects_path is not None
        found = duckdb.sql(f"SELECT source_row, reason FROM read_parquet('{result.rejects_path}')").fetchall()
        reasons: dict[int, str] = dict(found)
        assert len(reasons) == expected["rows_rejected"]
        for item in rejects:
            assert item["reason_contains"] in reasons[item["row"]], (item, reasons.get(item["row"]))
    else:
        assert result.rejects_path is None


def test_every_vector_has_the_documented_layout() -> None:
    names = vector_names()
    assert len(names) >= 12
    for name in names:
        vector = load_vector(name)
        assert set(vector.expected) >= {
            "status",
            "error",
            "rows_written",
            "rows_rejected",
            "rows_dropped",
            "key",
            "rows",
        }
        assert vector.expected["status"] in ("committed", "error")
        assert (vector.expected["error"] is None) == (vector.expected["status"] == "committed")
        assert vector.input.stat().st_size < 50 * 1024
        assert vector.expected["key"], name
        for row in vector.expected["rows"]:
            assert all(k in row for k in vector.expected["key"]), (name, row)


# --- helpers -------------------------------------------------------------------------------------

SMALL = """
name: items
landing_prefix: items/
format: {{type: csv}}
columns:
  - {{name: id, type: int, nullable: false}}
  - {{name: name, type: string}}
  - {{name: amount, type: "{amount}"}}
primary_key: [id]
write_mode: {mode}
schema_evolution: {evolution}
{extra}
"""


def small_contract(
    mode: str = "append", evolution: str = "strict", amount: str = "decimal(10,2)", extra: str = ""
) -> Contract:
    return parse_contract(
        SMALL.format(mode=mode, evolution=evolution, amount=amount, extra=extra), "items.yaml"
    )


def write_file(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def snapshot(uri: str) -> tuple[int, list[dict[str, object]]]:
    """Version and full content (metadata included), to prove a failed run changed nothing."""
    rows = read_rows(uri, with_metadata=True)
    return table_version(uri), sorted(rows, key=lambda r: sorted((k, str(v)) for k, v in r.items()))


# --- TPC-H ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tpch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tpch")
    for table in ("orders", "lineitem"):
        subprocess.run([str(TPCHGEN), "csv", "-s", "0.01", "-T", table, "-o", str(out)], check=True)
    return out


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_tpch_lineitem_append_partitioned(tpch: Path, tmp_path: Path) -> None:
    contract = load_contract(REPO / "datasets" / "lineitem.yaml")
    source = tpch / "lineitem.csv"
    lines = _csv_rows(source)
    uri = str(tmp_path / "lineitem")

    result = ingest(source, contract, uri, tmp_path / "work")

    assert (result.status, result.rows_read, result.rows_written, result.rows_rejected) == (
        "committed",
        len(lines),
        len(lines),
        0,
    )
    assert result.version_before == -1
    table = DeltaTable(uri)
    assert table.metadata().partition_columns == ["l_shipmode"]
    dirs = {unquote(Path(f).parent.name) for f in table.file_uris()}
    assert dirs == {f"l_shipmode={m}" for m in {r["l_shipmode"] for r in lines}}
    rows = read_rows(uri)
    assert len(rows) == len(lines)
    assert sum(r["l_extendedprice"] for r in rows) == sum(Decimal(r["l_extendedprice"]) for r in lines)
    assert {r["l_shipmode"] for r in rows} == {r["l_shipmode"] for r in lines}
    assert min(r["l_shipdate"] for r in rows).isoformat() == min(r["l_shipdate"] for r in lines)
    # Appending a second object (another version of the key) adds the rows again: append is not a merge.
    again = ingest(source, contract, uri, tmp_path / "work2", version="v2")
    assert again.status == "committed"
    assert len(read_rows(uri)) == 2 * len(lines)


@pytest.mark.slow
def test_tpch_orders_merge_then_update(tpch: Path, tmp_path: Path) -> None:
    contract = load_contract(REPO / "datasets" / "orders.yaml")
    source = tpch / "orders.csv"
    lines = _csv_rows(source)
    uri = str(tmp_path / "orders")

    first = ingest(source, contract, uri, tmp_path / "w1")
    assert (first.status, first.rows_written, first.rows_rejected, first.rows_dropped) == (
        "committed",
        len(lines),
        0,
        0,
    )

    # A second file: 100 existing orders with new prices and statuses, and 10 new orders.
    changed = lines[100:200]
    header = list(lines[0])
    update = tmp_path / "landing" / "orders-update.csv"
    update.parent.mkdir()
    new_keys = [10_000_000 + i for i in range(10)]
    with update.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        for row in changed:
            writer.writerow(
                {
                    **row,
                    "o_totalprice": str(Decimal(row["o_totalprice"]) + Decimal("1.01")),
                    "o_orderstatus": "P",
                }
            )
        for key in new_keys:
            writer.writerow({**lines[0], "o_orderkey": str(key)})

    second = ingest(update, contract, uri, tmp_path / "w2")
    assert (second.status, second.rows_written) == ("committed", 110)
    assert second.version_after == first.version_after + 1

    rows = {r["o_orderkey"]: r for r in read_rows(uri)}
    assert len(rows) == len(lines) + 10
    for row in changed:
        got = rows[int(row["o_orderkey"])]
        assert got["o_totalprice"] == Decimal(row["o_totalprice"]) + Decimal("1.01")
        assert got["o_orderstatus"] == "P"
    untouched = lines[300]
    assert rows[int(untouched["o_orderkey"])]["o_totalprice"] == Decimal(untouched["o_totalprice"])
    for key in new_keys:
        assert rows[key]["o_custkey"] == int(lines[0]["o_custkey"])


# --- exactly once --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_same_file_twice_is_a_duplicate(mode: str, tmp_path: Path) -> None:
    contract = small_contract(mode=mode)
    path = write_file(tmp_path / "in", "a.csv", "id,name,amount\n1,a,1.00\n2,b,2.00\n")
    uri = str(tmp_path / "items")
    first = ingest(path, contract, uri, tmp_path / "w1")
    assert (first.status, first.rows_written) == ("committed", 2)
    before = snapshot(uri)

    second = ingest(path, contract, uri, tmp_path / "w2", run_id="run-2")

    assert second.status == "duplicate"
    assert second.duplicate_of == "run-1"
    assert second.rows_written == 0
    assert second.version_before == second.version_after == first.version_after
    assert snapshot(uri) == before
    # The same run again (a retry after a crash): its own commit, so it resumes and adds nothing.
    retried = ingest(path, contract, uri, tmp_path / "w4")
    assert (retried.status, retried.resumed, retried.rows_written) == ("committed", True, 2)
    assert (retried.version_before, retried.version_after) == (first.version_after - 1, first.version_after)
    assert snapshot(uri) == before
    # A new version of the object is a new source: it is applied (append adds, merge upserts).
    third = ingest(path, contract, uri, tmp_path / "w3", version="v2", run_id="run-3")
    assert third.status == "committed"
    assert len(read_rows(uri)) == (4 if mode == "append" else 2)


def test_a_rerun_commits_the_object_once_more_with_the_next_transaction_version(tmp_path: Path) -> None:
    from lakehouse.duckdb_engine.ingest import ingest_file

    contract = small_contract()
    path = write_file(tmp_path / "in", "a.csv", "id,name,amount\n1,a,1.00\n")
    uri = str(tmp_path / "items")
    ingest(path, contract, uri, tmp_path / "w1")
    app = app_id(contract, path, "v1")
    assert ingest(path, contract, uri, tmp_path / "w2", run_id="dup").status == "duplicate"

    def rerun(run_id: str, work: str) -> str:
        return ingest_file(
            path, contract, uri, meta_for(path, run_id, "v1"), app_id=app, work_dir=tmp_path / work,
            txn_version=2,
        ).status  # fmt: skip

    assert rerun("rerun-2", "w3") == "committed"
    assert rerun("rerun-2", "w4") == "committed"  # resumed: its own commit
    assert rerun("other", "w5") == "duplicate"
    assert DeltaTable(uri).transaction_version(app) == 2
    assert len(read_rows(uri)) == 2


def test_metadata_columns_are_stamped(tmp_path: Path) -> None:
    contract = small_contract()
    path = write_file(tmp_path / "in", "a.csv", "id,name,amount\n1,a,1.00\n")
    uri = str(tmp_path / "items")
    ingest(path, contract, uri, tmp_path / "w", version="etag-123", run_id="run-xyz")
    [row] = read_rows(uri, with_metadata=True)
    assert row["_source_uri"] == path.resolve().as_uri()
    assert row["_source_version"] == "etag-123"
    assert row["_run_id"] == "run-xyz"
    assert row["_ingested_at"].isoformat() == "2026-11-01T12:00:00+00:00"
    assert DeltaTable(uri).history(1)[0]["lakehouse.run_id"] == "run-xyz"


# --- schema drift --------------------------------------------------------------------------------


def test_strict_extra_column_names_it_and_leaves_the_table(tmp_path: Path) -> None:
    contract = small_contract()
    uri = str(tmp_path / "items")
    ingest(write_file(tmp_path / "in", "a.csv", "id,name,amount\n1,a,1.00\n"), contract, uri, tmp_path / "w1")
    before = snapshot(uri)
    drifted = write_file(tmp_path / "in", "b.csv", "id,name,amount,coupon\n2,b,2.00,X1\n")

    with pytest.raises(errors.SchemaMismatchError) as info:
        ingest(drifted, contract, uri, tmp_path / "w2")

    message = str(info.value)
    assert "b.csv" in message
    assert "coupon" in message
    assert "strict" in message
    assert snapshot(uri) == before


def test_strict_type_change_names_column_and_both_types(tmp_path: Path) -> None:
    uri = str(tmp_path / "items")
    ingest(
        write_file(tmp_path / "in", "a.csv", "id,name,amount\n1,a,1.00\n"),
        small_contract(),
        uri,
        tmp_path / "w1",
    )
    before = snapshot(uri)
    changed = small_contract(amount="double")

    with pytest.raises(errors.SchemaMismatchError) as info:
        ingest(
            write_file(tmp_path / "in", "b.csv", "id,name,amount\n2,b,2.5\n"), changed, uri, tmp_path / "w2"
        )

    message = str(info.value)
    assert "b.csv" in message
    assert "amount" in message
    assert "decimal(10,2)" in message
    assert "double" in message
    assert snapshot(uri) == before


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_add_columns_adds_a_string_column_old_rows_null(mode: str, tmp_path: Path) -> None:
    contract = small_contract(mode=mode, evolution="add_columns")
    uri = str(tmp_path / "items")
    ingest(
        write_file(tmp_path / "in", "a.csv", "id,name,amount\n1,a,1.00\n2,b,2.00\n"),
        contract,
        uri,
        tmp_path / "w",
    )
    result = ingest(
        write_file(tmp_path / "in", "b.csv", "id,name,amount,channel\n3,c,3.00,web\n2,b2,2.50,42\n"),
        contract,
        uri,
        tmp_path / "w2",
    )
    assert result.added_columns == ["channel"]
    rows = {r["id"]: r for r in read_rows(uri) if mode == "merge" or r["name"] != "b"}
    assert rows[1]["channel"] is None
    assert rows[3]["channel"] == "web"
    assert rows[2]["channel"] == "42"  # kept as text
    assert rows[2]["name"] == "b2"
    columns = {f.name: f.type.type for f in DeltaTable(uri).schema().fields}
    assert columns["channel"] == "string"
    # A later file without the new column: the column stays, its rows are NULL there.
    ingest(write_file(tmp_path / "in", "c.csv", "id,name,amount\n4,d,4.00\n"), contract, uri, tmp_path / "w3")
    assert {r["id"]: r["channel"] for r in read_rows(uri)}[4] is None


def test_rescue_keeps_unknown_fields_as_json(tmp_path: Path) -> None:
    contract = small_contract(evolution="rescue")
    uri = str(tmp_path / "items")
    ingest(write_file(tmp_path / "in", "a.csv", "id,name,amount\n1,a,1.00\n"), contract, uri, tmp_path / "w")
    ingest(
        write_file(tmp_path / "in", "b.csv", 'id,promo,name,amount,note\n2,SPRING,b,2.00,"x, y"\n'),
        contract,
        uri,
        tmp_path / "w2",
    )
    rows = {r["id"]: r for r in read_rows(uri)}
    assert rows[1]["_rescued"] is None
    assert json.loads(rows[2]["_rescued"]) == {"promo": "SPRING", "note": "x, y"}
    assert "promo" not in rows[2]
    assert rows[2]["name"] == "b"


@pytest.mark.parametrize("evolution", ["add_columns", "rescue"])
def test_missing_columns_outside_strict(evolution: str, tmp_path: Path) -> None:
    contract = small_contract(evolution=evolution)
    uri = str(tmp_path / "items")
    result = ingest(write_file(tmp_path / "in", "a.csv", "id,name\n1,a\n"), contract, uri, tmp_path / "w")
    assert result.rows_written == 1
    assert read_rows(uri)[0]["amount"] is None
    # A required column cannot be missing under any policy.
    with pytest.raises(errors.SchemaMismatchError, match=r"b\.csv.*required.*\bid\b"):
        ingest(write_file(tmp_path / "in", "b.csv", "name,amount\nb,2.00\n"), contract, uri, tmp_path / "w2")


# --- row rule actions ----------------------------------------------------------------------------

RULED = """
row_rules:
  - {{rule: range, column: amount, min: 0, action: {action}}}
"""


def test_drop_rows_are_neither_written_nor_quarantined(tmp_path: Path) -> None:
    contract = small_contract(extra=RULED.format(action="drop"))
    uri = str(tmp_path / "items")
    path = write_file(tmp_path / "in", "a.csv", "id,name,amount\n1,a,1.00\n2,b,-1.00\n3,c,0\n")
    result = ingest(path, contract, uri, tmp_path / "w")
    assert (result.rows_written, result.rows_dropped, result.rows_rejected) == (2, 1, 0)
    assert result.rejects_path is None
    assert sorted(r["id"] for r in read_rows(uri)) == [1, 3]


def test_quarantine_rows_go_to_rejects_with_reason_and_row(tmp_path: Path) -> None:
    contract = small_contract(extra=RULED.format(action="quarantine"))
    uri = str(tmp_path / "items")
    path = write_file(tmp_path / "in", "a.csv", "id,name,amount\n1,a,1.00\n2,b,-1.00\n3,c,2\n4,d,-0.5\n")
    result = ingest(path, contract, uri, tmp_path / "w")
    assert (result.rows_written, result.rows_dropped, result.rows_rejected) == (2, 0, 2)
    assert result.rejects_path is not None
    rejects = duckdb.sql(
        f"SELECT source_row, reason FROM read_parquet('{result.rejects_path}') ORDER BY 1"
    ).fetchall()
    assert rejects == [
        (2, "range:amount: -1.00 is outside [0, ]"),
        (4, "range:amount: -0.50 is outside [0, ]"),
    ]
    assert sorted(r["id"] for r in read_rows(uri)) == [1, 3]


def test_fail_rule_raises_and_leaves_the_table(tmp_path: Path) -> None:
    contract = small_contract(extra=RULED.format(action="fail"))
    uri = str(tmp_path / "items")
    ingest(write_file(tmp_path / "in", "a.csv", "id,name,amount\n1,a,1.00\n"), contract, uri, tmp_path / "w")
    before = snapshot(uri)
    bad = write_file(tmp_path / "in", "b.csv", "id,name,amount\n2,b,2.00\n3,c,-3.00\n4,d,-4\n")

    with pytest.raises(errors.RowRuleViolationError) as info:
        ingest(bad, contract, uri, tmp_path / "w2")

    message = str(info.value)
    assert "b.csv" in message
    assert "2 row(s)" in message
    assert "data row 2" in message
    assert "-3.00 is outside [0, ]" in message
    assert snapshot(uri) == before
