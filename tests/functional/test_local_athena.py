"""Local Athena reads Delta tables with DuckDB's own Parquet reader, in bounded memory.

The tables' rows must be exactly deltalake's (active files from the log, partition values from the add
actions, columns added later read as NULL), no table goes through Arrow (a large table's checks would
otherwise hold it in the executor's memory), and every query keeps to the engine's memory limit, spilling
to a scratch folder.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse import workdirs
from lakehouse.local.athena import LocalQueryEngine, delta_dataset
from lakehouse.settings import Settings
from lakehouse.stages.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
SHIP_MODES = ["REG AIR", "a/b", "50%", "it's", "=x", None]


def _runtime(home: Path, **env: str) -> Runtime:
    return Runtime.create(
        Settings(LAKEHOUSE_BACKEND="local", LAKEHOUSE_HOME=home, DATASETS_DIR=ROOT / "datasets", **env)
    )


def _batch(first: int, rows: int) -> pa.Table:
    keys = list(range(first, first + rows))
    return pa.table(
        {
            "l_orderkey": pa.array(keys, pa.int64()),
            "l_quantity": pa.array([Decimal(k % 50) + Decimal("0.25") for k in keys], pa.decimal128(15, 2)),
            "l_shipdate": pa.array([date(2024, 1, 1 + k % 28) for k in keys], pa.date32()),
            "_ingested_at": pa.array(
                [datetime(2024, 1, 1, k % 24, tzinfo=UTC) for k in keys], pa.timestamp("us", tz="UTC")
            ),
            "l_shipmode": pa.array([SHIP_MODES[k % len(SHIP_MODES)] for k in keys], pa.string()),
        }
    )


@pytest.fixture
def evolved_table(tmp_path: Path) -> tuple[Runtime, str]:
    """lineitem, partitioned by awkward ship modes: two appends, a column added, rows deleted."""
    rt = _runtime(tmp_path / "home")
    uri = rt.table_uri("lineitem")
    write_deltalake(uri, _batch(0, 60), partition_by=["l_shipmode"])
    later = _batch(60, 60).append_column("l_comment", pa.array([f"c{k}" for k in range(60)], pa.string()))
    write_deltalake(uri, later, mode="append", schema_mode="merge")
    DeltaTable(uri).delete("l_orderkey % 7 = 0")  # rewrites files: the old ones stay on disk, inactive
    return rt, uri


def _via_dataset(uri: str, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The same query through deltalake's pyarrow dataset: what the tables read as before."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("__d", delta_dataset(uri))
    con.execute('CREATE VIEW lineitem AS SELECT * FROM "__d"')
    relation = con.sql(sql)
    return [str(t) for t in relation.types], relation.fetchall()


def test_native_reads_give_deltalakes_rows_and_types(evolved_table: tuple[Runtime, str]) -> None:
    rt, uri = evolved_table
    sql = "SELECT * FROM lineitem ORDER BY l_orderkey"
    result = LocalQueryEngine(rt).query(sql)
    expected_types, expected_rows = _via_dataset(uri, sql)
    assert [(c, t) for c, t in zip(result.columns, result.types, strict=True)] == list(
        zip([f.name for f in DeltaTable(uri).schema().fields], expected_types, strict=True)
    )
    assert result.rows == expected_rows
    assert len(result.rows) == 120 - len(range(0, 120, 7))
    by_mode = {r[0]: r[1] for r in LocalQueryEngine(rt).query(
        "SELECT l_shipmode, count(*) FROM lakehouse.lineitem GROUP BY 1").rows}  # fmt: skip
    assert set(by_mode) == set(SHIP_MODES)  # partition values exactly, NULL included
    old_rows = LocalQueryEngine(rt).query("SELECT count(*) FROM lineitem WHERE l_comment IS NULL").rows
    assert old_rows == [(60 - len(range(0, 60, 7)),)]  # files from before the column read it as NULL


def test_local_tables_never_go_through_arrow(
    evolved_table: tuple[Runtime, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check over a large table must not hold it in Arrow: no deltalake dataset or table conversion."""
    rt, _ = evolved_table

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a local table went through Arrow")

    monkeypatch.setattr(DeltaTable, "to_pyarrow_dataset", refuse)
    monkeypatch.setattr(DeltaTable, "to_pyarrow_table", refuse)
    engine = LocalQueryEngine(rt)
    assert engine.query("SELECT count(*) FROM lineitem").rows == [(120 - len(range(0, 120, 7)),)]
    grouped = engine.query("SELECT count(*) FROM (SELECT 1 FROM lineitem GROUP BY l_orderkey) AS g").rows
    assert grouped == [(120 - len(range(0, 120, 7)),)]


def test_queries_keep_to_the_memory_limit_and_spill_to_a_scratch_folder(tmp_path: Path) -> None:
    rt = _runtime(tmp_path / "home", DUCKDB_MEMORY_LIMIT="100MB")
    row = (
        LocalQueryEngine(rt)
        .query("SELECT current_setting('memory_limit') AS m, current_setting('temp_directory') AS t")
        .rows[0]
    )
    assert row[0] in ("95.3 MiB", "100.0 MB", "100MB")  # DuckDB's spelling of 100MB
    assert Path(str(row[1])).is_relative_to(workdirs.root())
    assert not Path(str(row[1])).exists()  # the scratch folder goes with the query


def test_an_empty_table_has_its_columns_and_no_rows(tmp_path: Path) -> None:
    rt = _runtime(tmp_path / "home")
    uri = rt.table_uri("lineitem")
    write_deltalake(uri, _batch(0, 0), partition_by=["l_shipmode"])
    result = LocalQueryEngine(rt).query("SELECT * FROM lineitem")
    assert result.columns == ["l_orderkey", "l_quantity", "l_shipdate", "_ingested_at", "l_shipmode"]
    assert result.types == ["BIGINT", "DECIMAL(15,2)", "DATE", "TIMESTAMP WITH TIME ZONE", "VARCHAR"]
    assert result.rows == []


def test_tables_in_an_object_store_fall_back_to_deltalake(evolved_table: tuple[Runtime, str]) -> None:
    from lakehouse.local.athena import delta_view_sql

    _, uri = evolved_table
    con = duckdb.connect()
    assert delta_view_sql(con, "lineitem", DeltaTable(uri), "s3://lake/tables/lineitem") is None
    assert delta_view_sql(con, "lineitem", DeltaTable(uri), uri) is not None


def test_a_query_opens_only_the_tables_it_names(
    evolved_table: tuple[Runtime, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every view costs a Delta log read and the Parquet footers of the table's files: a query pays only
    for the tables it reads, not for every table of the lake."""
    from lakehouse.local import athena

    rt, _ = evolved_table
    write_deltalake(rt.table_uri("orders"), pa.table({"o_orderkey": pa.array([1, 2], pa.int64())}))
    viewed: list[str] = []
    real = athena.delta_view_sql

    def spy(
        con: duckdb.DuckDBPyConnection, name: str, table: DeltaTable, uri: str, keep: Any = None
    ) -> str | None:
        viewed.append(name)
        return real(con, name, table, uri, keep)

    monkeypatch.setattr(athena, "delta_view_sql", spy)
    engine = LocalQueryEngine(rt)
    assert engine.query("SELECT 1 AS one").rows == [(1,)]
    assert viewed == []
    assert engine.query("SELECT count(*) FROM lakehouse.LineItem").rows == [(120 - len(range(0, 120, 7)),)]
    assert viewed == ["lineitem"]
    viewed.clear()
    cte = "WITH o AS (SELECT * FROM orders) SELECT count(*) FROM o"
    assert engine.query(cte).rows == [(2,)]
    assert viewed == ["orders"]
    assert set(engine.tables()) >= {"lineitem", "orders"}


def _batches(rt: Runtime, count: int, rows: int = 50) -> None:
    """lineitem as `count` committed batches, each its own file with its `_run_id`, keys increasing."""
    for n in range(count):
        keys = list(range(n * rows, (n + 1) * rows))
        write_deltalake(
            rt.table_uri("lineitem"),
            pa.table(
                {
                    "l_orderkey": pa.array(keys, pa.int64()),
                    "l_linenumber": pa.array([1] * rows, pa.int32()),
                    "_run_id": pa.array([f"run-{n:03d}"] * rows),
                }
            ),
            mode="append",
        )


def test_delta_statistics_skip_the_files_of_other_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch check opens the batch's files (and, for uniqueness and references, the files whose key
    ranges meet the batch's), whatever the table's size; its metrics are those of an unpruned query."""
    from lakehouse.contracts import load_contract
    from lakehouse.local import athena
    from lakehouse.local.pruning import Pruned
    from lakehouse.sql.checks import athena_table, compile_checks

    rt = _runtime(tmp_path / "home")
    _batches(rt, 12)
    # The newest batch repeats two keys of the batch before it (run-010: keys 500..549).
    write_deltalake(
        rt.table_uri("lineitem"),
        pa.table(
            {
                "l_orderkey": pa.array([548, 549, 600, 601], pa.int64()),
                "l_linenumber": pa.array([1, 1, 1, 1], pa.int32()),
                "_run_id": pa.array(["run-new"] * 4),
            }
        ),
        mode="append",
    )
    write_deltalake(rt.table_uri("orders"), pa.table({"o_orderkey": pa.array(range(0, 600), pa.int64())}))
    contract = load_contract(ROOT / "datasets" / "lineitem.yaml")
    unique = contract.model_copy(
        update={"checks": tuple(c for c in contract.checks if c.name in ("line_unique", "orders_exist"))}
    )
    query = compile_checks(unique, athena_table("lakehouse"), run_id="run-new", scope="batch")
    assert query is not None
    opened: dict[str, int] = {}
    real = athena.delta_view_sql

    def spy(
        con: duckdb.DuckDBPyConnection, name: str, table: DeltaTable, uri: str, keep: Any = None
    ) -> str | None:
        opened[name] = len(table.get_add_actions(flatten=True)) if keep is None else len(keep)
        return real(con, name, table, uri, keep)

    monkeypatch.setattr(athena, "delta_view_sql", spy)
    engine = LocalQueryEngine(rt)
    pruned = engine.query(query.athena())
    # Every scan reads the batch's file, or (the uniqueness semi-join) the files its key range 548..601
    # meets: run-010's, run-011's and its own; never the other 10 of the table's 13.
    assert sorted(opened.values()) == [1] * (len(opened) - 1) + [3], opened
    assert not any(name in ("lineitem", "orders") for name in opened)  # no view over a whole table
    # The same query with pruning off gives the same metrics.
    monkeypatch.setattr(athena, "prune", lambda tree, stats_of: Pruned(tree))
    whole = engine.query(query.athena())
    assert pruned.rows == whole.rows
    assert pruned.rows[0] == pytest.approx((0.5, 0.5))  # 548, 549 collide; 600, 601 lack an order
