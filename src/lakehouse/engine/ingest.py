"""The Lambda-sized ingest engine: DuckDB reads and transforms, delta-rs commits exactly once.

pyarrow is not needed here: a DuckDB relation exports the Arrow C stream interface, which
`write_deltalake` and `DeltaTable.merge` consume batch by batch, so peak memory stays flat with the
file's size (DuckDB spills beyond its memory limit).
"""

from __future__ import annotations

import csv
import io
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from sqlglot import exp

from lakehouse import access
from lakehouse.commit_log import (
    FIRST_TXN_VERSION,
    SEARCH_DEPTH,
    commit_metadata,
    find_commit,
    is_own_commit,
)
from lakehouse.contracts.model import Contract, FormatSpec
from lakehouse.engine.delta import (
    TABLE_CONFIGURATION,
    TARGET_FILE_SIZE,
    WRITER_PROPERTIES,
    create_table,
    open_table,
    table_columns,
    with_commit_retries,
)
from lakehouse.engine.formats import SAMPLE_BYTES, Detected, detect_file, preflight
from lakehouse.errors import InvalidInputError, RowRuleViolationError, SchemaMismatchError
from lakehouse.names import ACCEPTED
from lakehouse.sql.compiler import (
    REJECT_ACTION,
    REJECT_REASON,
    ROW_ORDINAL,
    IngestPlan,
    RunMeta,
    col,
    compile_ingest,
    ident,
    rejected_rows,
)
from lakehouse.sql.evolution import (
    check_file_schema,
    check_source_names,
    check_table_schema,
    commit_select,
)


@dataclass
class IngestResult:
    """What one ingest did (the `$.commit` state of the state machine)."""

    status: str  # committed | duplicate
    # committed by this same run before a crash or retry: the run resumes after its own commit
    resumed: bool = False
    # the run whose commit already applied this object version (status duplicate)
    duplicate_of: str | None = None
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    rows_dropped: int = 0
    version_before: int = -1
    version_after: int = -1
    bytes_read: int = 0
    duration_ms: int = 0
    rejects_path: str | None = None
    added_columns: list[str] = field(default_factory=list)
    format: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class _Txn:
    """The app transaction of one object version, and the run committing it."""

    app_id: str
    version: int
    meta: RunMeta

    def applied(self, table: DeltaTable) -> bool:
        found = table.transaction_version(self.app_id)
        return found is not None and found >= self.version

    def properties(self) -> CommitProperties:
        return CommitProperties(
            app_transactions=[Transaction(self.app_id, self.version)],
            custom_metadata=commit_metadata(self.meta.run_id, [self.app_id], self.meta.source_uri),
        )


def _rows_committed(commit: dict[str, Any]) -> int:
    metrics = commit.get("operationMetrics") or {}
    if "num_added_rows" in metrics:
        return int(metrics["num_added_rows"] or 0)
    return int(metrics.get("num_target_rows_inserted") or 0) + int(
        metrics.get("num_target_rows_updated") or 0
    )


def _already_applied(
    table_uri: str, storage_options: dict[str, str] | None, txn: _Txn, started: float
) -> IngestResult:
    """The object version is in the table: resumed (this run's own commit) or a duplicate (another's)."""
    table = DeltaTable(table_uri, storage_options=storage_options)
    history = table.history(SEARCH_DEPTH)
    ref = find_commit(history, txn.app_id)
    duration = int((time.monotonic() - started) * 1000)
    if ref is not None and is_own_commit(ref, txn.meta.run_id):
        commit = next((c for c in history if c.get("version") == ref.version), {})
        return IngestResult(
            "committed",
            resumed=True,
            rows_written=_rows_committed(commit),
            version_before=ref.version - 1,
            version_after=ref.version,
            duration_ms=duration,
        )
    current = table.version()
    return IngestResult(
        "duplicate",
        duplicate_of=ref.run_id if ref is not None else None,
        version_before=current,
        version_after=current,
        duration_ms=duration,
    )


def _csv_header(path: Path, spec: FormatSpec, detected: Detected, contract: Contract) -> list[str]:
    """The file's column names, read by us rather than sniffed, so a bad row cannot hide them."""
    if not spec.header:
        return [c.source_name for c in contract.columns]
    with path.open("rb") as handle:
        head = handle.read(SAMPLE_BYTES)
    if detected.compression == "gzip":
        head = zlib.decompressobj(wbits=31).decompress(head, SAMPLE_BYTES)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=spec.delimiter, quotechar=spec.quote)
        first = next(reader, [])
    except csv.Error as exc:
        raise InvalidInputError(f"{path.name}: the header line cannot be read as CSV: {exc}") from None
    names = [n.strip() for n in first]
    if not names or all(not n for n in names):
        raise InvalidInputError(f"{path.name}: the first line should be a header but is empty")
    columns = [n or f"column{i}" for i, n in enumerate(names)]
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:  # caught here: DuckDB's reader would fail on them with an unrelated binder error
        raise SchemaMismatchError(f"{path.name}: the header names these columns more than once: {duplicates}")
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
            raise InvalidInputError(f"{name}: cannot be read as {spec.type}: {_first_line(exc)}") from exc

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
    varchar = exp.DataType.build("varchar")
    fields = [exp.alias_(exp.Cast(this=col(c), to=varchar), ident(c)) for c in columns]
    # row_number() OVER () streams in DuckDB and follows the file order (insertion order is kept).
    ordinal = exp.alias_(exp.Window(this=exp.RowNumber()), ident(ROW_ORDINAL))
    projections = ", ".join(e.sql(dialect="duckdb") for e in [*fields, ordinal])
    return f"SELECT {projections} FROM {reader}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _commit_select(plan: IngestPlan, absent: list[tuple[str, str]]) -> str:
    return commit_select(plan, absent).sql(dialect="duckdb")


def ingest_file(
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
    """
    started = time.monotonic()
    name = source_name or path.name
    access.require_table(table_uri, write=True)  # local IAM: delta-rs commits new objects
    txn = _Txn(app_id, txn_version, meta)
    table = open_table(table_uri, storage_options)
    version_before = table.version() if table is not None else -1
    if table is not None and txn.applied(table):
        return _already_applied(table_uri, storage_options, txn, started)

    detected = detect_file(path, name)
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
    try:
        con.execute("SET TimeZone = 'UTC'")
        source = _Source(con, path, contract, detected)
        plan = compile_ingest(contract, source.columns, meta)
        check_file_schema(plan, name)
        merge_schema, absent = check_table_schema(
            plan, table_columns(table) if table is not None else None, name
        )
        con.execute(f"CREATE OR REPLACE TEMP VIEW transformed AS {plan.sql('duckdb')}")

        rejects_path = work_dir / "rejects.parquet"
        if contract.write_mode == "append":
            # The common large-file path: one pass over the file (see _append_streaming).
            return _append_streaming(
                con,
                source,
                plan,
                absent,
                merge_schema,
                name,
                table_uri,
                txn,
                storage_options,
                rejects_path,
                version_before,
                detected,
                started,
            )

        # Pass 1: rows that break a rule, and the totals. Nothing is committed before this passes.
        try:
            counts = con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE {REJECT_ACTION} = 'drop'), "
                f"count(*) FILTER (WHERE {REJECT_ACTION} = 'fail') FROM transformed"
            ).fetchall()
        except duckdb.Error as exc:
            raise InvalidInputError(
                f"{name}: cannot be read as {contract.format.type}: {_first_line(exc)}"
            ) from exc
        rows_total, rows_dropped, rows_failed = (int(v) for v in counts[0])
        malformed = source.malformed_lines()
        if rows_total == 0 and not malformed:
            raise InvalidInputError(f"{name}: has no data rows (empty, or a header only)")
        if rows_failed:
            first = con.execute(
                f"SELECT {ROW_ORDINAL}, {REJECT_REASON} FROM transformed WHERE {REJECT_ACTION} = 'fail' "
                f"ORDER BY {ROW_ORDINAL} LIMIT 1"
            ).fetchall()
            raise RowRuleViolationError(
                f"{name}: {rows_failed} row(s) break a rule whose action is fail; "
                f"first at data row {first[0][0]}: {first[0][1]}"
            )
        rejected_sql = rejected_rows(plan).where(f"{REJECT_ACTION} = 'quarantine'").sql(dialect="duckdb")
        quarantined = con.execute(f"SELECT count(*) FROM ({rejected_sql})").fetchall()
        rows_quarantined = int(quarantined[0][0])
        _write_rejects(con, rejects_path, malformed, with_rows=rows_quarantined > 0)
        if rows_total - rows_dropped - rows_quarantined == 0:
            raise InvalidInputError(
                f"{name}: every row was rejected ({rows_quarantined} quarantined, {rows_dropped} dropped, "
                f"{len(malformed)} malformed); nothing to commit"
            )

        # Pass 2: commit the accepted rows with the app transaction, against a fresh snapshot.
        if table is None:
            table = create_table(
                table_uri,
                [(c.name, c.type) for c in plan.columns],
                list(contract.partition_by),
                storage_options,
            )
        commit_sql = _commit_select(plan, absent)
        outcome = _commit(
            con,
            contract,
            table_uri,
            commit_sql,
            txn,
            merge_schema,
            storage_options,
            rows_total - rows_dropped - rows_quarantined,
        )
        if outcome is None:
            return _already_applied(table_uri, storage_options, txn, started)
        # The version this commit created (re-opening the table could see a later writer's commit).
        written, version_after = outcome
        return IngestResult(
            status="committed",
            rows_read=rows_total + len(malformed),
            rows_written=written,
            rows_rejected=rows_quarantined + len(malformed),
            rows_dropped=rows_dropped,
            version_before=version_before,
            version_after=version_after,
            bytes_read=detected.size_bytes,
            duration_ms=int((time.monotonic() - started) * 1000),
            rejects_path=str(rejects_path) if rejects_path.exists() else None,
            added_columns=plan.added_columns,
            format=detected.kind,
        )
    finally:
        con.close()


def _commit(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    table_uri: str,
    commit_sql: str,
    txn: _Txn,
    merge_schema: bool,
    storage_options: dict[str, str] | None,
    expected_rows: int,
) -> tuple[int, int] | None:
    """Write the rows: (rows written, version committed); None if the app transaction was already applied."""
    props = txn.properties()

    def attempt(_: int) -> tuple[int, int] | None:
        table = DeltaTable(table_uri, storage_options=storage_options)
        # Read the app transaction on the very snapshot we commit against.
        if txn.applied(table):
            return None
        if contract.write_mode == "merge":
            predicate = " AND ".join(
                exp.EQ(this=col(k, "t"), expression=col(k, "s")).sql(dialect="duckdb")
                for k in contract.primary_key
            )
            metrics = (
                table.merge(
                    con.sql(commit_sql),
                    predicate,
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
            return merged, table.version()
        partition_by = list(contract.partition_by) or None
        schema_mode: Literal["merge"] | None = "merge" if merge_schema else None
        if contract.write_mode == "overwrite_partitions":
            write_deltalake(
                table,
                con.sql(commit_sql),
                mode="overwrite",
                predicate=_partition_predicate(con, contract, commit_sql),
                partition_by=partition_by,
                schema_mode=schema_mode,
                writer_properties=WRITER_PROPERTIES,
                commit_properties=props,
            )
        else:
            write_deltalake(
                table,
                con.sql(commit_sql),
                mode="append",
                partition_by=partition_by,
                schema_mode=schema_mode,
                writer_properties=WRITER_PROPERTIES,
                commit_properties=props,
            )
        # Counted in pass 1; counting again here would read the file a third time.
        return expected_rows, table.version()

    return with_commit_retries(attempt)


def _partition_predicate(con: duckdb.DuckDBPyConnection, contract: Contract, commit_sql: str) -> str:
    """`replaceWhere` for exactly the partitions present in this file."""
    cols = ", ".join(ident(c).sql(dialect="duckdb") for c in contract.partition_by)
    values = con.execute(f"SELECT DISTINCT {cols} FROM ({commit_sql})").fetchall()
    clauses = []
    for row in values:
        terms = []
        for name, value in zip(contract.partition_by, row, strict=True):
            quoted = ident(name).sql(dialect="duckdb")
            terms.append(f"{quoted} IS NULL" if value is None else f"{quoted} = {_quote(str(value))}")
        clauses.append("(" + " AND ".join(terms) + ")")
    return " OR ".join(clauses) or "false"


class _StreamAbortError(Exception):
    """Raised inside the batch stream to stop delta-rs before it commits."""


def _append_streaming(
    con: duckdb.DuckDBPyConnection,
    source: _Source,
    plan: IngestPlan,
    absent: list[tuple[str, str]],
    merge_schema: bool,
    name: str,
    table_uri: str,
    txn: _Txn,
    storage_options: dict[str, str] | None,
    rejects_path: Path,
    version_before: int,
    detected: Detected,
    started: float,
) -> IngestResult:
    """Append in one pass: the transformed rows stream through Python once, split by `_rejected`.

    Accepted rows go on to delta-rs. The stream carries only the data columns, the accept flag and
    the reject action: row numbers and reason texts cost more than the casts themselves, so they are
    computed in a second pass over the file only when some row was rejected. A `fail` row, or a file
    with nothing to commit, raises inside the stream, so delta-rs never commits (the files it had
    written stay unreferenced until vacuum).
    """
    from arro3 import compute
    from arro3.core import DataType, RecordBatch, RecordBatchReader, Schema

    from lakehouse.sql.compiler import REJECTED, sql_type

    data_columns = [*plan.data_columns, *[n for n, _ in absent]]
    select = exp.select(*[col(n) for n in plan.data_columns])
    for column_name, type_name in absent:
        select = select.select(
            exp.alias_(exp.Cast(this=exp.Null(), to=sql_type(type_name)), ident(column_name))
        )
    select = select.select(
        col(REJECTED), exp.alias_(exp.Not(this=col(REJECTED)), ident(ACCEPTED)), col(REJECT_ACTION)
    )
    stream_sql = select.from_("transformed").sql(dialect="duckdb")
    props = txn.properties()
    counts = {"total": 0, "accepted": 0, "drop": 0, "quarantine": 0, "fail": 0}
    failure: list[BaseException] = []

    def batches(reader: RecordBatchReader) -> object:
        for batch in reader:
            counts["total"] += batch.num_rows
            accepted = batch.column(ACCEPTED)
            good = int(compute.sum(compute.cast(accepted, DataType.int64())).as_py() or 0)
            if good < batch.num_rows:
                actions = compute.filter(batch.column(REJECT_ACTION), batch.column(REJECTED)).to_pylist()
                for action in ("drop", "quarantine", "fail"):
                    counts[action] += actions.count(action)
                batch = RecordBatch.from_struct_array(compute.filter(batch.to_struct_array(), accepted))
            counts["accepted"] += batch.num_rows
            # Once a `fail` row is seen nothing more is written, but the rest is read so the error
            # can say how many rows broke the rule.
            if batch.num_rows and not counts["fail"]:
                yield batch.select(data_columns)
        if counts["fail"]:
            first = con.execute(
                f"SELECT {ROW_ORDINAL}, {REJECT_REASON} FROM transformed WHERE {REJECT_ACTION} = 'fail' "
                f"ORDER BY {ROW_ORDINAL} LIMIT 1"
            ).fetchall()[0]
            failure.append(
                RowRuleViolationError(
                    f"{name}: {counts['fail']} row(s) break a rule whose action is fail; "
                    f"first at data row {first[0]}: {first[1]}"
                )
            )
            raise _StreamAbortError
        if counts["accepted"] == 0:
            if counts["total"] == 0:
                message = f"{name}: has no data rows (empty, or a header only)"
            else:
                message = (
                    f"{name}: every row was rejected ({counts['quarantine']} quarantined, "
                    f"{counts['drop']} dropped); nothing to commit"
                )
            failure.append(InvalidInputError(message))
            raise _StreamAbortError

    def attempt(_: int) -> tuple[int, int] | None:
        table = open_table(table_uri, storage_options)
        if table is not None and txn.applied(table):
            return None
        for key in counts:
            counts[key] = 0
        try:
            reader = RecordBatchReader.from_stream(con.sql(stream_sql))
        except duckdb.Error as exc:  # the CSV reader can fail on its first chunk already
            raise InvalidInputError(f"{name}: cannot be read: {_first_line(exc)}") from exc
        stream = RecordBatchReader.from_batches(
            Schema([reader.schema.field(n) for n in data_columns]),
            batches(reader),  # type: ignore[arg-type]
        )
        try:
            # A missing table is created by this very commit (version 0), so a file that aborts
            # leaves no empty table behind; a racing creator makes this commit fail and retry.
            write_deltalake(
                table if table is not None else table_uri,
                stream,
                mode="append",
                partition_by=list(plan.contract.partition_by) or None,
                schema_mode="merge" if merge_schema else None,
                configuration=TABLE_CONFIGURATION if table is None else None,
                storage_options=storage_options if table is None else None,
                writer_properties=WRITER_PROPERTIES,
                target_file_size=TARGET_FILE_SIZE,
                commit_properties=props,
            )
        except Exception as exc:
            if failure:
                raise failure[0] from None
            if isinstance(exc, duckdb.Error):
                raise InvalidInputError(f"{name}: cannot be read: {_first_line(exc)}") from exc
            raise
        if table is None:
            created = open_table(table_uri, storage_options)
            return counts["accepted"], created.version() if created is not None else 0
        return counts["accepted"], table.version()

    outcome = with_commit_retries(attempt)
    if outcome is None:
        return _already_applied(table_uri, storage_options, txn, started)
    malformed = source.malformed_lines()
    _write_rejects(con, rejects_path, malformed, with_rows=counts["quarantine"] > 0)
    written, version_after = outcome
    return IngestResult(
        status="committed",
        rows_read=counts["total"] + len(malformed),
        rows_written=written,
        rows_rejected=counts["quarantine"] + len(malformed),
        rows_dropped=counts["drop"],
        version_before=version_before,
        version_after=version_after,
        bytes_read=detected.size_bytes,
        duration_ms=int((time.monotonic() - started) * 1000),
        rejects_path=str(rejects_path) if rejects_path.exists() else None,
        added_columns=plan.added_columns,
        format=detected.kind,
    )


def _write_rejects(
    con: duckdb.DuckDBPyConnection,
    rejects_path: Path,
    malformed: list[tuple[int, str, str]],
    *,
    with_rows: bool,
) -> None:
    """Quarantined rows (data row number + reason) and malformed lines (line + raw text) as Parquet."""
    parts = []
    if with_rows:
        parts.append(
            f"SELECT {ROW_ORDINAL} AS source_row, NULL::BIGINT AS source_line, {REJECT_REASON} AS reason, "
            f"NULL::VARCHAR AS raw_line FROM transformed WHERE {REJECT_ACTION} = 'quarantine'"
        )
    if malformed:
        con.execute("CREATE OR REPLACE TEMP TABLE malformed(line BIGINT, error VARCHAR, raw VARCHAR)")
        con.executemany("INSERT INTO malformed VALUES (?, ?, ?)", malformed)
        parts.append(
            "SELECT NULL::BIGINT AS source_row, line AS source_line, "
            "'malformed line: ' || error AS reason, raw AS raw_line FROM malformed"
        )
    if parts:
        con.execute(f"COPY ({' UNION ALL '.join(parts)}) TO {_quote(str(rejects_path))} (FORMAT parquet)")
