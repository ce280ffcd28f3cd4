"""The ingest flow, once, for both engines (DuckDB + delta-rs on Lambda, Spark + Delta on Glue).

`ingest(backend, ...)` is the whole flow: the already-applied check (resumed vs duplicate, from the
commit log), reading the source, the schema checks, the counts and their messages (empty file, a
`fail` row, every row rejected), the rejects, the write-mode dispatch and the result. An engine
implements only what differs, behind `IngestBackend`: open the table, read the source as strings,
run the transform, count, write rejects, commit. DuckDB's single-pass streaming append is an engine
capability (`StreamingAppend`) that the flow uses when the engine has it.

Neither duckdb, deltalake nor pyspark is imported here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from sqlglot import exp

from lakehouse import access
from lakehouse.commit_log import find_commit, is_own_commit
from lakehouse.contracts.model import Contract
from lakehouse.errors import InvalidInputError, RowRuleViolationError
from lakehouse.formats import Detected
from lakehouse.sql.compiler import IngestPlan, RunMeta, col, compile_ingest, ident
from lakehouse.sql.evolution import check_file_schema, check_table_schema
from lakehouse.state import CommitResult, ObjectCommit

# The quarantined-rows Parquet file: one row per rejected data row or malformed line.
REJECT_COLUMNS = ("source_row", "source_line", "reason", "raw_line")
MALFORMED_PREFIX = "malformed line: "

Malformed = list[tuple[int, str, str]]  # (line, error, raw line) of lines the reader set aside


class IngestResult(CommitResult):
    """What one ingest did: `$.commit` (`lakehouse.state.CommitResult`, the one list of its fields) as an
    engine returns it, plus `rejects_path`, where the engine wrote the rejected rows (DuckDB: a file in
    the run's work folder; Spark: the quarantine URI). The stage or the Glue job publishes it as
    `rejects_uri`."""

    rejects_path: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class Txn:
    """The app transaction of one object version, and the run committing it."""

    app_id: str
    version: int
    meta: RunMeta

    def applied_by(self, found: int | None) -> bool:
        """Whether a table whose transaction version for `app_id` is `found` holds this one already."""
        return found is not None and found >= self.version


@dataclass
class Counts:
    """The transformed rows by what happens to them, and the lines the reader set aside."""

    total: int = 0
    dropped: int = 0
    failed: int = 0
    quarantined: int = 0
    malformed: int = 0

    @property
    def accepted(self) -> int:
        return self.total - self.dropped - self.quarantined


@dataclass(frozen=True)
class Committed:
    """A commit this run made: rows written and the version it created."""

    rows_written: int
    version_after: int


# ---------------------------------------------------------------------------------------------
# Messages and SQL both engines share.


def object_commit(object_id: str, result: IngestResult, rejects_uri: str | None) -> ObjectCommit:
    """One object's outcome in a batch's `$.commit` (both engines), its rejects where they are kept."""
    return ObjectCommit(
        object_id=object_id,
        status=result.status,
        resumed=result.resumed,
        duplicate_of=result.duplicate_of,
        rows_read=result.rows_read,
        rows_written=result.rows_written,
        rows_rejected=result.rows_rejected,
        rows_dropped=result.rows_dropped,
        rejects_uri=rejects_uri,
    )


def batch_commit_result(
    objects: list[ObjectCommit], results: Sequence[IngestResult], landed: tuple[int, int, int] | None
) -> CommitResult:
    """A batch's `$.commit` (both engines): the one commit that `landed` (version before, after, rows
    written), or the one a retried run resumes after, or none (every object a duplicate); and each
    object's own outcome."""
    resumed = [r for r in results if r.resumed]
    if landed is not None:
        before, after, written = landed
    elif resumed:
        before, after, written = resumed[0].version_before, resumed[0].version_after, resumed[0].rows_written
    else:
        before = after = max((r.version_after for r in results), default=-1)
        written = 0
    return CommitResult(
        status="committed" if landed is not None or resumed else "duplicate",
        resumed=landed is None and bool(resumed),
        rows_read=sum(o.rows_read for o in objects),
        rows_written=written,
        rows_rejected=sum(o.rows_rejected for o in objects),
        rows_dropped=sum(o.rows_dropped for o in objects),
        version_before=before,
        version_after=after,
        bytes_read=sum(r.bytes_read for r in results),
        objects=objects,
    )


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def no_rows_error(name: str) -> InvalidInputError:
    return InvalidInputError(f"{name}: has no data rows (empty, or a header only)")


def fail_rule_error(name: str, failed: int, first: tuple[Any, Any]) -> RowRuleViolationError:
    return RowRuleViolationError(
        f"{name}: {failed} row(s) break a rule whose action is fail; first at data row {first[0]}: {first[1]}"
    )


def all_rejected_error(name: str, counts: Counts, *, with_malformed: bool = True) -> InvalidInputError:
    malformed = f", {counts.malformed} malformed" if with_malformed else ""
    return InvalidInputError(
        f"{name}: every row was rejected ({counts.quarantined} quarantined, {counts.dropped} dropped"
        f"{malformed}); nothing to commit"
    )


def merge_predicate(primary_key: Sequence[str], dialect: str) -> str:
    """`t.k = s.k AND ...` over the primary key: target `t`, source `s`."""
    return " AND ".join(
        exp.EQ(this=col(k, "t"), expression=col(k, "s")).sql(dialect=dialect) for k in primary_key
    )


def partition_predicate(partition_by: Sequence[str], rows: Sequence[Sequence[Any]], dialect: str) -> str:
    """`replaceWhere` for exactly the partitions present in this file (`rows`: their distinct values)."""
    clauses = []
    for row in rows:
        terms = []
        for name, value in zip(partition_by, row, strict=True):
            quoted = ident(name).sql(dialect=dialect)
            if value is None:
                terms.append(f"{quoted} IS NULL")
            else:
                terms.append(f"{quoted} = {exp.Literal.string(str(value)).sql(dialect=dialect)}")
        clauses.append("(" + " AND ".join(terms) + ")")
    return " OR ".join(clauses) or "false"


def rows_committed(commit: dict[str, Any]) -> int:
    """Rows a delta-rs commit added (append) or inserted and updated (merge), from its metrics."""
    metrics = commit.get("operationMetrics") or {}
    if "num_added_rows" in metrics:
        return int(metrics["num_added_rows"] or 0)
    return int(metrics.get("num_target_rows_inserted") or 0) + int(
        metrics.get("num_target_rows_updated") or 0
    )


def already_applied(history: list[dict[str, Any]], current_version: int, txn: Txn) -> IngestResult:
    """The object version is in the table: resumed (this run's own commit) or a duplicate (another's)."""
    ref = find_commit(history, txn.app_id)
    if ref is not None and is_own_commit(ref, txn.meta.run_id):
        commit = next((c for c in history if c.get("version") == ref.version), {})
        return IngestResult(
            status="committed",
            resumed=True,
            rows_written=rows_committed(commit),
            version_before=ref.version - 1,
            version_after=ref.version,
        )
    return IngestResult(
        status="duplicate",
        duplicate_of=ref.run_id if ref is not None else None,
        version_before=current_version,
        version_after=current_version,
    )


# ---------------------------------------------------------------------------------------------
# What an engine implements.


class IngestBackend(Protocol):
    """The engine-specific steps of one ingest (one object, one table)."""

    table_uri: str

    def table_state(self, app_id: str) -> tuple[int, int | None]:
        """(table version or -1 when there is no table, the app's transaction version or None)."""

    def applied_history(self) -> tuple[list[dict[str, Any]], int]:
        """(the latest commits, newest first, with `version` and `userMetadata`; current version)."""

    def detect(self, name: str) -> Detected:
        """What the object is, from its bytes."""

    def open_source(self, contract: Contract, detected: Detected, name: str) -> list[str]:
        """Check and read the object as strings (relation `src`); its column names."""

    def table_columns(self) -> dict[str, str]:
        """name → contract type of the existing table."""

    def transform(self, plan: IngestPlan) -> None:
        """Make `plan` the relation `transformed` over `src`."""

    def counts(self, plan: IngestPlan, name: str) -> Counts:
        """Totals of `transformed` by reject action, and the malformed lines."""

    def first_failure(self) -> tuple[Any, Any]:
        """(data row, reason) of the first row whose rule action is `fail`."""

    def write_rejects(self, plan: IngestPlan, counts: Counts) -> str | None:
        """Write the quarantined rows and malformed lines; where they are, or None when none."""

    def create_table(self, plan: IngestPlan, contract: Contract) -> None:
        """Create the (empty) table for a merge or partition overwrite that finds none."""

    def commit(
        self, plan: IngestPlan, absent: list[tuple[str, str]], merge_schema: bool, txn: Txn, counts: Counts
    ) -> Committed | None:
        """Commit the accepted rows under the app transaction; None if it turned out already applied."""

    def close(self) -> None:
        """Release what the ingest held (connections, cached frames, views)."""


@runtime_checkable
class StreamingAppend(Protocol):
    """An engine that appends in one pass: counts and checks happen inside its write stream."""

    def append_streaming(
        self, plan: IngestPlan, absent: list[tuple[str, str]], merge_schema: bool, txn: Txn, name: str
    ) -> tuple[Committed, Counts] | None:
        """Append, raising the flow's errors from inside the stream; None if already applied."""


# ---------------------------------------------------------------------------------------------
# The flow.


def ingest(backend: IngestBackend, contract: Contract, meta: RunMeta, txn: Txn, name: str) -> IngestResult:
    """Ingest one object into `backend.table_uri` exactly once (see `lakehouse.duckdb_engine.ingest`)."""
    started = time.monotonic()

    def timed(result: IngestResult) -> IngestResult:
        result.duration_ms = int((time.monotonic() - started) * 1000)
        return result

    def applied() -> IngestResult:
        return timed(already_applied(*backend.applied_history(), txn))

    access.require_table(backend.table_uri, write=True)  # local IAM: the engine reads the log and commits
    version_before, found = backend.table_state(txn.app_id)
    if txn.applied_by(found):
        return applied()
    detected = backend.detect(name)
    try:
        outcome = _read_and_commit(
            backend, contract, meta, txn, name, detected=detected, version_before=version_before
        )
    finally:
        backend.close()
    if outcome is None:
        return applied()
    committed, counts, plan, rejects_path = outcome
    return timed(
        IngestResult(
            status="committed",
            rows_read=counts.total + counts.malformed,
            rows_written=committed.rows_written,
            rows_rejected=counts.quarantined + counts.malformed,
            rows_dropped=counts.dropped,
            version_before=version_before,
            version_after=committed.version_after,
            bytes_read=detected.size_bytes,
            rejects_path=rejects_path,
            added_columns=plan.added_columns,
            format=detected.kind,
        )
    )


def _read_and_commit(
    backend: IngestBackend,
    contract: Contract,
    meta: RunMeta,
    txn: Txn,
    name: str,
    *,
    detected: Detected,
    version_before: int,
) -> tuple[Committed, Counts, IngestPlan, str | None] | None:
    """Read, transform, check and commit; None if the app transaction turned out applied already."""
    columns = backend.open_source(contract, detected, name)
    plan = compile_ingest(contract, columns, meta)
    check_file_schema(plan, name)
    existing = backend.table_columns() if version_before >= 0 else None
    merge_schema, absent = check_table_schema(plan, existing, name)
    backend.transform(plan)
    if contract.write_mode == "append" and isinstance(backend, StreamingAppend):
        # One pass over the file: the counts and their errors come from inside the write stream.
        streamed = backend.append_streaming(plan, absent, merge_schema, txn, name)
        if streamed is None:
            return None
        committed, counts = streamed
        return committed, counts, plan, backend.write_rejects(plan, counts)

    # Pass 1: rows that break a rule, and the totals. Nothing is committed before this passes.
    counts = backend.counts(plan, name)
    if counts.total == 0 and not counts.malformed:
        raise no_rows_error(name)
    if counts.failed:
        raise fail_rule_error(name, counts.failed, backend.first_failure())
    rejects_path = backend.write_rejects(plan, counts)
    if counts.accepted == 0:
        raise all_rejected_error(name, counts)

    # Pass 2: commit the accepted rows with the app transaction.
    if version_before < 0 and contract.write_mode != "append":
        backend.create_table(plan, contract)
    written = backend.commit(plan, absent, merge_schema, txn, counts)
    if written is None:
        return None
    return written, counts, plan, rejects_path
