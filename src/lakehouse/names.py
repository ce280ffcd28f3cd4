"""Column names the engines add or use internally, defined once.

A file's field or a contract column with one of these names (compared case-insensitively, as DuckDB
and Spark compare identifiers) would collide with the engine's own column: a header named
`_rejected` could switch off the row rules, one named `_row` could pick the row a merge keeps. Such
names are therefore refused (contract: ContractError, file: SchemaMismatchError).
"""

from __future__ import annotations

from collections.abc import Iterable

ROW_ORDINAL = "_row"  # the data row's ordinal in the file
REJECTED = "_rejected"
REJECT_REASON = "_reject_reason"
REJECT_ACTION = "_reject_action"
RESCUED = "_rescued"  # schema_evolution: rescue
METADATA_COLUMNS = ("_source_uri", "_source_version", "_ingested_at", "_run_id")
RANK = "_rank"  # merge: the last row per key
ACCEPTED = "_accepted"  # DuckDB append stream
CORRUPT_RECORD = "_corrupt_record"  # Spark's malformed-record column
SPARK_ROW_ID = "_lakehouse_mid"  # Spark: monotonically_increasing_id while numbering rows

RESERVED_COLUMNS: tuple[str, ...] = (
    ROW_ORDINAL,
    REJECTED,
    REJECT_REASON,
    REJECT_ACTION,
    RESCUED,
    *METADATA_COLUMNS,
    RANK,
    ACCEPTED,
    CORRUPT_RECORD,
    SPARK_ROW_ID,
)
_RESERVED = {n.casefold() for n in RESERVED_COLUMNS}


def reserved(names: Iterable[str]) -> list[str]:
    """The names among `names` that collide with a reserved column."""
    return [n for n in names if n.casefold() in _RESERVED]
