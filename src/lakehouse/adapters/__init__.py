"""Adapters behind `lakehouse.ports`: `aws` (boto3) and `local` (folders, JSON files, JSON-lines outbox).

Use `lakehouse.adapters.factory.build_adapters(settings)` to get the set the backend calls for. This module
holds only what both catalogs share (the Glue-shaped table entry), so importing it stays cheap.
"""

from __future__ import annotations

import re
from typing import Any

from lakehouse.types import HIVE_TYPES

__all__ = ["columns_changed", "delta_table_input", "hive_type"]

_DECIMAL = re.compile(r"^decimal\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


def hive_type(type_name: str) -> str:
    """Map one of our column type names (contract or Delta spelling) to its Hive spelling.

    Nested types (`array<...>`, `struct<...>`, `map<...>`) are already Hive syntax once their leaves are
    mapped, so leaves are translated recursively and the structure is kept.
    """
    t = type_name.strip().lower()
    if t in HIVE_TYPES:
        return HIVE_TYPES[t]
    m = _DECIMAL.match(t)
    if m:
        return f"decimal({m.group(1)},{m.group(2)})"
    for kind in ("array", "map", "struct"):
        if t.startswith(kind + "<") and t.endswith(">"):
            inner = _split_top_level(t[len(kind) + 1 : -1])
            if kind == "struct":
                parts = []
                for p in inner:
                    name, _, sub = p.partition(":")
                    parts.append(f"{name.strip()}:{hive_type(sub)}")
                return f"struct<{','.join(parts)}>"
            return f"{kind}<{','.join(hive_type(p) for p in inner)}>"
    # Unknown names pass through: Glue accepts any string, and guessing would hide the problem.
    return t


def _split_top_level(s: str) -> list[str]:
    """Split `a:int,b:map<string,int>` on the commas that are not inside angle brackets."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(s):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return [p.strip() for p in parts if p.strip()]


def delta_table_input(
    table: str, location: str, columns: list[tuple[str, str]], partition_keys: list[str]
) -> dict[str, Any]:
    """The Glue `TableInput` of a Delta table Athena reads natively.

    Athena only needs `table_type=DELTA` and the location (it reads the schema from the Delta log), but we
    keep the columns in Glue too so the console, Lake Formation and views see the real schema. Partition
    columns go to `PartitionKeys` and not `Columns`, as Hive/Glue expect.
    """
    types = {name: hive_type(t) for name, t in columns}
    missing = [k for k in partition_keys if k not in types]
    if missing:
        raise ValueError(f"partition keys {missing} are not among the columns of table {table!r}")
    parts = set(partition_keys)
    return {
        "Name": table,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"table_type": "DELTA", "classification": "delta", "EXTERNAL": "TRUE"},
        "StorageDescriptor": {
            "Columns": [{"Name": n, "Type": types[n]} for n, _ in columns if n not in parts],
            "Location": location,
            # Spark (Glue/EMR) reads the Delta log itself; these keep Hive-style tools from mis-reading.
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {
                "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                "Parameters": {"path": location},
            },
        },
        "PartitionKeys": [{"Name": k, "Type": types[k]} for k in partition_keys],
    }


def columns_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when two Glue-shaped entries differ in columns or partition keys (names, order or types)."""

    def shape(entry: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        cols = entry.get("StorageDescriptor", {}).get("Columns", [])
        keys = entry.get("PartitionKeys", [])
        return (
            [(c["Name"], c.get("Type", "")) for c in cols],
            [(k["Name"], k.get("Type", "")) for k in keys],
        )

    return shape(old) != shape(new)
