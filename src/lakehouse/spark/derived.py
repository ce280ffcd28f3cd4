"""Derived (gold) models of a contract on Spark: its models compiled to specs, run by `refresh_models`."""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession

from lakehouse.contracts.model import Contract
from lakehouse.spark.refresh import derived_uri, refresh_models, table_uri
from lakehouse.sql.derived import model_specs, referenced_tables

__all__ = ["derived_uri", "referenced_tables", "refresh_derived", "table_uri"]


def refresh_derived(
    spark: SparkSession, contract: Contract, lake_root: str, *, models: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Run every derived model of the contract (or the named ones) and overwrite its Delta table.

    Returns model → {uri, version, rows}.
    """
    return refresh_models(spark, model_specs(contract, models), lake_root, contract.name)
