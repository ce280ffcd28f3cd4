"""Property-based fuzzing of the Spark engine with malformed CSV, JSON Lines and gzip files.

Same properties as tests/functional/test_fuzz_inputs.py: bounded time, only lakehouse errors, a
refused file leaves the table as it was, the raw file is never changed. Fewer examples: each one
runs Spark jobs.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import app_id, ingest, meta_for, read_rows, table_version
from fuzz_inputs import SEED, contract, hostile_files
from hypothesis import HealthCheck, given, settings

from lakehouse import errors

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.xdist_group("spark")]

FUZZ = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BOUND_SECONDS = 120


@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_spark_malformed_files_never_escape(
    kind: str, spark: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from lakehouse.spark.ingest import ingest_object

    root = tmp_path_factory.mktemp(f"spark-fuzz-{kind}")
    seed = root / f"seed.{kind}"
    seed.write_bytes(SEED[kind])
    template = root / "template"
    ingest(seed, contract(kind), str(template), root / "seed-work")

    @FUZZ
    @given(data=hostile_files(kind))
    def run(data: bytes) -> None:
        with tempfile.TemporaryDirectory(dir=root) as scratch:
            work = Path(scratch)
            uri = str(work / "items")
            shutil.copytree(template, uri)
            version, before = table_version(uri), read_rows(uri, with_metadata=True)
            path = work / f"fuzz.{kind}"
            path.write_bytes(data)
            digest = hashlib.sha256(data).hexdigest()
            started = time.monotonic()
            refusal: errors.LakehouseError | None = None
            try:
                result = ingest_object(
                    spark,
                    str(path),
                    contract(kind),
                    uri,
                    meta_for(path),
                    app_id=app_id(contract(kind), path),
                    rejects_uri=str(work / "rejects.parquet"),
                )
            except errors.LakehouseError as exc:  # any other exception fails the property
                refusal = exc
            if refusal is not None:
                assert path.name in str(refusal), str(refusal)
                assert table_version(uri) == version
                assert read_rows(uri, with_metadata=True) == before
            else:
                assert result["status"] == "committed"
                assert len(read_rows(uri)) == len(before) + result["rows_written"]
            assert time.monotonic() - started < BOUND_SECONDS
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest

    run()
