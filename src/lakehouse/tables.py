"""Delta table operations with delta-rs: version, history, rollback (RESTORE), maintenance, row counts.

This module runs inside Lambda, where pyarrow does not fit: it uses only `deltalake` (whose Arrow objects
are arro3, not pyarrow). `uri` is `s3://bucket/prefix` or an absolute local path; `storage_options` come
from `ObjectStore.storage_options()`.
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import DeltaError

from lakehouse import access
from lakehouse.duckdb_engine.delta import open_table
from lakehouse.errors import CommitConflictError, InvalidInputError
from lakehouse.table_properties import TABLE_CONFIGURATION

__all__ = [
    "TABLE_CONFIGURATION",
    "columns",
    "history",
    "maintain",
    "open_table",
    "partition_columns",
    "rollback",
    "row_count",
    "table_version",
    "versions",
]

# commitInfo keys delta-rs writes itself; anything else in a commit is custom metadata (run id, app id...).
_STANDARD_COMMIT_KEYS = frozenset(
    {
        "timestamp",
        "operation",
        "operationParameters",
        "operationMetrics",
        "engineInfo",
        "clientVersion",
        "version",
        "readVersion",
        "isolationLevel",
        "isBlindAppend",
        "userId",
        "userName",
        "txnId",
    }
)


def _require(uri: str, storage_options: dict[str, str] | None) -> DeltaTable:
    dt = open_table(uri, storage_options)
    if dt is None:
        raise InvalidInputError(f"no Delta table at {uri}")
    return dt


def table_version(uri: str, storage_options: dict[str, str] | None = None) -> int | None:
    """The latest version, or None if there is no table."""
    dt = open_table(uri, storage_options)
    return None if dt is None else dt.version()


def _iso_ms(ms: Any) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).isoformat(timespec="milliseconds")


def history(
    uri: str, storage_options: dict[str, str] | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Commits, newest first: version, timestamp (ISO UTC), operation, parameters, metrics, metadata.

    `metadata` holds the custom commit metadata (e.g. the run id and app transaction the engine records
    there); delta-rs does not expose the log's `txn` actions through history.
    """
    dt = _require(uri, storage_options)
    out: list[dict[str, Any]] = []
    for h in dt.history(limit):
        out.append(
            {
                "version": int(h["version"]),
                "timestamp": _iso_ms(h.get("timestamp")),
                "operation": h.get("operation"),
                "parameters": dict(h.get("operationParameters") or {}),
                "metrics": dict(h.get("operationMetrics") or {}),
                "metadata": {k: v for k, v in h.items() if k not in _STANDARD_COMMIT_KEYS},
            }
        )
    out.sort(key=lambda r: int(r["version"]), reverse=True)
    return out


def versions(uri: str, storage_options: dict[str, str] | None = None) -> list[int]:
    """Every version still in the log, oldest first ([] if there is no table)."""
    if open_table(uri, storage_options) is None:
        return []
    return sorted(h["version"] for h in history(uri, storage_options))


def rollback(
    uri: str,
    version: int,
    *,
    expected_current: int | None = None,
    storage_options: dict[str, str] | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Make the table's content what it was at `version` (Delta RESTORE, a new commit).

    Idempotent, because Step Functions may retry it: nothing happens if the table is already at `version`,
    or if its latest commit is already a RESTORE to `version`. `expected_current` is the version this run
    left the table at; if someone else committed since, restoring would throw their commit away, so it
    refuses with CommitConflictError instead.
    """
    access.require_table(uri, write=True)  # local IAM: RESTORE commits a new version
    dt = _require(uri, storage_options)
    current = dt.version()
    result: dict[str, Any] = {"uri": uri, "restored_to": version, "version_before": current}
    if version < 0 or version > current:
        raise InvalidInputError(
            f"cannot roll back {uri} to version {version}: the table has versions 0..{current}"
        )
    if current == version:
        return {**result, "restored": False, "version_after": current, "reason": "already at version"}
    latest = dt.history(1)[0]
    if latest.get("operation") == "RESTORE" and _restore_target(latest) == version:
        return {**result, "restored": False, "version_after": current, "reason": "already restored"}
    if expected_current is not None and current != expected_current:
        raise CommitConflictError(
            f"refusing to roll back {uri}: expected version {expected_current}, found {current} "
            "(another writer committed since)"
        )
    props = CommitProperties(custom_metadata={"lakehouse.reason": reason}) if reason else None
    metrics = dt.restore(version, commit_properties=props)
    return {**result, "restored": True, "version_after": dt.version(), "metrics": dict(metrics)}


def empty(
    uri: str,
    *,
    expected_current: int,
    storage_options: dict[str, str] | None = None,
    reason: str,
) -> dict[str, Any]:
    """Undo the commit that created the table: no version before it holds "no rows", so every row is
    deleted in a new commit (the table, its schema and its history stay; readers see no rows).

    Idempotent like `rollback`: nothing happens if the latest commit is already this emptying.
    """
    dt = _require(uri, storage_options)
    current = dt.version()
    result: dict[str, Any] = {"uri": uri, "restored_to": -1, "version_before": current}
    latest = dt.history(1)[0]
    if latest.get("operation") == "DELETE" and latest.get("lakehouse.reason") == reason:
        return {**result, "restored": False, "version_after": current, "reason": "already emptied"}
    if current != expected_current:
        raise CommitConflictError(
            f"refusing to empty {uri}: expected version {expected_current}, found {current} "
            "(another writer committed since)"
        )
    metrics = dt.delete(commit_properties=CommitProperties(custom_metadata={"lakehouse.reason": reason}))
    return {**result, "restored": True, "version_after": dt.version(), "metrics": dict(metrics)}


def _restore_target(commit: dict[str, Any]) -> int | None:
    value = (commit.get("operationParameters") or {}).get("version")
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def maintain(
    uri: str,
    *,
    retention_hours: int = 168,
    storage_options: dict[str, str] | None = None,
    enforce_retention_duration: bool = True,
    target_size: int | None = None,
) -> dict[str, Any]:
    """Compact small files, write a checkpoint, and vacuum files unreferenced for `retention_hours`.

    Compaction runs first so the checkpoint covers its commit (readers then start from the compacted
    state). Vacuum deletes only files removed longer than the retention window ago, so concurrent readers
    and rollbacks within the window still find their files, and files no commit references (left by a
    crashed writer) once they are older than the window, so a commit in flight keeps its new files.
    Lowering `retention_hours` below the table's
    `delta.deletedFileRetentionDuration` needs `enforce_retention_duration=False`.
    """
    access.require_table(uri, write=True, delete=True)  # local IAM: compaction commits, VACUUM deletes
    dt = _require(uri, storage_options)
    version_before = dt.version()
    files_before = len(dt.file_uris())
    _check_retention(dt, uri, retention_hours, enforce_retention_duration)  # before changing anything
    compact = dt.optimize.compact(target_size=target_size)
    dt.update_incremental()
    dt.create_checkpoint()
    checkpoint_version = dt.version()
    # full: also the files no commit ever referenced (a crashed writer's), once older than the window,
    # as Spark's VACUUM does; a commit still being written is younger than that, so it keeps its files.
    vacuumed = dt.vacuum(
        retention_hours=retention_hours,
        dry_run=False,
        enforce_retention_duration=enforce_retention_duration,
        full=True,
    )
    abandoned = _remove_abandoned_uploads(uri, retention_hours)
    dt.update_incremental()
    return {
        "uri": uri,
        "version_before": version_before,
        "version_after": dt.version(),
        "files_before": files_before,
        "files_after": len(dt.file_uris()),
        "compact": dict(compact),
        # Vacuum commits (VACUUM START/END) land after the checkpoint, so version_after can be higher.
        "checkpoint_version": checkpoint_version,
        "vacuumed_files": len(vacuumed),
        "abandoned_uploads": len(abandoned),
        # A sample, so the result stays small enough for Step Functions state (256 KB).
        "vacuumed_sample": sorted(vacuumed)[:20],
    }


def _remove_abandoned_uploads(uri: str, retention_hours: int) -> list[str]:
    """Local tables: remove `<file>#<n>` files older than the window, which delta-rs never lists.

    delta-rs writes a local file as `<name>#<n>` and renames it when complete; a crash in between leaves
    the `#` file, invisible to vacuum. S3 has no such files (an unfinished upload is not an object).
    """
    if "://" in uri and not uri.startswith("file://"):
        return []
    base = Path(uri.removeprefix("file://"))
    cutoff = time.time() - retention_hours * 3600
    removed = []
    for dirpath, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if d != "_delta_log"]
        for name in files:
            head, sep, tail = name.rpartition("#")
            path = Path(dirpath) / name
            with contextlib.suppress(OSError):
                if sep and head and tail.isdigit() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(str(path.relative_to(base)))
    return removed


def _check_retention(dt: DeltaTable, uri: str, retention_hours: int, enforce: bool) -> None:
    """A retention below the table's minimum is bad input, said before the table is touched."""
    if retention_hours < 0:
        raise InvalidInputError(f"retention must be 0 hours or more, got {retention_hours}")
    try:
        dt.vacuum(retention_hours=retention_hours, dry_run=True, enforce_retention_duration=enforce)
    except DeltaError as exc:
        if "retention" not in str(exc).lower():
            raise
        raise InvalidInputError(
            f"cannot vacuum {uri} keeping only {retention_hours} hour(s) of removed files: {exc}. "
            "Readers, time travel and rollbacks within the table's retention window "
            "(delta.deletedFileRetentionDuration) still need those files."
        ) from exc


def row_count(uri: str, storage_options: dict[str, str] | None = None) -> int:
    """Rows in the current version, from the add actions' stats (no data files read when stats exist)."""
    dt = _require(uri, storage_options)
    actions = dt.get_add_actions(flatten=True)
    if "num_records" in actions.column_names:
        counts = actions.column("num_records").to_pylist()
        if all(c is not None for c in counts):
            return sum(int(c) for c in counts)
    # Some file lacks stats (written by another engine without them): let delta-rs count.
    return int(dt.count())


def _type_name(t: Any) -> str:
    """A Delta schema type as a Hive-style type string (`array<int>`, `struct<a:bigint>`...)."""
    kind = type(t).__name__
    if kind == "PrimitiveType":
        return str(t.type)
    if kind == "ArrayType":
        return f"array<{_type_name(t.element_type)}>"
    if kind == "MapType":
        return f"map<{_type_name(t.key_type)},{_type_name(t.value_type)}>"
    if kind == "StructType":
        return "struct<" + ",".join(f"{f.name}:{_type_name(f.type)}" for f in t.fields) + ">"
    return str(t)


def columns(uri: str, storage_options: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(name, Delta type) of each column, in table order: what `Catalog.upsert_delta_table` takes."""
    dt = _require(uri, storage_options)
    return [(f.name, _type_name(f.type)) for f in dt.schema().fields]


def partition_columns(uri: str, storage_options: dict[str, str] | None = None) -> list[str]:
    """The table's partition columns, in order."""
    return list(_require(uri, storage_options).metadata().partition_columns)
