"""One local Spark session with Delta for the whole Spark test module (one xdist worker owns it).

The Delta jars are fetched from Maven Central on first use and cached (lakehouse.spark.jars); the
tests are skipped, naming what is missing, only when Java or pyspark is absent or the jars cannot be
fetched at all.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# engine_helpers (shared with the DuckDB engine tests) lives one folder up.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from lakehouse.spark import SparkUnavailableError
    from lakehouse.spark.session import spark_available

    ok, reason = spark_available(download=True)
    if not ok:
        pytest.skip(f"local Spark unavailable: {reason}")
    from lakehouse.spark.session import get_spark

    try:
        session = get_spark("lakehouse-tests", extra_conf={"spark.sql.shuffle.partitions": "2"})
    except SparkUnavailableError as exc:
        pytest.skip(str(exc))
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
