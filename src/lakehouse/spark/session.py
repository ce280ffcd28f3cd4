"""Spark sessions: a small local one with Delta for laptops and tests, the existing one on Glue/EMR."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from lakehouse.spark import SparkUnavailableError
from lakehouse.spark.jars import DELTA_VERSION, JarFetchError, cache_dir, cached_jars, delta_jars

DELTA_CONFS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
# Our compiled SQL relies on CAST/TRY_CAST yielding NULL for bad input; timestamps are UTC everywhere.
ENGINE_CONFS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    # Dates before 1582-10-15 (down to 0001-01-01, see docs/DATASETS.md) are written and read in the
    # proleptic Gregorian calendar, as delta-rs, DuckDB, Python and Athena read them.
    "spark.sql.parquet.datetimeRebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.datetimeRebaseModeInRead": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInRead": "CORRECTED",
    # INT96 timestamps read back as nanoseconds (pyarrow, delta-rs), which overflow outside 1677..2262:
    # write microseconds, as delta-rs does.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
LOCAL_CONFS = {
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    "spark.driver.memory": "1g",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.warehouse.dir": os.path.join(os.environ.get("TMPDIR", "/tmp"), "lakehouse-spark-warehouse"),
    "spark.driver.extraJavaOptions": "-Dderby.system.home=/tmp/lakehouse-derby -XX:+UseSerialGC",
    "spark.databricks.delta.snapshotPartitions": "2",
    # VACUUM lists and deletes with this many tasks (default 10000: a minute of empty tasks locally).
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "4",
    "spark.databricks.delta.stats.collect": "true",
}

_INSTALL_HINT = (
    "install the local extra: .venv/bin/pip install -e '.[local]' (pyspark==3.5.4, delta-spark==3.3.0)"
)


def _java_problem() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.path.exists(java):
        where = f"JAVA_HOME={java_home} has no bin/java" if java_home else "java is not on PATH"
        return f"{where}; install Java 17 (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
    try:
        subprocess.run([java, "-version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{java} -version failed ({exc}); install Java 17 or fix JAVA_HOME"
    return None


def spark_available(*, download: bool = False) -> tuple[bool, str]:
    """A cheap probe of the local runtime: (ok, what is missing or where the jars are).

    It starts no JVM. With `download=True` it also fetches missing jars from Maven Central.
    """
    if importlib.util.find_spec("pyspark") is None:
        return False, f"pyspark is not installed; {_INSTALL_HINT}"
    problem = _java_problem()
    if problem:
        return False, problem
    try:
        jars = delta_jars() if download else cached_jars()
    except JarFetchError as exc:
        return False, f"Delta {DELTA_VERSION} jars are not fetchable: {exc}"
    if jars is None:
        return False, (
            f"Delta {DELTA_VERSION} jars are not cached in {cache_dir()}; "
            "fetch them with: .venv/bin/python -m lakehouse.spark.jars (needs Maven Central once)"
        )
    return True, "local Spark ready with " + ", ".join(str(j) for j in jars)


def get_spark(
    app_name: str = "lakehouse", *, local: bool = True, extra_conf: dict[str, str] | None = None
) -> Any:
    """The SparkSession to run on.

    `local=True` builds (or returns the running) local[2] session with Delta; `local=False` takes the
    session Glue or EMR Serverless already configured (Delta enabled by the job's parameters).
    """
    if importlib.util.find_spec("pyspark") is None:
        raise SparkUnavailableError(f"pyspark is not installed; {_INSTALL_HINT}")
    from pyspark.sql import SparkSession

    if not local:
        spark = SparkSession.builder.appName(app_name).getOrCreate()
        for key, value in ENGINE_CONFS.items():
            spark.conf.set(key, value)
        return spark

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    problem = _java_problem()
    if problem:
        raise SparkUnavailableError(f"local Spark needs Java: {problem}")
    try:
        jars = delta_jars()
    except JarFetchError as exc:
        raise SparkUnavailableError(
            f"the Delta {DELTA_VERSION} jars are not cached in {cache_dir()} and not fetchable: {exc}. "
            "Run `.venv/bin/python -m lakehouse.spark.jars` where Maven Central is reachable, "
            "or set LAKEHOUSE_MAVEN_REPO to a mirror or LAKEHOUSE_JAR_CACHE to a folder holding the jars"
        ) from exc
    # Bind to loopback: a laptop run needs no network, and it silences the hostname warning.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.appName(app_name).master(
        os.environ.get("LAKEHOUSE_SPARK_MASTER", "local[2]")
    )
    confs = {**LOCAL_CONFS, **DELTA_CONFS, **ENGINE_CONFS, **(extra_conf or {})}
    confs["spark.jars"] = ",".join(str(j) for j in jars)
    log_config = Path(__file__).with_name("log4j2.properties")
    confs["spark.driver.extraJavaOptions"] += f" -Dlog4j2.configurationFile={log_config}"
    for key, value in confs.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as exc:  # the JVM failed to start: name it plainly
        raise SparkUnavailableError(f"local Spark failed to start: {exc}") from exc
