"""Delta tables through the Spark JVM: paths, the log, versions, app transactions, session confs.

Shared by the Glue ingest engine and the EMR Serverless jobs. It imports only the standard library,
pyspark and lakehouse modules of the same kind, because the EMR jobs run on EMR's own Python 3.9
(tests/unit/test_emr_bundle.py keeps it so).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyspark.sql import SparkSession

from lakehouse.table_properties import TABLE_CONFIGURATION


def delta_path(uri: str) -> str:
    """`delta.`<uri>`` for SQL, with backticks in the path escaped."""
    return "delta.`" + uri.replace("`", "``") + "`"


def _jvm(spark: SparkSession) -> Any:
    """The py4j gateway's JVM view (the Delta log, Hadoop FileSystem, commons-io)."""
    jvm = spark._jvm
    if jvm is None:
        raise RuntimeError("the Spark session has no JVM gateway (Spark Connect is not supported)")
    return jvm


def delta_log(spark: SparkSession, uri: str) -> Any:
    return _jvm(spark).org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, uri)


def delta_snapshot(spark: SparkSession, uri: str) -> Any:
    log = delta_log(spark, uri)
    defaults = [getattr(log, f"update$default${i}")() for i in (1, 2, 3)]
    return log.update(*defaults)


def table_state(spark: SparkSession, uri: str, app_id: str | None = None) -> tuple[int, int | None]:
    """(version or -1 when there is no table, the app id's transaction version or None)."""
    snapshot = delta_snapshot(spark, uri)
    version = int(snapshot.version())
    if version < 0 or app_id is None:
        return version, None
    found = snapshot.transactions().get(app_id)
    return version, (int(found.get()) if found.isDefined() else None)


@contextmanager
def session_confs(spark: SparkSession, confs: dict[str, str]) -> Iterator[None]:
    """Set session confs for the duration of a block, then restore what was there."""
    previous = {k: spark.conf.get(k, None) for k in confs}
    try:
        for key, value in confs.items():
            spark.conf.set(key, value)
        yield
    finally:
        for key, old in previous.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


def table_property_defaults() -> dict[str, str]:
    """Session confs that give tables created by a write the same properties as delta-rs tables."""
    prefix = "spark.databricks.delta.properties.defaults."
    return {prefix + k.removeprefix("delta."): v for k, v in TABLE_CONFIGURATION.items() if v is not None}
