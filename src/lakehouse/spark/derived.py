"""Derived (gold) models: each contract's Spark SQL over the lake's Delta tables, overwritten as Delta."""

from __future__ import annotations

from typing import Any

import sqlglot
from pyspark.sql import SparkSession
from sqlglot import exp

from lakehouse import access
from lakehouse.contracts.model import Contract
from lakehouse.errors import ContractError
from lakehouse.spark.ingest import session_confs, table_property_defaults, table_state


def table_uri(lake_root: str, dataset: str) -> str:
    return f"{lake_root.rstrip('/')}/tables/{dataset}"


def derived_uri(lake_root: str, model: str) -> str:
    return f"{lake_root.rstrip('/')}/derived/{model}"


def referenced_tables(sql: str) -> list[str]:
    """The (unqualified) table names a model's SQL reads, CTE names excluded."""
    try:
        tree = sqlglot.parse_one(sql, read="spark")
    except sqlglot.errors.ParseError as exc:
        raise ContractError(f"derived SQL does not parse as Spark SQL: {exc}") from exc
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return sorted({t.name for t in tree.find_all(exp.Table) if t.name not in ctes})


def refresh_derived(
    spark: SparkSession, contract: Contract, lake_root: str, *, models: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Run every derived model of the contract (or the named ones) and overwrite its Delta table.

    The tables a model reads are temp views named by dataset, loaded from `<lake_root>/tables/<name>`.
    Returns model → {uri, version, rows}.
    """
    wanted = [m for m in contract.derived if models is None or m.name in models]
    out: dict[str, dict[str, Any]] = {}
    # New derived tables get the same properties as ingested ones (no deletion vectors: Athena).
    with session_confs(spark, table_property_defaults()):
        for model in wanted:
            views = []
            for dataset in referenced_tables(model.sql):
                source = table_uri(lake_root, dataset)
                access.require_table(source)  # local IAM (docs/IAM.md)
                if table_state(spark, source)[0] < 0:
                    raise ContractError(
                        f"derived model {model.name!r} of {contract.name!r} reads {dataset!r}, "
                        f"but there is no Delta table at {source}"
                    )
                spark.read.format("delta").load(source).createOrReplaceTempView(dataset)
                views.append(dataset)
            try:
                frame = spark.sql(model.sql)
                target = derived_uri(lake_root, model.name)
                access.require_table(target, write=True)
                frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(target)
                version, _ = table_state(spark, target)
                rows = spark.read.format("delta").load(target).count()
                out[model.name] = {"uri": target, "version": version, "rows": rows}
            finally:
                for view in views:
                    spark.catalog.dropTempView(view)
    return out
