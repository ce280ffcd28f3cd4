"""Athena, locally: DuckDB over the local Delta tables, the SQL transpiled by `athena_to_duckdb`.

Each dataset's table (and each derived model) that a query names is a view named after it, in the
default schema and in a schema named after the Glue database, so both `orders` and `lakehouse.orders`
(what the check queries say) resolve. A local table is read by DuckDB's own Parquet reader over the
files of its current Delta snapshot (`delta_view_sql`): projections, filters and aggregates are pushed
into the scan and no table is ever loaded whole into Arrow. Tables DuckDB cannot read that way (in an
object store: no `httpfs` offline; deletion vectors; column mapping) fall back to deltalake's
`to_pyarrow_dataset()`, which is scanned lazily too. Either way DuckDB needs no extension download. Each
query runs under the engine's memory limit (`DUCKDB_MEMORY_LIMIT`) and spills to a scratch folder beyond
it, so a check over a large table stays in bounded memory.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import duckdb
import sqlglot
from deltalake import DeltaTable

from lakehouse import workdirs
from lakehouse.duckdb_engine.delta import open_table
from lakehouse.local.pruning import FileStats, prune
from lakehouse.sql.dialects import ALTERNATIVES, UnsupportedFunctionError, athena_to_duckdb
from lakehouse.stages.runtime import Runtime
from lakehouse.types import TRINO_TYPES


def delta_dataset(uri: str, storage_options: Mapping[str, str] | None = None) -> Any:
    """The Delta table at `uri` as a pyarrow dataset that DuckDB can scan.

    deltalake's default dataset reads through a `PyFileSystem` implemented in Python. Arrow's I/O threads
    then call into Python; when DuckDB stops a scan early (a LIMIT, an error while fetching) reads are
    still in flight, and at interpreter exit they hang or crash the process (seen as `SELECT * ... LIMIT 2`
    hanging or segfaulting). A local table is therefore read with Arrow's native local filesystem.
    """
    import pyarrow.fs as pa_fs
    from deltalake import DeltaTable

    table = DeltaTable(uri, storage_options=dict(storage_options) if storage_options else None)
    if "://" in uri and not uri.startswith("file://"):
        return table.to_pyarrow_dataset()  # object stores: deltalake's handler is the only option
    root = uri.removeprefix("file://")
    return table.to_pyarrow_dataset(filesystem=pa_fs.SubTreeFileSystem(root, pa_fs.LocalFileSystem()))


# Reader features DuckDB's Parquet reader knows nothing about: such tables are read through deltalake.
_NATIVE_UNSUPPORTED = frozenset({"deletionVectors", "columnMapping"})
_FILE_COLUMN = "__lakehouse_file"


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _native_root(table: DeltaTable, uri: str) -> str | None:
    """The table's local folder when DuckDB can read its files itself, else None."""
    if "://" in uri and not uri.startswith("file://"):
        return None  # an object store: DuckDB would need httpfs, not installable offline
    if set(table.protocol().reader_features or []) & _NATIVE_UNSUPPORTED:
        return None
    mode = (table.metadata().configuration or {}).get("delta.columnMapping.mode", "none")
    if mode not in (None, "none"):
        return None
    return uri.removeprefix("file://").rstrip("/")


def delta_view_sql(
    con: duckdb.DuckDBPyConnection,
    name: str,
    table: DeltaTable,
    uri: str,
    keep: Sequence[int] | None = None,
) -> str | None:
    """A SELECT over the table's current snapshot read by DuckDB's own Parquet reader; None if it cannot.

    `keep` (indexes into the add actions, from `lakehouse.local.pruning`) limits the view to those files:
    Delta file skipping, decided from the log's statistics before any file is opened.

    The active files come from the Delta log (add actions), never from listing the folder, so removed
    and uncommitted files stay out. Columns are the Delta schema's, cast to its types: a column no file
    has yet (schema evolution) reads as NULL, and partition values come from the add actions through a
    small registered table joined on the file name. Nothing is read until a query runs.
    """
    import pyarrow as pa

    root = _native_root(table, uri)
    if root is None:
        return None
    empty = con.from_arrow(pa.schema(table.schema().to_arrow()).empty_table())
    types = dict(zip(empty.columns, (str(t) for t in empty.types), strict=True))
    adds = pa.table(table.get_add_actions(flatten=True))
    if keep is not None:
        adds = adds.take(pa.array(list(keep), pa.int64()))
    paths = [_file_path(root, str(path)) for path in adds.column("path").to_pylist()]
    if not paths:
        columns = ", ".join(f"CAST(NULL AS {t}) AS {_quote(c)}" for c, t in types.items())
        return f"SELECT {columns} LIMIT 0"
    partitions = [c for c in table.metadata().partition_columns if c in types]
    files = f"__files_{name}"
    con.register(
        files, pa.table({_FILE_COLUMN: paths, **{c: adds.column(f"partition.{c}") for c in partitions}})
    )
    source = (
        f"read_parquet([{', '.join(_sql_string(p) for p in paths)}], union_by_name = true, "
        f"hive_partitioning = false, filename = {_sql_string(_FILE_COLUMN)})"
    )
    present = set(con.sql(f"SELECT * FROM {source}").columns)
    select = []
    for column, duck_type in types.items():
        if column in partitions:
            value = f"f.{_quote(column)}"
        else:
            value = f"p.{_quote(column)}" if column in present else "NULL"
        select.append(f"CAST({value} AS {duck_type}) AS {_quote(column)}")
    join = f" LEFT JOIN {_quote(files)} AS f ON p.{_FILE_COLUMN} = f.{_FILE_COLUMN}" if partitions else ""
    return f"SELECT {', '.join(select)} FROM {source} AS p{join}"


def file_stats(table: DeltaTable) -> FileStats:
    """The table's files with each column's min / max from the Delta log (for `pruning.prune`)."""
    import pyarrow as pa

    adds = pa.table(table.get_add_actions(flatten=True))
    mins = {n[4:]: adds.column(n).to_pylist() for n in adds.column_names if n.startswith("min.")}
    maxs = {n[4:]: adds.column(n).to_pylist() for n in adds.column_names if n.startswith("max.")}
    return FileStats(tuple(str(p) for p in adds.column("path").to_pylist()), mins, maxs)


def _file_path(root: str, path: str) -> str:
    """An add action's path (relative and URI-encoded, or an absolute URI) as a local file path."""
    if "://" in path:
        return unquote(path.removeprefix("file://"))
    return f"{root}/{unquote(path)}"


def _missing_function_hint(exc: Exception) -> str:
    """For DuckDB's "Function with name X does not exist": say it is an Athena function without a local
    equivalent, and what to use instead when we know."""
    match = re.search(r"Function with name (\w+) does not exist", str(exc))
    if not match:
        return ""
    name = match.group(1).lower()
    alternative = ALTERNATIVES.get(name)
    hint = f"; use {alternative}" if alternative else ""
    return f"\n{name}: not available in the local query engine (DuckDB){hint}"


def referenced_tables(sql: str) -> set[str] | None:
    """The (lower-case) names of the tables an Athena query names; None if it does not parse (then every
    table gets a view and the transpiler reports the error)."""
    try:
        statements = sqlglot.parse(sql, read="athena")
    except sqlglot.errors.SqlglotError:
        return None
    return {
        t.name.lower() for tree in statements if tree is not None for t in tree.find_all(sqlglot.exp.Table)
    }


class QueryError(RuntimeError):
    """The query failed (bad SQL, unknown table...); the message is DuckDB's or sqlglot's."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    duckdb_sql: str
    duration_ms: int

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _scalar_schema(table: DeltaTable) -> dict[str, str]:
    """column -> Trino type of the table's scalar columns (the transpiler needs them for integer
    division; nested types stay out)."""
    out: dict[str, str] = {}
    for field in table.schema().fields:
        primitive = str(getattr(field.type, "type", ""))
        if type(field.type).__name__ == "PrimitiveType":
            out[field.name] = TRINO_TYPES.get(primitive, primitive)
    return out


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _varchar(value: Any) -> str:
    """A value rendered as Athena renders it in GetQueryResults."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | Decimal):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


class LocalQueryEngine:
    """Open DuckDB connections with every local table registered."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def tables(self) -> dict[str, str]:
        """name -> Delta URI of every dataset table and derived model that exists."""
        return {name: uri for name, (uri, _) in self._open_tables().items()}

    def _open_tables(self, only: set[str] | None = None) -> dict[str, tuple[str, DeltaTable]]:
        """name -> (Delta URI, its table at the current version) of every table and model that exists
        (of those named in `only`, when given)."""
        found: dict[str, tuple[str, DeltaTable]] = {}
        try:
            contracts = [self.rt.contract(name) for name in self.rt.contracts.names()]
        except Exception:
            contracts = []
        for contract in contracts:
            uris = {contract.name: self.rt.table_uri(contract.name)}
            uris.update({model.name: self.rt.derived_uri(model.name) for model in contract.derived})
            for name, uri in uris.items():
                if only is not None and name.lower() not in only:
                    continue
                table = open_table(uri, self.rt.storage_options)
                if table is not None:
                    found[name] = (uri, table)
        return found

    def connect(
        self, scratch: Path | None = None, only: set[str] | None = None
    ) -> tuple[duckdb.DuckDBPyConnection, dict[str, dict[str, str]]]:
        """A connection with the views, and the schema (table -> column -> type) for the transpiler.

        With `scratch`, DuckDB keeps to the engine's memory limit and spills there beyond it. With
        `only`, just the tables of those (lower-case) names get a view: a query pays for the tables it
        reads, not for every table of the lake.
        """
        config: dict[str, Any] = {"threads": max(1, self.rt.settings.duckdb_threads)}
        if scratch is not None:
            config |= {
                "memory_limit": self.rt.settings.duckdb_memory_limit,
                "temp_directory": str(scratch / "duckdb.tmp"),
            }
        con = duckdb.connect(config=config)
        con.execute("SET TimeZone = 'UTC'")
        database = self.rt.settings.glue_database
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(database)}")
        schema: dict[str, dict[str, str]] = {}
        for name, (uri, table) in self._open_tables(only).items():
            self._add_view(con, name, uri, table)
            schema[name] = _scalar_schema(table)
        return con, schema

    def _add_view(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str,
        uri: str,
        table: DeltaTable,
        keep: Sequence[int] | None = None,
    ) -> None:
        """The view `name` (and `<database>.name`) over the table: DuckDB's reader, else deltalake's."""
        body = delta_view_sql(con, name, table, uri, keep)
        if body is None:  # deltalake's lazily scanned dataset
            hidden = f"__delta_{name}"
            con.register(hidden, delta_dataset(uri, self.rt.storage_options))
            body = f"SELECT * FROM {_quote(hidden)}"
        for qualified in (_quote(name), f"{_quote(self.rt.settings.glue_database)}.{_quote(name)}"):
            con.execute(f"CREATE OR REPLACE VIEW {qualified} AS {body}")

    def transpile(self, sql: str, schema: Mapping[str, Mapping[str, str]] | None = None) -> str:
        try:
            return athena_to_duckdb(sql, schema)
        except sqlglot.errors.ParseError as exc:
            raise QueryError(f"cannot parse the query as Athena SQL: {exc}") from exc
        except UnsupportedFunctionError as exc:
            raise QueryError(str(exc)) from exc
        except Exception:
            # A schema the optimizer chokes on must not block the query: retry without it.
            try:
                return athena_to_duckdb(sql, None)
            except UnsupportedFunctionError as exc:
                raise QueryError(str(exc)) from exc

    def _views_for(self, con: duckdb.DuckDBPyConnection, sql: str) -> tuple[str, dict[str, dict[str, str]]]:
        """Views for what `sql` reads, and the query to run: scans that Delta statistics prune
        (`lakehouse.local.pruning`) read views over just the files they may need, and a table gets a view
        over all its files only if the query still reads it whole. (A view's files are all opened when
        it is bound, so an unneeded full view would cost a read of every file's footer.)"""
        opened = {
            name.lower(): (name, uri, table)
            for name, (uri, table) in self._open_tables(referenced_tables(sql)).items()
        }
        stats: dict[str, FileStats] = {}

        def stats_of(name: str) -> FileStats | None:
            entry = opened.get(name.lower())
            if entry is None or _native_root(entry[2], entry[1]) is None:
                return None
            if name.lower() not in stats:
                stats[name.lower()] = file_stats(entry[2])
            return stats[name.lower()]

        views: dict[str, tuple[str, list[int]]] = {}
        try:
            pruned = prune(sqlglot.parse_one(sql, read="athena"), stats_of)
            if pruned.views:
                sql, views = pruned.tree.sql(dialect="athena"), pruned.views
        except sqlglot.errors.SqlglotError:
            pass  # the transpiler reports it
        still = referenced_tables(sql)
        schema: dict[str, dict[str, str]] = {}
        for key, (name, uri, table) in opened.items():
            if still is None or key in still:
                self._add_view(con, name, uri, table)
                schema[name] = _scalar_schema(table)
        for view, (name, keep) in views.items():
            _, uri, table = opened[name.lower()]
            self._add_view(con, view, uri, table, keep)
            schema[view] = _scalar_schema(table)
        return sql, schema

    def query(self, sql: str) -> QueryResult:
        with workdirs.run_workdir("athena") as scratch:
            return self._query(sql, scratch)

    def _query(self, sql: str, scratch: Path) -> QueryResult:
        started = time.monotonic()
        con, _ = self.connect(scratch, only=set())
        try:
            sql, schema = self._views_for(con, sql)
            duck_sql = self.transpile(sql, schema)
            try:
                relation = con.sql(duck_sql)
                if relation is None:
                    return QueryResult([], [], [], duck_sql, int((time.monotonic() - started) * 1000))
                columns = list(relation.columns)
                types = [str(t) for t in relation.types]
                rows = relation.fetchall()
            except duckdb.Error as exc:
                raise QueryError(f"{type(exc).__name__}: {exc}{_missing_function_hint(exc)}") from exc
            return QueryResult(columns, types, rows, duck_sql, int((time.monotonic() - started) * 1000))
        finally:
            con.close()


class LocalAthena:
    """The two Athena task integrations of the state machines, answered from DuckDB.

    Results are kept in memory and under `<home>/state/athena/` (GetQueryResults may come after a restart
    in a long-lived `watch`, and people like to look at what a check query returned).
    """

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.engine = LocalQueryEngine(rt)
        self.dir = Path(rt.settings.home).resolve() / "state" / "athena"
        self._results: dict[str, dict[str, Any]] = {}

    def start_query_execution(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """`athena:startQueryExecution.sync`: run to completion, return the QueryExecution."""
        sql = str(parameters.get("QueryString") or "")
        query_id = str(uuid.uuid4())
        submitted = datetime.now().astimezone()
        result = self.engine.query(sql)  # QueryError propagates: the task fails as a failed query would
        result_set = {
            "Rows": [
                {"Data": [{"VarCharValue": c} for c in result.columns]},
                *(
                    {"Data": [{} if v is None else {"VarCharValue": _varchar(v)} for v in row]}
                    for row in result.rows
                ),
            ],
            "ResultSetMetadata": {
                "ColumnInfo": [
                    {"Name": c, "Label": c, "Type": t.lower(), "Nullable": "UNKNOWN"}
                    for c, t in zip(result.columns, result.types, strict=True)
                ]
            },
        }
        self._results[query_id] = result_set
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / f"{query_id}.json").write_text(
            json.dumps({"query": sql, "duckdb_sql": result.duckdb_sql, "ResultSet": result_set}, default=str)
        )
        context = parameters.get("QueryExecutionContext") or {}
        return {
            "QueryExecution": {
                "QueryExecutionId": query_id,
                "Query": sql,
                "StatementType": "DML",
                "WorkGroup": parameters.get("WorkGroup", "primary"),
                "QueryExecutionContext": context,
                "ResultConfiguration": {"OutputLocation": str(self.dir / f"{query_id}.json")},
                "Status": {
                    "State": "SUCCEEDED",
                    "SubmissionDateTime": submitted.isoformat(),
                    "CompletionDateTime": datetime.now().astimezone().isoformat(),
                },
                "Statistics": {"EngineExecutionTimeInMillis": result.duration_ms, "DataScannedInBytes": 0},
            }
        }

    def get_query_results(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """`athena:getQueryResults`: the ResultSet (row 0 the header, values as VarCharValue strings)."""
        query_id = str(parameters.get("QueryExecutionId") or "")
        result_set = self._results.get(query_id)
        if result_set is None:
            path = self.dir / f"{query_id}.json"
            if not path.is_file():
                raise QueryError(f"Athena.InvalidRequestException: unknown QueryExecutionId {query_id!r}")
            result_set = json.loads(path.read_text())["ResultSet"]
        max_results = int(parameters.get("MaxResults") or 1000)
        rows: Sequence[Any] = result_set["Rows"][: max_results + 1]
        return {"ResultSet": {**result_set, "Rows": list(rows)}, "UpdateCount": 0}
