"""lakehouse.types: each contract type round-trips through every mapping; no other module has a type table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import lakehouse
from lakehouse.adapters import hive_type
from lakehouse.types import (
    DELTA_TYPES,
    HIVE_TYPES,
    TRINO_TYPES,
    contract_type,
    delta_type,
    spark_contract_type,
    spark_ddl_type,
)

CONTRACT_TYPES = ["string", "boolean", "int", "bigint", "double", "date", "timestamp", "decimal(10,2)"]
SRC = Path(lakehouse.__file__).resolve().parent  # the package under test, wherever it is imported from


@pytest.mark.parametrize("t", CONTRACT_TYPES)
def test_delta_round_trip(t: str) -> None:
    assert contract_type(delta_type(t)) == t


@pytest.mark.parametrize("t", CONTRACT_TYPES)
def test_spark_ddl_round_trip(t: str) -> None:
    # Spark's simpleString() spells the DDL type in lower case.
    assert spark_contract_type(spark_ddl_type(t).lower()) == t


@pytest.mark.parametrize("t", CONTRACT_TYPES)
def test_hive_type_of_contract_and_delta_spelling_agree(t: str) -> None:
    assert hive_type(t) == hive_type(delta_type(t)) == t


@pytest.mark.parametrize("t", CONTRACT_TYPES)
def test_trino_name_of_delta_spelling_parses_back_to_contract(t: str) -> None:
    trino = TRINO_TYPES.get(delta_type(t), delta_type(t))
    assert HIVE_TYPES.get(trino, trino) == t


def test_timestamp_ntz_reads_as_timestamp() -> None:
    assert contract_type("timestamp_ntz") == spark_contract_type("timestamp_ntz") == "timestamp"
    assert contract_type("decimal(10, 2)") == "decimal(10,2)"


def test_every_simple_contract_type_has_a_delta_name() -> None:
    from lakehouse.contracts.model import SIMPLE_TYPES

    assert set(SIMPLE_TYPES) == set(DELTA_TYPES)


def test_no_other_module_defines_a_type_table() -> None:
    table_entry = re.compile(r'^\s*"(timestamp_ntz|long|integer|bigint)"\s*:', re.MULTILINE)
    offenders = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if p.name != "types.py" and ('"timestamp_ntz"' in p.read_text() or table_entry.search(p.read_text()))
    ]
    assert offenders == []
