"""A referential check against a table that does not exist yet fails alone, at its own severity."""

from __future__ import annotations

from pathlib import Path

import duckdb

from lakehouse.contracts import load_contract
from lakehouse.sql.checks import compile_checks, evaluate, local_table

ROOT = Path(__file__).resolve().parents[2]


def test_missing_reference_table_gives_a_null_metric_not_a_query_error() -> None:
    contract = load_contract(ROOT / "datasets" / "lineitem.yaml")
    query = compile_checks(contract, local_table, run_id="r1", available={"lineitem"})
    assert query is not None
    assert '"orders"' not in query.athena()  # the missing table is never referenced
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE lineitem AS SELECT 1::BIGINT AS l_orderkey, 1 AS l_linenumber, 'AIR' AS l_shipmode, "
        "5.0 AS l_quantity, 'r1' AS _run_id"
    )
    row = con.execute(query.duckdb()).fetchall()[0]
    results = {r.name: r for r in evaluate(contract.checks, list(row))}
    assert results["orders_exist"].metric is None
    assert results["orders_exist"].passed is False
    assert results["orders_exist"].severity == "warn"  # a warning: the run still passes
    assert all(r.passed for name, r in results.items() if name != "orders_exist")


def test_reference_is_queried_when_its_table_exists() -> None:
    contract = load_contract(ROOT / "datasets" / "lineitem.yaml")
    query = compile_checks(contract, local_table, run_id="r1", available={"lineitem", "orders"})
    assert query is not None
    assert '"orders"' in query.athena()
