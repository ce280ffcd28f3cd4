"""Every mapping between the contract's column types and the other type systems, in one place.

Contract types: string, boolean, int, bigint, double, date, timestamp, decimal(p,s). Standard library only:
the Spark job imports this on EMR's Python 3.9 (scripts/emr_bundle.py).
"""

from __future__ import annotations

__all__ = [
    "DELTA_TYPES",
    "HIVE_TYPES",
    "TRINO_TYPES",
    "contract_type",
    "delta_type",
    "spark_contract_type",
    "spark_ddl_type",
]

# Contract type → Delta (Spark-style) primitive type name; decimal(p,s) is spelled the same.
DELTA_TYPES: dict[str, str] = {
    "string": "string",
    "boolean": "boolean",
    "int": "integer",
    "bigint": "long",
    "double": "double",
    "date": "date",
    "timestamp": "timestamp",
}
_CONTRACT_TYPES: dict[str, str] = {v: k for k, v in DELTA_TYPES.items()}
# Delta's timezone-free timestamp reads as the contract's timestamp.
_TIMESTAMP_NTZ = "timestamp_ntz"

# Delta (Spark-style) primitive names → names Athena's parser knows, for sqlglot's type annotation.
TRINO_TYPES: dict[str, str] = {
    "long": "bigint",
    "integer": "int",
    "short": "smallint",
    "byte": "tinyint",
    "string": "varchar",
}

# Our contract/Delta type names → Hive type names, which is what Glue shows and Athena expects.
HIVE_TYPES: dict[str, str] = {
    "string": "string",
    "str": "string",
    "utf8": "string",
    "large_string": "string",
    "varchar": "string",
    "text": "string",
    "bool": "boolean",
    "boolean": "boolean",
    "int8": "tinyint",
    "byte": "tinyint",
    "tinyint": "tinyint",
    "int16": "smallint",
    "short": "smallint",
    "smallint": "smallint",
    "int32": "int",
    "int": "int",
    "integer": "int",
    "int64": "bigint",
    "long": "bigint",
    "bigint": "bigint",
    "float32": "float",
    "float": "float",
    "real": "float",
    "float64": "double",
    "double": "double",
    "date": "date",
    # Delta `timestamp` is UTC-adjusted; Hive/Athena have one `timestamp` type for both kinds.
    "timestamp": "timestamp",
    "timestamp_ntz": "timestamp",
    "timestamptz": "timestamp",
    "timestamp_tz": "timestamp",
    "datetime": "timestamp",
    "binary": "binary",
    "bytes": "binary",
}


def delta_type(contract_type: str) -> str:
    """Contract type → Delta primitive type name."""
    return DELTA_TYPES.get(contract_type, contract_type)


def contract_type(delta_type_name: str) -> str:
    """Delta primitive type name → contract type (timestamp_ntz reads as timestamp)."""
    name = delta_type_name.replace(" ", "")
    if name == _TIMESTAMP_NTZ:
        return "timestamp"
    return _CONTRACT_TYPES.get(name, name)


def spark_contract_type(spark_type: str) -> str:
    """Spark `simpleString()` type → contract type (Spark already spells int/bigint like the contract)."""
    name = spark_type.replace(" ", "").lower()
    return "timestamp" if name == _TIMESTAMP_NTZ else name


def spark_ddl_type(contract_type: str) -> str:
    """Contract type → Spark SQL DDL type (timestamps are UTC instants: TIMESTAMP)."""
    return {"string": "STRING", "int": "INT"}.get(contract_type, contract_type.upper())
