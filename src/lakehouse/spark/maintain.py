"""Table maintenance on Spark (large tables, EMR Serverless): compact, vacuum, checkpoint."""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession

from lakehouse import access
from lakehouse.spark.delta_tables import delta_log, delta_path, delta_snapshot, table_state

MIN_SAFE_RETENTION_HOURS = 168  # Delta's default: readers of older versions keep their files


def maintain_table(
    spark: SparkSession, table_uri: str, retention_hours: int = MIN_SAFE_RETENTION_HOURS
) -> dict[str, Any]:
    """OPTIMIZE (bin-packing), VACUUM with the retention window, then a checkpoint of the last version."""
    access.require_table(table_uri, write=True, delete=True)  # local IAM: OPTIMIZE commits, VACUUM deletes
    version_before, _ = table_state(spark, table_uri)
    if version_before < 0:
        raise FileNotFoundError(f"no Delta table at {table_uri}")
    target = delta_path(table_uri)
    optimized = spark.sql(f"OPTIMIZE {target}").collect()
    metrics = optimized[0]["metrics"].asDict() if optimized else {}

    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    previous = spark.conf.get(check, None)
    try:
        if retention_hours < MIN_SAFE_RETENTION_HOURS:
            spark.conf.set(check, "false")  # the caller chose a shorter window on purpose
        vacuumed = spark.sql(f"VACUUM {target} RETAIN {int(retention_hours)} HOURS").collect()
    finally:
        if previous is None:
            spark.conf.unset(check)
        else:
            spark.conf.set(check, previous)

    log = delta_log(spark, table_uri)
    snapshot = delta_snapshot(spark, table_uri)
    log.checkpoint(snapshot, getattr(log, "checkpoint$default$2")())
    version_after, _ = table_state(spark, table_uri)
    return {
        "table_uri": table_uri,
        "version_before": version_before,
        "version_after": version_after,
        "files_added": int(metrics.get("numFilesAdded") or 0),
        "files_removed": int(metrics.get("numFilesRemoved") or 0),
        "vacuumed": len(vacuumed),
        "checkpoint_version": int(snapshot.version()),
        "retention_hours": retention_hours,
    }
