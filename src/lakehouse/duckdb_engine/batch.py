"""A batch of objects into one Delta transaction (docs/ARCHITECTURE.md, "Pending set and drains").

Each object runs the one ingest flow (`lakehouse.ingest_core.ingest`) against the real table's state,
so its duplicate check, schema checks, row rules, counts and rejects are exactly a single file's; only
its accepted rows go to a Parquet file in the work folder instead of the lake. When every object of
the batch has passed, `commit_staged` commits all staged rows to the table in one commit that carries
one app transaction per object version. A file that fails raises its own error, naming the object, and
nothing is committed: the drain splits it out and the rest commit in the next batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from lakehouse.commit_log import SEARCH_DEPTH, commit_metadata, find_commit, is_own_commit
from lakehouse.contracts.model import Contract
from lakehouse.duckdb_engine.delta import (
    TARGET_FILE_SIZE,
    WRITER_PROPERTIES,
    open_table,
    table_columns,
    with_commit_retries,
)
from lakehouse.duckdb_engine.ingest import DuckDBSteps, _Txn, connect
from lakehouse.errors import InvalidInputError
from lakehouse.formats import Detected
from lakehouse.ingest_core import (
    Committed,
    Counts,
    IngestResult,
    Txn,
    first_line,
    ingest,
    merge_predicate,
    partition_predicate,
    rows_committed,
)
from lakehouse.sql.compiler import IngestPlan, RunMeta, ident
from lakehouse.sql.evolution import commit_select
from lakehouse.table_properties import TABLE_CONFIGURATION

# An object up to this size is transformed into a DuckDB table once (the batch's objects are small);
# a larger one is read once per query through a view, as a single file is.
MATERIALIZE_MAX_BYTES = 16 * 1024 * 1024


class BatchSession:
    """What the objects of one batch share: one DuckDB connection and one snapshot of the table.

    The table does not change while a batch is staged (the drain holds the table's lease and nothing is
    committed before `commit_staged`), so every object's duplicate check and schema checks read the same
    snapshot; it is opened once instead of once per object. Each object still gets its own views and its
    own reject tables on the connection (`_StagingBackend.open_source`).
    """

    def __init__(
        self,
        table_uri: str,
        *,
        storage_options: dict[str, str] | None,
        work_dir: Path,
        memory_limit: str,
        threads: int,
    ) -> None:
        self.table_uri = table_uri
        self.storage_options = storage_options
        self.work_dir = work_dir
        self.memory_limit = memory_limit
        self.threads = threads
        self._con: duckdb.DuckDBPyConnection | None = None
        self._table: tuple[DeltaTable | None] | None = None
        self._columns: dict[str, str] | None = None
        self._commit_sql: dict[tuple[int, tuple[tuple[str, str], ...]], tuple[object, str]] = {}

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = connect(self.work_dir, self.memory_limit, self.threads)
        return self._con

    @property
    def table(self) -> DeltaTable | None:
        """The table's snapshot for this batch (None when there is no table yet), opened on first use."""
        if self._table is None:
            self._table = (open_table(self.table_uri, self.storage_options),)
        return self._table[0]

    def table_columns(self) -> dict[str, str]:
        if self._columns is None:
            assert self.table is not None
            self._columns = table_columns(self.table)
        return dict(self._columns)

    def commit_sql(self, plan: IngestPlan, absent: list[tuple[str, str]]) -> str:
        """`commit_select` rendered once per compiled template and absent columns (it names no literal
        of the run: it reads `transformed`)."""
        key = (id(plan.template), tuple(absent))
        found = self._commit_sql.get(key)
        if found is None or found[0] is not plan.template:
            found = (plan.template, commit_select(plan, absent).sql(dialect="duckdb"))
            self._commit_sql[key] = found
        return found[1]

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> BatchSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _StagingBackend(DuckDBSteps):
    """The DuckDB engine's steps, writing an object's accepted rows to a Parquet file in the work folder
    instead of the lake (the flow's two passes: count and check, then this "commit"), on the batch's
    connection and table snapshot."""

    def __init__(self, *args: Any, stage_path: Path, session: BatchSession, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stage_path = stage_path
        self.session = session
        self.merge_schema = False
        self._materialize: str | None = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        return self.session.con

    def close(self) -> None:
        """The connection is the batch's: it stays open for the next object."""

    def table_state(self, app_id: str) -> tuple[int, int | None]:
        self.table = self.session.table
        if self.table is None:
            return -1, None
        return self.table.version(), self.table.transaction_version(app_id)

    def table_columns(self) -> dict[str, str]:
        return self.session.table_columns()

    def open_source(self, contract: Contract, detected: Detected, name: str) -> list[str]:
        # The reader's reject tables hold every scan of the connection: start this object's afresh,
        # so its malformed lines are its own (`_Source.malformed_lines` reads the first scan).
        for table in ("reject_errors", "reject_scans"):
            self.con.execute(f"DROP TABLE IF EXISTS temp.{table}")
        return super().open_source(contract, detected, name)

    def transform(self, plan: IngestPlan) -> None:
        """`transformed` as a table: the count, the rejects and the staging each read it, and the
        object is small (below `MATERIALIZE_MAX_BYTES`), so the file is read and transformed once
        instead of once per query. A larger object keeps the view (DuckDB streams it)."""
        for kind in ("TABLE", "VIEW"):  # the previous object's, whichever it was
            with contextlib.suppress(duckdb.CatalogException):
                self.con.execute(f"DROP {kind} IF EXISTS temp.transformed")
        if self.path.stat().st_size > MATERIALIZE_MAX_BYTES:
            super().transform(plan)
        else:
            self._materialize = plan.sql("duckdb")

    def counts(self, plan: IngestPlan, name: str) -> Counts:
        if self._materialize is not None:
            sql, self._materialize = self._materialize, None
            try:
                self.con.execute(f"CREATE OR REPLACE TEMP TABLE transformed AS {sql}")
            except duckdb.Error as exc:  # what the view's first query would have raised
                raise InvalidInputError(
                    f"{name}: cannot be read as {plan.contract.format.type}: {first_line(exc)}"
                ) from exc
        return super().counts(plan, name)

    def create_table(self, plan: IngestPlan, contract: Contract) -> None:
        """Nothing yet: the batch's one commit creates the table."""

    def commit(
        self, plan: IngestPlan, absent: list[tuple[str, str]], merge_schema: bool, txn: Txn, counts: Counts
    ) -> Committed | None:
        """The rows this object would commit (a merge's deduplicated per key), to Parquet."""
        self.merge_schema = merge_schema
        rows = self.session.commit_sql(plan, absent)
        target = "'" + str(self.stage_path).replace("'", "''") + "'"
        self.con.execute(f"COPY ({rows}) TO {target} (FORMAT parquet)")
        return Committed(counts.accepted, -1)


@dataclass
class StagedObject:
    """One object of a batch after its own ingest flow: staged rows, or already in the table."""

    result: IngestResult
    txn: Txn
    staged_rows: str | None = None
    merge_schema: bool = False


def stage_file(  # noqa: PLR0913 - the engine entry point; every option after `*` is keyword-only
    path: Path,
    contract: Contract,
    table_uri: str,
    meta: RunMeta,
    *,
    app_id: str,
    txn_version: int,
    work_dir: Path,
    storage_options: dict[str, str] | None,
    memory_limit: str,
    threads: int,
    source_name: str,
    session: BatchSession | None = None,
) -> StagedObject:
    """Run the ingest flow of one object of a batch; its rows end in a Parquet file under `work_dir`.

    `session` is the batch's shared connection and table snapshot; without one, the object gets its own.
    """
    own = session is None
    if session is None:
        session = BatchSession(
            table_uri,
            storage_options=storage_options,
            work_dir=work_dir,
            memory_limit=memory_limit,
            threads=threads,
        )
    work_dir.mkdir(parents=True, exist_ok=True)  # the staged rows and the rejects go here
    stage_path = work_dir / "staged.parquet"
    backend = _StagingBackend(
        path,
        table_uri,
        work_dir,
        storage_options,
        memory_limit=memory_limit,
        threads=threads,
        stage_path=stage_path,
        session=session,
    )
    txn = _Txn(app_id, txn_version, meta)
    try:
        result = ingest(backend, contract, meta, txn, source_name)
    finally:
        if own:
            session.close()
    staged = result.status == "committed" and not result.resumed
    return StagedObject(result, txn, str(stage_path) if staged else None, backend.merge_schema)


def commit_staged(
    staged: Sequence[StagedObject],
    contract: Contract,
    table_uri: str,
    run_id: str,
    *,
    storage_options: dict[str, str] | None,
    work_dir: Path,
) -> tuple[int, int, int] | None:
    """Commit every staged object's rows in one commit with all their app transactions.

    Append adds them all. Merge upserts them with the last object's row winning per key (each object's
    rows are deduplicated already), as if the objects had been merged one after another; a partition
    overwrite replaces each partition with the rows of the last object that has it.
    (version before, version after, rows written), or None when nothing was staged. A commit that
    finds this run's own app transactions applied already (a retry after the commit landed) returns
    that commit.
    """
    todo = [s for s in staged if s.staged_rows is not None]
    if not todo:
        return None
    props = CommitProperties(
        app_transactions=[Transaction(s.txn.app_id, s.txn.version) for s in todo],
        custom_metadata=commit_metadata(run_id, [s.txn.app_id for s in todo], f"batch of {len(todo)}"),
    )
    work_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"threads": 2, "temp_directory": str(work_dir / "duckdb.tmp")})
    con.execute("SET TimeZone = 'UTC'")
    writer = _BatchWriter(con, contract, todo, props, any(s.merge_schema for s in todo))

    def attempt(_: int) -> tuple[int, int, int]:
        table = open_table(table_uri, storage_options)
        if table is not None and todo[0].txn.applied_by(table.transaction_version(todo[0].txn.app_id)):
            return _landed(table, todo[0].txn.app_id, run_id)
        before = table.version() if table is not None else -1
        written = writer.create(table_uri, storage_options) if table is None else writer.write(table)
        after = open_table(table_uri, storage_options)
        return before, after.version() if after is not None else 0, written

    try:
        return with_commit_retries(attempt)
    finally:
        con.close()


class _BatchWriter:
    """The staged rows of a batch as one relation, and the one commit of each write mode."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        contract: Contract,
        todo: Sequence[StagedObject],
        props: CommitProperties,
        merge_schema: bool,
    ) -> None:
        self.con = con
        self.contract = contract
        self.props = props
        self.merge_schema = merge_schema
        parts = []
        for seq, staged in enumerate(todo):
            path = "'" + str(staged.staged_rows).replace("'", "''") + "'"
            parts.append(f"SELECT *, {seq} AS {_SEQ} FROM read_parquet({path})")
        self.union = " UNION ALL BY NAME ".join(parts)
        self.accepted = sum(s.result.rows_written for s in todo)

    def _rows(self, table: DeltaTable | None) -> str:
        """The rows to commit, in the table's column order (new columns last)."""
        present = [str(r[0]) for r in self.con.execute(f"DESCRIBE {self.union}").fetchall() if r[0] != _SEQ]
        names = [f.name for f in table.schema().fields] if table is not None else []
        ordered = [n for n in names if n in present] + [n for n in present if n not in names]
        cols = ", ".join(ident(n).sql(dialect="duckdb") for n in ordered)
        mode = self.contract.write_mode
        if mode == "merge":
            keys = ", ".join(ident(k).sql(dialect="duckdb") for k in self.contract.primary_key)
            last = f"row_number() OVER (PARTITION BY {keys} ORDER BY {_SEQ} DESC) = 1"
            return f"SELECT {cols} FROM ({self.union}) QUALIFY {last}"
        if mode == "overwrite_partitions":
            parts = ", ".join(ident(k).sql(dialect="duckdb") for k in self.contract.partition_by)
            return (
                f"SELECT {cols} FROM ({self.union}) QUALIFY {_SEQ} = max({_SEQ}) OVER (PARTITION BY {parts})"
            )
        return f"SELECT {cols} FROM ({self.union})"

    def create(self, table_uri: str, storage_options: dict[str, str] | None) -> int:
        """No table yet: this commit creates it with the batch's rows (a merge into nothing inserts)."""
        sql = self._rows(None)
        rows = self.con.sql(sql)
        count = self._count(sql)
        write_deltalake(
            table_uri,
            rows,
            mode="append",
            partition_by=list(self.contract.partition_by) or None,
            configuration=TABLE_CONFIGURATION,
            storage_options=storage_options,
            writer_properties=WRITER_PROPERTIES,
            target_file_size=TARGET_FILE_SIZE,
            commit_properties=self.props,
        )
        return count

    def _count(self, sql: str) -> int:
        if self.contract.write_mode == "append":
            return self.accepted
        found = self.con.execute(f"SELECT count(*) FROM ({sql})").fetchall()  # all: frees the connection
        return int(found[0][0]) if found else 0

    def write(self, table: DeltaTable) -> int:
        sql = self._rows(table)
        rows = self.con.sql(sql)
        schema_mode: Literal["merge"] | None = "merge" if self.merge_schema else None
        if self.contract.write_mode == "merge":
            metrics = (
                table.merge(
                    rows,
                    merge_predicate(self.contract.primary_key, "duckdb"),
                    source_alias="s",
                    target_alias="t",
                    merge_schema=self.merge_schema,
                    writer_properties=WRITER_PROPERTIES,
                    commit_properties=self.props,
                )
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
            return int(metrics.get("num_target_rows_inserted", 0)) + int(
                metrics.get("num_target_rows_updated", 0)
            )
        predicate = None
        if self.contract.write_mode == "overwrite_partitions":
            cols = ", ".join(ident(c).sql(dialect="duckdb") for c in self.contract.partition_by)
            values = self.con.execute(f"SELECT DISTINCT {cols} FROM ({sql})").fetchall()
            predicate = partition_predicate(self.contract.partition_by, values, "duckdb")
        count = self._count(sql)
        options: dict[str, Any] = {
            "partition_by": list(self.contract.partition_by) or None,
            "schema_mode": schema_mode,
            "writer_properties": WRITER_PROPERTIES,
            "target_file_size": TARGET_FILE_SIZE,
            "commit_properties": self.props,
        }
        if predicate is not None:
            write_deltalake(table, rows, mode="overwrite", predicate=predicate, **options)
        else:
            write_deltalake(table, rows, mode="append", **options)
        return count


_SEQ = "__lakehouse_batch_seq"


def _landed(table: DeltaTable, app_id: str, run_id: str) -> tuple[int, int, int]:
    """The commit of this run that already applied the batch (a retried commit call)."""
    history = table.history(SEARCH_DEPTH)
    ref = find_commit(history, app_id)
    if ref is None or not is_own_commit(ref, run_id):
        return table.version(), table.version(), 0
    commit = next((c for c in history if c.get("version") == ref.version), {})
    return ref.version - 1, ref.version, rows_committed(commit)
