"""delta-rs helpers shared by the engine, the stages and table operations (no pyarrow needed)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from deltalake import DeltaTable, Field, Schema, WriterProperties
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from deltalake.schema import PrimitiveType

from lakehouse import access
from lakehouse.errors import CommitConflictError
from lakehouse.table_properties import TABLE_CONFIGURATION
from lakehouse.types import contract_type, delta_type

T = TypeVar("T")

# Row groups of 32Ki rows: delta-rs buffers a row group per open partition writer, so the
# parquet default (1Mi rows) costs ~100 MB per partition of a wide table. 32Ki instead of 64Ki rows
# lowered the engine's peak on TPC-H lineitem SF1 (7 partitions) to a median of 585 MB (docs/BENCHMARKS.md).
WRITER_PROPERTIES = WriterProperties(max_row_group_size=32 * 1024, compression="SNAPPY")

# delta-rs keeps each open data file in memory until it is complete, one per partition being
# written: smaller files bound that (OPTIMIZE compacts them later).
TARGET_FILE_SIZE = 32 * 1024 * 1024


def open_table(uri: str, storage_options: Mapping[str, str] | None = None) -> DeltaTable | None:
    """The table at `uri`, or None when there is none yet."""
    access.require_table(uri)  # local IAM: delta-rs lists and reads the log (docs/IAM.md)
    try:
        return DeltaTable(uri, storage_options=dict(storage_options or {}))
    except TableNotFoundError:
        return None


def table_columns(table: DeltaTable) -> dict[str, str]:
    """name → contract type for every column of the current schema."""
    out: dict[str, str] = {}
    for field in table.schema().fields:
        field_type = field.type
        type_name = field_type.type if isinstance(field_type, PrimitiveType) else str(field_type)
        out[field.name] = contract_type(str(type_name))
    return out


def create_table(
    uri: str,
    columns: list[tuple[str, str]],
    partition_by: list[str],
    storage_options: Mapping[str, str] | None = None,
) -> DeltaTable:
    """Create the table if it does not exist. Safe to race: the loser opens the winner's table."""
    schema = Schema([Field(name, PrimitiveType(delta_type(t)), nullable=True) for name, t in columns])
    try:
        return DeltaTable.create(
            uri,
            schema,
            mode="ignore",
            partition_by=partition_by or None,
            configuration=TABLE_CONFIGURATION,
            storage_options=dict(storage_options or {}),
        )
    except CommitFailedError:
        existing = open_table(uri, storage_options)
        if existing is None:
            raise
        return existing


def with_commit_retries(action: Callable[[int], T], attempts: int = 8, base_delay: float = 0.1) -> T:
    """Run `action(attempt)`, retrying Delta commit conflicts with full-jitter exponential backoff.

    delta-rs does not back off between its own commit attempts, so under concurrent writers some
    commits fail outright; the caller's action must re-read the snapshot (and its app transaction)
    on each attempt.
    """
    for attempt in range(attempts):
        try:
            return action(attempt)
        except CommitFailedError as exc:
            if attempt == attempts - 1:
                raise CommitConflictError(f"Delta commit failed after {attempts} attempts: {exc}") from exc
            time.sleep(random.uniform(0, base_delay * 2**attempt))
    raise AssertionError("unreachable")
