"""The Lambda-sized ingest engine: DuckDB reads and transforms, delta-rs commits exactly once.

pyarrow is not needed here: a DuckDB relation exports the Arrow C stream interface, which
`write_deltalake` and `DeltaTable.merge` consume batch by batch, so peak memory stays flat with the
file's size (DuckDB spills beyond its memory limit).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from sqlglot import exp

from lakehouse.commit_log import FIRST_TXN_VERSION, SEARCH_DEPTH, commit_metadata
from lakehouse.contracts.model import Contract, FormatSpec
from lakehouse.duckdb_engine.delta import (
    TARGET_FILE_SIZE,
    WRITER_PROPERTIES,
    create_table,
    open_table,
    table_columns,
    with_commit_retries,
)
from lakehouse.errors import InvalidInputError
from lakehouse.formats import (
    Detected,
    check_unique_columns,
    detect_file,
    parse_header,
    preflight,
    read_local_head,
)
from lakehouse.ingest_core import (
    MALFORMED_PREFIX,
    Committed,
    Counts,
    IngestResult,
    Txn,
    all_rejected_error,
    fail_rule_error,
    first_line,
    ingest,
    merge_predicate,
    no_rows_error,
    partition_predicate,
)
from lakehouse.names import ACCEPTED
from lakehouse.sql.compiler import (
    REJECT_ACTION,
    REJECT_REASON,
    REJECTED,
    ROW_ORDINAL,
    IngestPlan,
    RunMeta,
    col,
    ident,
)
from lakehouse.sql.evolution import check_source_names, commit_select
from lakehouse.table_properties import TABLE_CONFIGURATION

__all__ = ["DuckDBBackend", "IngestResult", "ingest_file"]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class _Txn(Txn):
    """The app transaction of one object version, and the run committing it (delta-rs commit properties)."""

    def applied(self, table: DeltaTable) -> bool:
        return self.applied_by(table.transaction_version(self.app_id))

    def properties(self) -> CommitProperties:
        return CommitProperties(
            app_transactions=[Transaction(self.app_id, self.version)],
            custom_metadata=commit_metadata(self.meta.run_id, [self.app_id], self.meta.source_uri),
        )


def _history(table_uri: str, storage_options: dict[str, str] | None) -> tuple[list[dict[str, Any]], int]:
    table = DeltaTable(table_uri, storage_options=storage_options)
    return table.history(SEARCH_DEPTH), table.version()


def _csv_header(path: Path, spec: FormatSpec, detected: Detected, contract: Contract) -> list[str]:
    """The file's column names, read by us rather than sniffed, so a bad row cannot hide them."""
    if not spec.header:
        return [c.source_name for c in contract.columns]
    columns = parse_header(read_local_head(path, detected.compression == "gzip"), spec, path.name)
    check_unique_columns(columns, path.name)  # DuckDB's reader would fail on them with a binder error
    return columns


def _csv_reader(path: Path, spec: FormatSpec, detected: Detected, header: list[str]) -> str:
    columns = "{" + ", ".join(f"{_quote(n)}: 'VARCHAR'" for n in header) + "}"
    options = {
        "columns": columns,
        "auto_detect": "false",
        "header": "true" if spec.header else "false",
        "delim": _quote(spec.delimiter),
        "quote": _quote(spec.quote),
        "escape": _quote(spec.escape or spec.quote),
        "nullstr": "[" + ", ".join(_quote(m) for m in spec.null_markers) + "]",
        "compression": _quote(detected.compression),
        # Lines were checked against max_line_bytes already (preflight); a record whose quoted
        # fields span lines can still be longer, and is then set aside as malformed.
        "max_line_size": str(spec.max_line_bytes),
        # DuckDB sizes its read buffers at 16x max_line_size by default (128 MiB each at 8 MiB).
        "buffer_size": str(max(16 * 1024 * 1024, 2 * spec.max_line_bytes)),
        # Malformed lines (wrong field count, bad quoting, invalid UTF-8) are kept aside in
        # reject_errors with their line number instead of failing the whole file.
        "ignore_errors": "true",
        "store_rejects": "true",
        "strict_mode": "true",
    }
    args = ", ".join(f"{k}={v}" for k, v in options.items())
    return f"read_csv({_quote(str(path))}, {args})"


class _Source:
    """The file as relation `src`: every field a string, plus `_row`, its ordinal in the file."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, path: Path, contract: Contract, detected: Detected
    ) -> None:
        self.con = con
        spec = contract.format
        name = path.name
        try:
            if detected.kind != spec.type:
                raise InvalidInputError(
                    f"{name}: the contract of {contract.name!r} expects {spec.type} "
                    f"but the file is {detected.kind}"
                )
            # UTF-8, line length, field count, decompressed size: before DuckDB parses anything.
            preflight(path, detected, spec, name)
            if detected.kind == "csv":
                header = _csv_header(path, spec, detected, contract)
                check_source_names(contract, header, name)
                reader = _csv_reader(path, spec, detected, header)
            elif detected.kind == "jsonl":
                keys_sql = (
                    "SELECT DISTINCT unnest(json_keys(json)) AS k FROM "
                    f"read_ndjson_objects({_quote(str(path))}, compression={_quote(detected.compression)}, "
                    f"maximum_object_size={spec.max_line_bytes + 1})"
                )
                keys = [row[0] for row in con.execute(keys_sql).fetchall()]
                if not keys:
                    raise InvalidInputError(f"{name}: no JSON objects with fields")
                check_source_names(contract, keys, name)
                struct = "{" + ", ".join(f"{_quote(k)}: 'VARCHAR'" for k in sorted(keys)) + "}"
                reader = (
                    f"read_ndjson({_quote(str(path))}, columns={struct}, "
                    f"compression={_quote(detected.compression)}, "
                    f"maximum_object_size={spec.max_line_bytes + 1})"
                )
            else:
                reader = f"read_parquet({_quote(str(path))})"
            described = con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
            self.columns = [row[0] for row in described]
            check_source_names(contract, self.columns, name)
            con.execute(f"CREATE OR REPLACE TEMP VIEW src AS {_source_select(self.columns, reader)}")
        except duckdb.Error as exc:
            raise InvalidInputError(f"{name}: cannot be read as {spec.type}: {first_line(exc)}") from exc

    def malformed_lines(self) -> list[tuple[int, str, str]]:
        """(line, error, raw line) of CSV lines the reader set aside, from its first scan."""
        try:
            rows = self.con.execute(
                "SELECT line, error_message, csv_line FROM reject_errors "
                "WHERE scan_id = (SELECT min(scan_id) FROM reject_errors) ORDER BY line"
            ).fetchall()
        except duckdb.CatalogException:
            return []
        seen: dict[int, tuple[int, str, str]] = {}
        for line, message, raw in rows:
            seen.setdefault(int(line), (int(line), str(message), str(raw or "")))
        return list(seen.values())


def _source_select(columns: list[str], reader: str) -> str:
    """Every field as text, plus `_row`; identifiers quoted by sqlglot (any character is safe)."""
    return f"SELECT {_source_projections(tuple(columns))} FROM {reader}"


@functools.lru_cache(maxsize=64)
def _source_projections(columns: tuple[str, ...]) -> str:
    """`_source_select`'s projections, rendered once per header (the files of a batch share it)."""
    varchar = exp.DataType.build("varchar")
    fields = [exp.alias_(exp.Cast(this=col(c), to=varchar), ident(c)) for c in columns]
    # row_number() OVER () streams in DuckDB and follows the file order (insertion order is kept).
    ordinal = exp.alias_(exp.Window(this=exp.RowNumber()), ident(ROW_ORDINAL))
    return ", ".join(e.sql(dialect="duckdb") for e in [*fields, ordinal])


def _commit_select(plan: IngestPlan, absent: list[tuple[str, str]]) -> str:
    return commit_select(plan, absent).sql(dialect="duckdb")


_FIRST_FAILURE = (
    f"SELECT {ROW_ORDINAL}, {REJECT_REASON} FROM transformed WHERE {REJECT_ACTION} = 'fail' "
    f"ORDER BY {ROW_ORDINAL} LIMIT 1"
)


def ingest_file(  # noqa: PLR0913 - the engine entry point; every option after `*` is keyword-only
    path: Path,
    contract: Contract,
    table_uri: str,
    meta: RunMeta,
    *,
    app_id: str,
    work_dir: Path,
    storage_options: dict[str, str] | None = None,
    memory_limit: str = "256MB",
    threads: int = 2,
    source_name: str | None = None,
    txn_version: int = FIRST_TXN_VERSION,
) -> IngestResult:
    """Ingest one local file into the contract's Delta table, exactly once.

    `app_id`/`txn_version` is the object version's app transaction. If the table already has it, the
    file is not read again: the result says whether this run (`meta.run_id`) committed it before a crash
    or retry (`committed`, `resumed`) or another run did (`duplicate`).

    Raises InvalidInputError (or a subclass) for a file that cannot be ingested; the table is then
    untouched. Rejected rows are written to `work_dir/rejects.parquet` for the caller to quarantine.
    The flow is `lakehouse.ingest_core.ingest`; this engine is `DuckDBBackend`.
    """
    backend = DuckDBBackend(
        path, table_uri, work_dir, storage_options, memory_limit=memory_limit, threads=threads
    )
    txn = _Txn(app_id, txn_version, meta)
    return ingest(backend, contract, meta, txn, source_name or path.name)


def connect(work_dir: Path, memory_limit: str, threads: int) -> duckdb.DuckDBPyConnection:
    """The engine's DuckDB connection: bounded memory, spilling under `work_dir`, UTC."""
    work_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(
        config={
            "memory_limit": memory_limit,
            "threads": threads,
            "temp_directory": str(work_dir / "duckdb.tmp"),
            # Lambda has no writable HOME; DuckDB resolves its home directory at start.
            "home_directory": str(work_dir),
        }
    )
    con.execute("SET TimeZone = 'UTC'")
    return con


class _StreamAbortError(Exception):
    """Raised inside the batch stream to stop delta-rs before it commits."""


class DuckDBSteps:
    """The Lambda-sized engine's steps: DuckDB reads and transforms, delta-rs commits (no pyarrow).
    Without the one-pass append, every write mode takes the flow's two passes (count, then commit)."""

    def __init__(
        self,
        path: Path,
        table_uri: str,
        work_dir: Path,
        storage_options: dict[str, str] | None,
        *,
        memory_limit: str,
        threads: int,
    ) -> None:
        self.path = path
        self.table_uri = table_uri
        self.work_dir = work_dir
        self.storage_options = storage_options
        self.memory_limit = memory_limit
        self.threads = threads
        self.rejects_path = work_dir / "rejects.parquet"
        self.table: DeltaTable | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._source: _Source | None = None
        self._malformed: list[tuple[int, str, str]] = []
        self._contract: Contract | None = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = connect(self.work_dir, self.memory_limit, self.threads)
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()

    # -- the table ---------------------------------------------------------------------------------

    def table_state(self, app_id: str) -> tuple[int, int | None]:
        self.table = open_table(self.table_uri, self.storage_options)
        if self.table is None:
            return -1, None
        return self.table.version(), self.table.transaction_version(app_id)

    def applied_history(self) -> tuple[list[dict[str, Any]], int]:
        return _history(self.table_uri, self.storage_options)

    def table_columns(self) -> dict[str, str]:
        assert self.table is not None
        return table_columns(self.table)

    def create_table(self, plan: IngestPlan, contract: Contract) -> None:
        self.table = create_table(
            self.table_uri,
            [(c.name, c.type) for c in plan.columns],
            list(contract.partition_by),
            self.storage_options,
        )

    # -- the file ----------------------------------------------------------------------------------

    def detect(self, name: str) -> Detected:
        return detect_file(self.path, name)

    def open_source(self, contract: Contract, detected: Detected, name: str) -> list[str]:
        self._contract = contract
        self._source = _Source(self.con, self.path, contract, detected)
        return self._source.columns

    def transform(self, plan: IngestPlan) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW transformed AS {plan.sql('duckdb')}")

    def counts(self, plan: IngestPlan, name: str) -> Counts:
        try:
            totals = self.con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE {REJECT_ACTION} = 'drop'), "
                f"count(*) FILTER (WHERE {REJECT_ACTION} = 'fail'), "
                # `rejected_rows` with the quarantine action, in the same pass.
                f"count(*) FILTER (WHERE {REJECTED} AND {REJECT_ACTION} = 'quarantine') FROM transformed"
            ).fetchall()
        except duckdb.Error as exc:
            raise InvalidInputError(
                f"{name}: cannot be read as {plan.contract.format.type}: {first_line(exc)}"
            ) from exc
        total, dropped, failed, quarantined = (int(v) for v in totals[0])
        assert self._source is not None
        self._malformed = self._source.malformed_lines()
        if total == 0 or failed:  # the flow stops here: the quarantined rows are not reported
            return Counts(total, dropped, failed, 0, len(self._malformed))
        return Counts(total, dropped, failed, quarantined, len(self._malformed))

    def first_failure(self) -> tuple[Any, Any]:
        row = self.con.execute(_FIRST_FAILURE).fetchall()[0]
        return row[0], row[1]

    def write_rejects(self, plan: IngestPlan, counts: Counts) -> str | None:
        """Quarantined rows (data row number + reason) and malformed lines (line + raw text) as Parquet."""
        con = self.con
        parts = []
        if counts.quarantined > 0:
            parts.append(
                f"SELECT {ROW_ORDINAL} AS source_row, NULL::BIGINT AS source_line, "
                f"{REJECT_REASON} AS reason, NULL::VARCHAR AS raw_line "
                f"FROM transformed WHERE {REJECT_ACTION} = 'quarantine'"
            )
        if self._malformed:
            con.execute("CREATE OR REPLACE TEMP TABLE malformed(line BIGINT, error VARCHAR, raw VARCHAR)")
            con.executemany("INSERT INTO malformed VALUES (?, ?, ?)", self._malformed)
            parts.append(
                f"SELECT NULL::BIGINT AS source_row, line AS source_line, "
                f"{_quote(MALFORMED_PREFIX)} || error AS reason, raw AS raw_line FROM malformed"
            )
        if parts:
            target = _quote(str(self.rejects_path))
            con.execute(f"COPY ({' UNION ALL '.join(parts)}) TO {target} (FORMAT parquet)")
        return str(self.rejects_path) if self.rejects_path.exists() else None

    # -- the commit --------------------------------------------------------------------------------

    def commit(
        self, plan: IngestPlan, absent: list[tuple[str, str]], merge_schema: bool, txn: Txn, counts: Counts
    ) -> Committed | None:
        """Merge or overwrite partitions, against a fresh snapshot; None if already applied."""
        assert isinstance(txn, _Txn)
        commit_sql = _commit_select(plan, absent)
        contract = plan.contract
        props = txn.properties()

        def attempt(_: int) -> Committed | None:
            table = DeltaTable(self.table_uri, storage_options=self.storage_options)
            # Read the app transaction on the very snapshot we commit against.
            if txn.applied(table):
                return None
            if contract.write_mode == "merge":
                return self._merge(table, commit_sql, merge_schema, props)
            self._write(table, commit_sql, merge_schema, props)
            # Counted in pass 1; counting again here would read the file a third time.
            return Committed(counts.accepted, table.version())

        return with_commit_retries(attempt)

    def _write(self, table: DeltaTable, commit_sql: str, merge_schema: bool, props: CommitProperties) -> None:
        """Append, or overwrite exactly the partitions present in this file."""
        assert self._contract is not None
        contract = self._contract
        partition_by = list(contract.partition_by) or None
        schema_mode: Literal["merge"] | None = "merge" if merge_schema else None
        if contract.write_mode == "overwrite_partitions":
            write_deltalake(
                table,
                self.con.sql(commit_sql),
                mode="overwrite",
                predicate=self._partition_predicate(contract, commit_sql),
                partition_by=partition_by,
                schema_mode=schema_mode,
                writer_properties=WRITER_PROPERTIES,
                commit_properties=props,
            )
        else:
            write_deltalake(
                table,
                self.con.sql(commit_sql),
                mode="append",
                partition_by=partition_by,
                schema_mode=schema_mode,
                writer_properties=WRITER_PROPERTIES,
                commit_properties=props,
            )

    def _merge(
        self, table: DeltaTable, commit_sql: str, merge_schema: bool, props: CommitProperties
    ) -> Committed:
        """Upsert on the primary key: the last row per key in file order wins."""
        assert self._contract is not None
        metrics = (
            table.merge(
                self.con.sql(commit_sql),
                merge_predicate(self._contract.primary_key, "duckdb"),
                source_alias="s",
                target_alias="t",
                merge_schema=merge_schema,
                writer_properties=WRITER_PROPERTIES,
                commit_properties=props,
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
        merged = int(metrics.get("num_target_rows_inserted", 0)) + int(
            metrics.get("num_target_rows_updated", 0)
        )
        return Committed(merged, table.version())

    def _partition_predicate(self, contract: Contract, commit_sql: str) -> str:
        """`replaceWhere` for exactly the partitions present in this file."""
        cols = ", ".join(ident(c).sql(dialect="duckdb") for c in contract.partition_by)
        values = self.con.execute(f"SELECT DISTINCT {cols} FROM ({commit_sql})").fetchall()
        return partition_predicate(contract.partition_by, values, "duckdb")


class DuckDBBackend(DuckDBSteps):
    """The Lambda-sized engine, with DuckDB's single-pass streaming append (`StreamingAppend`)."""

    # -- the one-pass append (StreamingAppend) -----------------------------------------------------

    def append_streaming(
        self, plan: IngestPlan, absent: list[tuple[str, str]], merge_schema: bool, txn: Txn, name: str
    ) -> tuple[Committed, Counts] | None:
        """Append in one pass: the transformed rows stream through Python once, split by `_rejected`.

        Accepted rows go on to delta-rs. The stream carries only the data columns, the accept flag and
        the reject action: row numbers and reason texts cost more than the casts themselves, so they are
        computed in a second pass over the file only when some row was rejected. A `fail` row, or a file
        with nothing to commit, raises inside the stream, so delta-rs never commits (the files it had
        written stay unreferenced until vacuum).
        """
        assert isinstance(txn, _Txn)
        stream = _AppendStream(self.con, plan, absent, name)

        def attempt(_: int) -> Committed | None:
            table = open_table(self.table_uri, self.storage_options)
            if table is not None and txn.applied(table):
                return None
            stream.write(table, self.table_uri, self.storage_options, merge_schema, txn.properties())
            if table is None:
                created = open_table(self.table_uri, self.storage_options)
                return Committed(stream.counts.accepted, created.version() if created is not None else 0)
            return Committed(stream.counts.accepted, table.version())

        committed = with_commit_retries(attempt)
        if committed is None:
            return None
        assert self._source is not None
        self._malformed = self._source.malformed_lines()
        stream.counts.malformed = len(self._malformed)
        return committed, stream.counts


class _AppendStream:
    """The transformed rows as Arrow batches for delta-rs: accepted rows only, counted on the way."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, plan: IngestPlan, absent: list[tuple[str, str]], name: str
    ) -> None:
        from lakehouse.sql.compiler import REJECTED, sql_type

        self.con = con
        self.name = name
        self.plan = plan
        self.data_columns = [*plan.data_columns, *[n for n, _ in absent]]
        select = exp.select(*[col(n) for n in plan.data_columns])
        for column_name, type_name in absent:
            select = select.select(
                exp.alias_(exp.Cast(this=exp.Null(), to=sql_type(type_name)), ident(column_name))
            )
        select = select.select(
            col(REJECTED), exp.alias_(exp.Not(this=col(REJECTED)), ident(ACCEPTED)), col(REJECT_ACTION)
        )
        self.sql = select.from_("transformed").sql(dialect="duckdb")
        self.counts = Counts()
        self.failure: list[BaseException] = []

    def _count(self, batch: Any) -> Any:
        """Count one batch by reject action; its accepted rows."""
        from arro3 import compute
        from arro3.core import DataType, RecordBatch

        from lakehouse.sql.compiler import REJECTED

        self.counts.total += batch.num_rows
        accepted = batch.column(ACCEPTED)
        good = int(compute.sum(compute.cast(accepted, DataType.int64())).as_py() or 0)
        if good < batch.num_rows:
            actions = compute.filter(batch.column(REJECT_ACTION), batch.column(REJECTED)).to_pylist()
            self.counts.dropped += actions.count("drop")
            self.counts.quarantined += actions.count("quarantine")
            self.counts.failed += actions.count("fail")
            batch = RecordBatch.from_struct_array(compute.filter(batch.to_struct_array(), accepted))
        return batch

    def _batches(self, reader: Any) -> Iterator[Any]:
        accepted = 0
        for batch in reader:
            batch = self._count(batch)
            accepted += batch.num_rows
            # Once a `fail` row is seen nothing more is written, but the rest is read so the error
            # can say how many rows broke the rule.
            if batch.num_rows and not self.counts.failed:
                yield batch.select(self.data_columns)
        self._check(accepted)

    def _check(self, accepted: int) -> None:
        """After the last batch: a `fail` row, or nothing to commit, stops delta-rs before it commits."""
        counts = self.counts
        if counts.failed:
            row = self.con.execute(_FIRST_FAILURE).fetchall()[0]
            self.failure.append(fail_rule_error(self.name, counts.failed, (row[0], row[1])))
            raise _StreamAbortError
        if accepted == 0:
            if counts.total == 0:
                self.failure.append(no_rows_error(self.name))
            else:
                self.failure.append(all_rejected_error(self.name, counts, with_malformed=False))
            raise _StreamAbortError

    def write(
        self,
        table: DeltaTable | None,
        table_uri: str,
        storage_options: dict[str, str] | None,
        merge_schema: bool,
        props: CommitProperties,
    ) -> None:
        """One write attempt: the stream from the start, into `table` (created by this commit if None)."""
        from arro3.core import RecordBatchReader, Schema

        self.counts = Counts()
        self.failure.clear()
        try:
            reader = RecordBatchReader.from_stream(self.con.sql(self.sql))
        except duckdb.Error as exc:  # the CSV reader can fail on its first chunk already
            raise InvalidInputError(f"{self.name}: cannot be read: {first_line(exc)}") from exc
        stream = RecordBatchReader.from_batches(
            Schema([reader.schema.field(n) for n in self.data_columns]),
            self._batches(reader),
        )
        try:
            # A missing table is created by this very commit (version 0), so a file that aborts
            # leaves no empty table behind; a racing creator makes this commit fail and retry.
            write_deltalake(
                table if table is not None else table_uri,
                stream,
                mode="append",
                partition_by=list(self.plan.contract.partition_by) or None,
                schema_mode="merge" if merge_schema else None,
                configuration=TABLE_CONFIGURATION if table is None else None,
                storage_options=storage_options if table is None else None,
                writer_properties=WRITER_PROPERTIES,
                target_file_size=TARGET_FILE_SIZE,
                commit_properties=props,
            )
        except Exception as exc:
            if self.failure:
                raise self.failure[0] from None
            if isinstance(exc, duckdb.Error):
                raise InvalidInputError(f"{self.name}: cannot be read: {first_line(exc)}") from exc
            raise
