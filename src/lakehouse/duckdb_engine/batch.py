"""A batch of objects into one Delta transaction (docs/ARCHITECTURE.md, "Pending set and drains").

Each object runs the one ingest flow (`lakehouse.ingest_core.ingest`) against the real table's state,
so its duplicate check, schema checks, row rules, counts and rejects are exactly a single file's; only
its accepted rows go to a Parquet file in the work folder instead of the lake. When every object of
the batch has passed, `commit_staged` commits all staged rows to the table in one commit that carries
one app transaction per object version. A file that fails raises its own error, naming the object, and
nothing is committed: the drain splits it out and the rest commit in the next batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from lakehouse.commit_log import SEARCH_DEPTH, commit_metadata, find_commit, is_own_commit
from lakehouse.contracts.model import Contract
from lakehouse.duckdb_engine.delta import TARGET_FILE_SIZE, WRITER_PROPERTIES, open_table, with_commit_retries
from lakehouse.duckdb_engine.ingest import DuckDBSteps, _Txn
from lakehouse.ingest_core import (
    Committed,
    Counts,
    IngestResult,
    Txn,
    ingest,
    merge_predicate,
    partition_predicate,
    rows_committed,
)
from lakehouse.sql.compiler import IngestPlan, RunMeta, ident
from lakehouse.sql.evolution import commit_select
from lakehouse.table_properties import TABLE_CONFIGURATION


class _StagingBackend(DuckDBSteps):
    """The DuckDB engine's steps, writing an object's accepted rows to a Parquet file in the work folder
    instead of the lake (the flow's two passes: count and check, then this "commit")."""

    def __init__(self, *args: Any, stage_path: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stage_path = stage_path
        self.merge_schema = False

    def create_table(self, plan: IngestPlan, contract: Contract) -> None:
        """Nothing yet: the batch's one commit creates the table."""

    def commit(
        self, plan: IngestPlan, absent: list[tuple[str, str]], merge_schema: bool, txn: Txn, counts: Counts
    ) -> Committed | None:
        """The rows this object would commit (a merge's deduplicated per key), to Parquet."""
        self.merge_schema = merge_schema
        rows = commit_select(plan, absent).sql(dialect="duckdb")
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
) -> StagedObject:
    """Run the ingest flow of one object of a batch; its rows end in a Parquet file under `work_dir`."""
    stage_path = work_dir / "staged.parquet"
    backend = _StagingBackend(
        path,
        table_uri,
        work_dir,
        storage_options,
        memory_limit=memory_limit,
        threads=threads,
        stage_path=stage_path,
    )
    txn = _Txn(app_id, txn_version, meta)
    result = ingest(backend, contract, meta, txn, source_name)
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
