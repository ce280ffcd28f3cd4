"""Derived (gold) models on Spark, from compiled model specs: what the EMR job `RefreshDerived` runs.

A spec is `{"name", "sql", "sources"}` (`lakehouse.sql.derived.model_specs`): the model's Spark SQL and
the datasets it reads. The specs come as JSON (`dist/derived_models.json`, written by
scripts/upload_artifacts.sh), so this module needs neither the contract model (pydantic, PyYAML) nor
sqlglot: it runs on EMR's own Python 3.9 with pyspark and Delta only (tests/unit/test_emr_bundle.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import SparkSession

from lakehouse import layout
from lakehouse.errors import ContractError
from lakehouse.spark.delta_tables import session_confs, table_property_defaults, table_state


def table_uri(lake_root: str, dataset: str) -> str:
    return f"{lake_root.rstrip('/')}/{layout.table_key(dataset)}"


def derived_uri(lake_root: str, model: str) -> str:
    return f"{lake_root.rstrip('/')}/{layout.derived_key(model)}"


def _require_table(uri: str, *, write: bool = False) -> None:
    """Local IAM checkpoint (docs/IAM.md). `lakehouse.access` is deliberately not imported: this module
    ships to EMR, where IAM itself decides; in a local run the executor has loaded it already."""
    access = sys.modules.get("lakehouse.access")
    if access is not None:
        access.require_table(uri, write=write)


def read_text(spark: SparkSession, uri: str) -> str:
    """A small text object (s3://, file:// or a local path) through Spark's own file systems."""
    rows = spark.read.text(uri, wholetext=True).collect()
    if not rows:
        raise ContractError(f"{uri} is empty")
    return str(rows[0][0])


def models_of(
    document: Mapping[str, Any], dataset: str, names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The specs of `dataset` (or only the named ones) from the derived-models document."""
    specs = document.get("datasets", {}).get(dataset)
    if specs is None:
        raise ContractError(f"no derived models of {dataset!r} in the derived-models document")
    chosen = [dict(s) for s in specs if names is None or s["name"] in names]
    missing = sorted(set(names or []) - {s["name"] for s in chosen})
    if missing:
        raise ContractError(f"{dataset!r} has no derived models named {missing}")
    return chosen


def load_models(
    spark: SparkSession, uri: str, dataset: str, names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    return models_of(json.loads(read_text(spark, uri)), dataset, names)


def refresh_models(
    spark: SparkSession, models: Sequence[Mapping[str, Any]], lake_root: str, dataset: str = ""
) -> dict[str, dict[str, Any]]:
    """Run each model's SQL over temp views of the tables it reads and overwrite its Delta table.

    The tables are temp views named by dataset, loaded from `<lake_root>/tables/<name>`.
    Returns model → {uri, version, rows}.
    """
    out: dict[str, dict[str, Any]] = {}
    # New derived tables get the same properties as ingested ones (no deletion vectors: Athena).
    with session_confs(spark, table_property_defaults()):
        for model in models:
            views = []
            try:
                for source_dataset in model["sources"]:
                    source = table_uri(lake_root, source_dataset)
                    _require_table(source)
                    if table_state(spark, source)[0] < 0:
                        raise ContractError(
                            f"derived model {model['name']!r} of {dataset!r} reads {source_dataset!r}, "
                            f"but there is no Delta table at {source}"
                        )
                    spark.read.format("delta").load(source).createOrReplaceTempView(source_dataset)
                    views.append(source_dataset)
                frame = spark.sql(model["sql"])
                target = derived_uri(lake_root, model["name"])
                _require_table(target, write=True)
                frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(target)
                version, _ = table_state(spark, target)
                rows = spark.read.format("delta").load(target).count()
                out[model["name"]] = {"uri": target, "version": version, "rows": rows}
            finally:
                for view in views:
                    spark.catalog.dropTempView(view)
    return out
