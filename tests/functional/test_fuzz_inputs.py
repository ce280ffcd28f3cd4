"""Property-based fuzzing of the DuckDB engine with malformed CSV, JSON Lines and gzip files.

For any file: the ingest ends within a bounded time, either committed or with a lakehouse error (no
other exception type reaches the caller); a refused file leaves the table exactly as it was; the raw
file is never changed.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from engine_helpers import ingest, read_rows, table_version
from fuzz_inputs import SEED, contract, hostile_files
from hypothesis import HealthCheck, event, given, settings

from lakehouse import errors

FUZZ = settings(
    max_examples=40,
    deadline=None,  # the bound below is asserted per file instead
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BOUND_SECONDS = 30


def _seeded(kind: str, root: Path) -> Path:
    """A template table with one good commit, copied for every example."""
    template = root / "template"
    if not template.exists():
        seed = root / f"seed.{kind}"
        seed.write_bytes(SEED[kind])
        ingest(seed, contract(kind), str(template), root / "seed-work")
    return template


def check_one(kind: str, data: bytes, root: Path) -> None:
    template = _seeded(kind, root)
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
            result = ingest(path, contract(kind), uri, work / "work")
        except errors.LakehouseError as exc:  # any other exception fails the property
            refusal = exc
        event(type(refusal).__name__ if refusal else "committed")
        if refusal is not None:
            assert path.name in str(refusal), str(refusal)
            assert table_version(uri) == version
            assert read_rows(uri, with_metadata=True) == before
        else:
            assert result.status == "committed"
            assert result.version_after == version + 1
            assert len(read_rows(uri)) == len(before) + result.rows_written
        assert time.monotonic() - started < BOUND_SECONDS
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_malformed_files_never_escape(kind: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp(f"fuzz-{kind}")

    @FUZZ
    @given(data=hostile_files(kind))
    def run(data: bytes) -> None:
        check_one(kind, data, root)

    run()
