"""One transformation, several engines (docs/ARCHITECTURE.md, "Facts this design relies on"): the
Athena rendering, transpiled to DuckDB by `athena_to_duckdb`, must give the same results as the DuckDB
rendering, and both must match values worked out by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from lakehouse.contracts import Contract, parse_contract
from lakehouse.sql.checks import compile_checks, evaluate, local_table
from lakehouse.sql.compiler import RunMeta, compile_ingest
from lakehouse.sql.dialects import athena_to_duckdb

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
META = RunMeta("s3://landing/x.csv", "v1", datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC), "run-1")


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def as_text(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[object, ...]]:
    return con.execute(f"SELECT CAST(COLUMNS(*) AS VARCHAR) FROM ({sql}) ORDER BY _row").fetchall()


# --- the ingest transform ------------------------------------------------------------------------

CSV_VECTORS = sorted(p.parent.name for p in VECTORS.glob("*/input.csv"))


@pytest.mark.parametrize("name", CSV_VECTORS)
def test_transform_athena_equals_duckdb(name: str) -> None:
    folder = VECTORS / name
    contract = parse_contract((folder / "contract.yaml").read_text(), name)
    spec = contract.format
    con = connect()
    names = "" if spec.header else f", names={[c.source_name for c in contract.columns]!r}"
    con.execute(
        "CREATE TABLE src AS SELECT *, row_number() OVER () AS _row FROM read_csv("
        f"'{folder / 'input.csv'}', all_varchar=true, header={str(spec.header).lower()}, "
        f"delim={sql_text(spec.delimiter)}, quote={sql_text(spec.quote)}, escape={sql_text(spec.quote)}, "
        f"nullstr={list(spec.null_markers)!r}, ignore_errors=true{names})"
    )
    header = [r[0] for r in con.execute("DESCRIBE src").fetchall() if r[0] != "_row"]
    plan = compile_ingest(contract, header, META)

    native = as_text(con, plan.sql("duckdb"))
    via_athena = as_text(con, athena_to_duckdb(plan.sql("athena")))

    assert native, "the vector has rows"
    assert via_athena == native


def test_transform_equivalence_covers_rescue_and_reasons() -> None:
    """A hand-made source exercising every rule kind, casts and the rescued JSON."""
    contract = parse_contract(
        """
name: t
landing_prefix: t/
format: {type: csv}
columns:
  - {name: id, type: bigint, nullable: false}
  - {name: ts, type: timestamp}
  - {name: amount, type: "decimal(6,2)"}
  - {name: flag, type: boolean}
  - {name: code, type: string}
schema_evolution: rescue
row_rules:
  - {rule: regex, column: code, pattern: '^[A-Z]+$', action: drop}
  - {rule: range, column: amount, min: 0, max: 100}
  - {rule: in_set, column: flag, values: [true]}
""",
        "t.yaml",
    )
    con = connect()
    con.execute(
        "CREATE TABLE src AS SELECT * FROM (VALUES "
        "('1', '2024-03-01T10:00:00+02:00', '12.345', 'true', 'AB', 'x', 1), "
        "('2', 'soon', '-1', 'false', 'ab', NULL, 2), "
        "(NULL, NULL, '1e2', 'maybe', NULL, '\"q\"', 3)) t(id, ts, amount, flag, code, extra, _row)"
    )
    plan = compile_ingest(contract, ["id", "ts", "amount", "flag", "code", "extra"], META)
    native = as_text(con, plan.sql("duckdb"))
    assert as_text(con, athena_to_duckdb(plan.sql("athena"))) == native
    first, second, third = native
    assert first[:5] == ("1", "2024-03-01 08:00:00+00", "12.35", "true", "AB")
    assert json.loads(str(first[5])) == {"extra": "x"}
    assert second[-2] == "quarantine"  # range/in_set/type (quarantine) outrank the regex drop
    # Declared rules first, in order; then the implicit not-null and type rules.
    assert second[-3] == (
        "regex:code: 'ab' does not match ^[A-Z]+$; range:amount: -1.00 is outside [0, 100]; "
        "in_set:flag: 'false' is not one of True; type:ts: 'soon' is not a valid timestamp"
    )
    assert json.loads(str(second[5])) == {"extra": None}  # an empty unknown field is kept as JSON null
    assert third[2] == "100.00"
    assert (
        third[-3]
        == "not_null:id: id is required but empty or missing; type:flag: 'maybe' is not a valid boolean"
    )
    assert json.loads(str(third[5])) == {"extra": '"q"'}


# --- table checks (table scope; batch scope: tests/unit/test_checks_scope.py) ---------------

CHECKS = parse_contract(
    r"""
name: sales
landing_prefix: sales/
format: {type: csv}
columns:
  - {name: id, type: bigint}
  - {name: cust, type: bigint}
  - {name: status, type: string}
  - {name: amount, type: double}
  - {name: code, type: string}
  - {name: qty, type: bigint}
  - {name: seen, type: timestamp}
checks:
  - {name: rows, type: row_count, scope: table}
  - {name: rows_in_run, type: row_count, scope: run}
  - {name: cust_complete, type: completeness, column: cust, scope: table}
  - {name: id_unique, type: uniqueness, column: id, scope: table}
  - {name: id_status_unique, type: uniqueness, columns: [id, status], scope: table}
  - {name: status_known, type: values_in_set, column: status, values: [F, O], scope: table}
  - {name: amount_sane, type: values_in_range, column: amount, range_min: 1, range_max: 100, scope: table}
  - {name: code_shape, type: values_match_regex, column: code, pattern: '^AB-\d$', scope: table}
  - name: cust_exists
    type: referential_integrity
    column: cust
    reference: {dataset: customers, column: cust_id}
    scope: table
  - name: big_amounts
    type: custom_sql
    sql: "SELECT count(*) FROM {table} WHERE amount > 100"
    scope: table
  - {name: mean_qty, type: custom_sql, sql: "SELECT sum(qty) / count(*) FROM {table}", scope: table}
  - {name: fresh, type: freshness, column: seen, scope: table}
""",
    "sales.yaml",
)

# Worked out by hand from the rows below.
EXPECTED_METRICS = {
    "rows": 5.0,
    "rows_in_run": 3.0,  # rows 3, 4, 5 are run r2
    "cust_complete": 0.8,  # 4 of 5 non-null
    "id_unique": 0.8,  # 4 distinct ids / 5 rows
    "id_status_unique": 1.0,  # (1,F) (2,O) (3,O) (4,X) (4,F)
    "status_known": 0.8,  # X is not in {F, O}
    "amount_sane": 0.75,  # of 5, 50, 500, 1 (NULL not counted): 500 is out
    "code_shape": 0.75,  # AB-1, AB-2, AB-4 match; zz does not; NULL not counted
    "cust_exists": 0.75,  # 10, 11, 12 exist; 99 does not; NULL not counted
    "big_amounts": 1.0,  # 500
    "mean_qty": -1.0,  # (7 + 2 - 20 + 1 + 1) / 5 = -9 / 5 → -1 in Trino (truncates toward zero)
    "fresh": 30.0,  # newest `seen` is 30 hours old
}


def _checks_db() -> duckdb.DuckDBPyConnection:
    con = connect()
    con.execute(
        "CREATE TABLE sales AS SELECT * FROM (VALUES "
        "(1::BIGINT, 10::BIGINT, 'F', 5.0::DOUBLE, 'AB-1', 7::BIGINT, 'r1', "
        "now()::TIMESTAMP - INTERVAL 40 HOUR), "
        "(2, 11, 'O', 50.0, 'AB-2', 2, 'r1', now()::TIMESTAMP - INTERVAL 30 HOUR), "
        "(3, NULL, 'O', 500.0, 'zz', -20, 'r2', NULL), "
        "(4, 12, 'X', NULL, NULL, 1, 'r2', now()::TIMESTAMP - INTERVAL 31 HOUR), "
        "(4, 99, 'F', 1.0, 'AB-4', 1, 'r2', now()::TIMESTAMP - INTERVAL 50 HOUR)"
        ") t(id, cust, status, amount, code, qty, _run_id, seen)"
    )
    con.execute("CREATE TABLE customers AS SELECT * FROM (VALUES (10::BIGINT), (11), (12), (13)) t(cust_id)")
    return con


SCHEMA = {
    "sales": {
        "id": "bigint",
        "cust": "bigint",
        "status": "varchar",
        "amount": "double",
        "code": "varchar",
        "qty": "bigint",
        "_run_id": "varchar",
        "seen": "timestamp",
    },
    "customers": {"cust_id": "bigint"},
}


def test_check_metrics_match_hand_computed_values() -> None:
    query = compile_checks(CHECKS, local_table, run_id="r2")
    assert query is not None
    con = _checks_db()
    [row] = con.execute(athena_to_duckdb(query.athena(), SCHEMA)).fetchall()
    metrics = dict(zip([c.name for c in query.checks], row, strict=True))
    for name, expected in EXPECTED_METRICS.items():
        tolerance = 0.01 if name == "fresh" else 1e-9
        assert metrics[name] == pytest.approx(expected, abs=tolerance), name
    assert query.duckdb(SCHEMA) == athena_to_duckdb(query.athena(), SCHEMA)


def test_run_scope_without_run_id_covers_the_table() -> None:
    query = compile_checks(CHECKS, local_table)
    assert query is not None
    [row] = _checks_db().execute(query.duckdb(SCHEMA)).fetchall()
    assert row[1] == 5.0


def test_evaluate_thresholds_on_the_metrics() -> None:
    checks = CHECKS.checks
    results = evaluate(checks, [EXPECTED_METRICS[c.name] for c in checks])
    passed = {r.name: r.passed for r in results}
    # Defaults: row_count ≥ 1; ratios ≥ 1.0; custom_sql ≤ 0; freshness ≤ 24 hours.
    assert passed == {
        "rows": True,
        "rows_in_run": True,
        "cust_complete": False,
        "id_unique": False,
        "id_status_unique": True,
        "status_known": False,
        "amount_sane": False,
        "code_shape": False,
        "cust_exists": False,
        "big_amounts": False,
        "mean_qty": True,
        "fresh": False,
    }
    assert evaluate(checks[:1], [None])[0].passed is False  # a NULL metric fails


def test_contract_without_checks_compiles_to_nothing() -> None:
    contract: Contract = parse_contract(
        "name: n\nlanding_prefix: n/\nformat: {type: csv}\ncolumns: [{name: a, type: int}]\n", "n.yaml"
    )
    assert compile_checks(contract, local_table) is None


# --- the Athena -> DuckDB semantic fixes, against values worked out by hand --------------------------


@pytest.mark.parametrize(
    ("athena_sql", "expected"),
    [
        # date_diff counts whole elapsed units in Trino (DuckDB's date_diff counts boundaries crossed).
        ("date_diff('day', TIMESTAMP '2024-01-01 23:00:00', TIMESTAMP '2024-01-02 01:00:00')", 0),
        ("date_diff('day', TIMESTAMP '2024-01-01 01:00:00', TIMESTAMP '2024-01-03 00:59:59')", 1),
        ("date_diff('hour', TIMESTAMP '2024-01-01 10:59:00', TIMESTAMP '2024-01-01 11:58:00')", 0),
        ("date_diff('hour', TIMESTAMP '2024-01-01 10:30:00', TIMESTAMP '2024-01-01 08:00:00')", -2),
        ("date_diff('month', DATE '2024-01-15', DATE '2024-02-14')", 0),
        ("date_diff('month', DATE '2024-01-15', DATE '2024-02-15')", 1),
        ("date_diff('year', DATE '2023-06-15', DATE '2024-06-14')", 0),
        ("date_diff('year', DATE '2023-06-15', DATE '2025-06-15')", 2),
        ("date_diff('second', TIMESTAMP '2024-01-01 00:00:00.900', TIMESTAMP '2024-01-01 00:00:01.100')", 0),
        # regexp_extract: NULL when nothing matches (DuckDB alone gives '').
        ("regexp_extract('abc', '\\d+')", None),
        ("regexp_extract('ab12c', '\\d+')", "12"),
        ("regexp_extract('a1b22', '(\\d)(\\d)', 2)", "2"),
        ("regexp_extract(CAST(NULL AS varchar), 'a')", None),
        # bigint / bigint truncates toward zero (DuckDB's / gives a double, its // floors).
        ("7 / 2", 3),
        ("-7 / 2", -3),
        ("7 / -2", -3),
        ("-7 / -2", 3),
        ("1 / 3", 0),
        ("7.0 / 2", 3.5),
        ("CAST(7 AS double) / 2", 3.5),
    ],
)
def test_athena_semantics_on_duckdb(athena_sql: str, expected: object) -> None:
    [(value,)] = connect().execute(athena_to_duckdb(f"SELECT {athena_sql}")).fetchall()
    if isinstance(expected, float):
        assert value == pytest.approx(expected)
    else:
        assert value == expected
        assert type(value) is type(expected)


def test_bigint_column_division_needs_the_schema() -> None:
    con = connect()
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES (-7::BIGINT, 2::BIGINT), (9, -4), (5, 5)) v(a, b)")
    sql = "SELECT a / b AS q FROM t ORDER BY a"
    with_schema = con.execute(athena_to_duckdb(sql, {"t": {"a": "bigint", "b": "bigint"}})).fetchall()
    assert with_schema == [(-3,), (1,), (-2,)]  # -3.5 → -3, 1 → 1, -2.25 → -2
    doubles = {"t": {"a": "double", "b": "double"}}
    assert con.execute(athena_to_duckdb(sql, doubles)).fetchall() == [(-3.5,), (1.0,), (-2.25,)]
