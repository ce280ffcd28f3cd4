"""The Spark engine for Glue and EMR Serverless: the only package that imports pyspark.

Importing this package does not import pyspark; `session`, `ingest`, `derived` and `maintain` do.
"""

from __future__ import annotations

from lakehouse.errors import LakehouseError


class SparkUnavailableError(LakehouseError):
    """Local Spark cannot start: Java, pyspark or the Delta jars are missing (the message says which)."""


__all__ = ["SparkUnavailableError"]
