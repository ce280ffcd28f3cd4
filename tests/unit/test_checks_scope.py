"""Check scopes: batch checks measure the committing run's rows (uniqueness and referential integrity
against the whole table / the reference table), table checks the whole table; each metric is computed by
the compiled Athena SQL executed on DuckDB and compared with values worked out by hand."""

from __future__ import annotations

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from lakehouse.contracts.loader import parse_contract
from lakehouse.contracts.model import TableCheck
from lakehouse.sql.checks import checks_in_scope, compile_checks, evaluate, local_table, missing_references
from lakehouse.sql.dialects import athena_to_duckdb

CONTRACT = parse_contract(
    r"""
name: sales
landing_prefix: sales/
format: {type: csv}
columns:
  - {name: id, type: bigint}
  - {name: cust, type: bigint}
  - {name: status, type: string}
  - {name: amount, type: double}
checks:
  - {name: rows, type: row_count}
  - {name: id_unique, type: uniqueness, column: id}
  - {name: id_status_unique, type: uniqueness, columns: [id, status]}
  - name: cust_exists
    type: referential_integrity
    column: cust
    reference: {dataset: customers, column: cust_id}
  - {name: amount_complete, type: completeness, column: amount}
  - {name: big, type: custom_sql, sql: "SELECT count(*) FROM {table} WHERE amount > 100"}
  - {name: big_aliased, type: custom_sql, sql: "SELECT count(*) FROM {table} s WHERE s.amount > 100"}
  - {name: big_anywhere, type: custom_sql, sql: "SELECT count(*) FROM {full_table} WHERE amount > 100"}
  - {name: all_rows, type: row_count, scope: table}
  - {name: all_unique, type: uniqueness, column: id, scope: table}
  - name: all_cust_exist
    type: referential_integrity
    column: cust
    reference: {dataset: customers, column: cust_id}
    scope: table
""",
    "sales.yaml",
)

# Run r1 is the table before the batch; r2 is the batch being checked.
ROWS = [
    (1, 10, "F", 5.0, "r1"),
    (2, 11, "F", 5.0, "r1"),
    (3, 99, "O", 500.0, "r1"),  # an old row whose customer does not exist: not the batch's business
    (4, 12, "O", 5.0, "r2"),  # new key, once: unique
    (2, 10, "O", 5.0, "r2"),  # key 2 already exists (r1): not unique; (2, 'O') is new: unique
    (6, 13, "F", None, "r2"),  # key 6 twice inside the batch: both rows not unique
    (6, 10, "O", 200.0, "r2"),
    (7, 98, None, 5.0, "r2"),  # customer 98 does not exist
]


def _db(rows: list[tuple[object, ...]] = ROWS) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE sales (id BIGINT, cust BIGINT, status VARCHAR, amount DOUBLE, _run_id VARCHAR)")
    con.executemany("INSERT INTO sales VALUES (?, ?, ?, ?, ?)", rows)
    con.execute("CREATE TABLE customers AS SELECT * FROM (VALUES (10::BIGINT), (11), (12), (13)) t(cust_id)")
    return con


def _metrics(con: duckdb.DuckDBPyConnection, **kwargs: object) -> dict[str, float | None]:
    query = compile_checks(CONTRACT, local_table, **kwargs)  # type: ignore[arg-type]
    assert query is not None
    [row] = con.execute(athena_to_duckdb(query.athena())).fetchall()
    return dict(zip([c.name for c in query.checks], row, strict=True))


def test_scope_defaults_to_batch_and_run_is_a_synonym() -> None:
    assert TableCheck(name="a", type="row_count").scope == "batch"
    assert TableCheck(name="a", type="row_count", scope="run").scope == "batch"  # type: ignore[arg-type]
    assert TableCheck(name="a", type="row_count", scope="table").scope == "table"
    with pytest.raises(ValueError, match="scope"):
        TableCheck(name="a", type="row_count", scope="partition")  # type: ignore[arg-type]


def test_batch_checks_measure_the_batch_against_the_table() -> None:
    metrics = _metrics(_db(), run_id="r2", scope="batch")
    assert set(metrics) == {c.name for c in CONTRACT.checks if c.scope == "batch"}
    assert metrics == pytest.approx(
        {
            "rows": 5.0,
            # keys 4 and 7 occur once in the table; 2 collides with r1's row; 6 repeats inside the batch
            "id_unique": 2 / 5,
            # (4,O) (2,O) (6,F) (6,O) occur once in the table; (7,NULL) has a NULL key: not unique
            "id_status_unique": 4 / 5,
            "cust_exists": 4 / 5,  # 98 is missing; r1's missing 99 does not count
            "amount_complete": 4 / 5,
            "big": 1.0,  # 200; r1's 500 is not in the batch
            "big_aliased": 1.0,
            "big_anywhere": 2.0,  # {full_table} is the whole table in either scope
        }
    )


def test_table_checks_measure_the_whole_table() -> None:
    metrics = _metrics(_db(), scope="table")
    assert metrics == pytest.approx({"all_rows": 8.0, "all_unique": 6 / 8, "all_cust_exist": 6 / 8})


def test_a_new_key_equal_to_an_existing_key_fails_uniqueness() -> None:
    rows = [(1, 10, "F", 5.0, "r1"), (2, 11, "F", 5.0, "r1"), (1, 12, "O", 5.0, "r3")]
    metrics = _metrics(_db(rows), run_id="r3", scope="batch")
    assert metrics["id_unique"] == 0.0
    [result] = evaluate([CONTRACT.checks[1]], [metrics["id_unique"]])
    assert result.passed is False
    # The same batch with a key the table lacks passes, whatever the rest of the table holds.
    rows = [(1, 10, "F", 5.0, "r1"), (1, 11, "F", 5.0, "r1"), (8, 12, "O", 5.0, "r3")]
    assert _metrics(_db(rows), run_id="r3", scope="batch")["id_unique"] == 1.0


def test_a_null_key_is_not_unique_in_batch_scope() -> None:
    rows = [(1, 10, "F", 5.0, "r1"), (2, 10, None, 5.0, "r3"), (5, 10, "O", 5.0, "r3")]
    metrics = _metrics(_db(rows), run_id="r3", scope="batch")
    assert metrics["id_status_unique"] == 0.5  # (2, NULL) has no key value; (5, 'O') is new


def test_referential_integrity_ignores_older_bad_rows() -> None:
    rows = [
        (1, 99, "F", 5.0, "r1"),
        (2, 98, "F", 5.0, "r1"),
        (3, 10, "O", 5.0, "r3"),
        (4, None, "O", 5.0, "r3"),
    ]
    metrics = _metrics(_db(rows), run_id="r3", scope="batch")
    assert metrics["cust_exists"] == 1.0  # 10 exists; NULL is not a reference
    assert _metrics(_db(rows), scope="table")["all_cust_exist"] == pytest.approx(1 / 3)


def test_empty_batch_has_zero_rows_and_nothing_to_violate() -> None:
    metrics = _metrics(_db(), run_id="nobody", scope="batch")
    assert metrics["rows"] == 0.0
    assert metrics["id_unique"] == 1.0
    assert metrics["cust_exists"] == 1.0


def _columns(sql: str) -> set[str]:
    return {c.name for c in sqlglot.parse_one(sql, read="athena").find_all(exp.Column)}


def test_batch_uniqueness_and_references_read_only_the_key_columns() -> None:
    contract = CONTRACT.model_copy(update={"checks": (CONTRACT.checks[1], CONTRACT.checks[3])})
    for check in contract.checks:
        query = compile_checks(
            contract.model_copy(update={"checks": (check,)}), local_table, "r2", scope="batch"
        )
        assert query is not None
        sql = query.athena()
        assert "*" not in sql.replace("COUNT(*)", "")  # no SELECT *
        names = _columns(sql) - {"n", "k"}  # the query's own aliases
        assert names == ({"id", "_run_id"} if check.type == "uniqueness" else {"cust", "cust_id", "_run_id"})


def test_scopes_split_the_checks_and_batch_needs_a_run_id() -> None:
    assert [c.name for c in checks_in_scope(CONTRACT, "table")] == [
        "all_rows",
        "all_unique",
        "all_cust_exist",
    ]
    assert len(checks_in_scope(CONTRACT, None)) == len(CONTRACT.checks)
    with pytest.raises(ValueError, match="run id"):
        compile_checks(CONTRACT, local_table, scope="batch")
    only_batch = CONTRACT.model_copy(update={"checks": checks_in_scope(CONTRACT, "batch")})
    assert compile_checks(only_batch, local_table, scope="table") is None
    assert missing_references(CONTRACT, {"sales"}, "table") == {"all_cust_exist": "customers"}


def test_the_athena_sql_parses_back() -> None:
    for scope, run_id in (("batch", "r2"), ("table", None)):
        query = compile_checks(CONTRACT, local_table, run_id=run_id, scope=scope)  # type: ignore[arg-type]
        assert query is not None
        assert sqlglot.parse_one(query.athena(), read="athena") is not None
