"""`SELECT *` on every table the demo makes, in every output format, as a user runs it (a subprocess).

Every table has `_ingested_at` (a timestamp with time zone): DuckDB needs pytz to return it, and an early
stop of a scan (`LIMIT`) must neither hang nor crash the process on exit.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pyarrow.fs as pa_fs
import pytest
from e2e_helpers import DATASETS, ROOT, Cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    home = tmp_path_factory.mktemp("demo") / "home"
    result = Cli(home)("demo", "--no-spark", "--json")
    assert result.exit_code == 0, result.stderr
    tables = [t["table"] for t in result.json()["tables"] if t["exists"]]
    assert {"orders", "lineitem", "orders_by_status"} <= set(tables)
    return home, tables


def _query(home: Path, sql: str, fmt: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    argv = ["--home", str(home), "--datasets", str(DATASETS), "query", sql, "--format", fmt]
    return subprocess.run(
        [sys.executable, "-m", "lakehouse", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env={**os.environ, "LAKEHOUSE_PROJECT_ROOT": str(ROOT)},
    )


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_select_star_on_every_demo_table(demo_home: tuple[Path, list[str]], fmt: str) -> None:
    home, tables = demo_home
    for table in tables:
        done = _query(home, f"SELECT * FROM {table} LIMIT 2", fmt)
        assert done.returncode == 0, (table, done.stderr)
        assert "Traceback" not in done.stderr + done.stdout
        if fmt == "json":
            rows = json.loads(done.stdout)
            assert len(rows) == 2
            stamps = [r["_ingested_at"] for r in rows if "_ingested_at" in r]
            assert all(datetime.fromisoformat(s).tzinfo is not None for s in stamps)
            assert stamps or table == "orders_by_status"  # the gold table has no metadata columns
        elif fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(done.stdout)))
            assert len(rows) == 2
            assert all(datetime.fromisoformat(r["_ingested_at"]) for r in rows if "_ingested_at" in r)
        else:
            assert "_ingested_at" in done.stdout or table == "orders_by_status"
            assert "2 row(s)" in done.stderr


def test_early_stopped_scans_exit_cleanly(demo_home: tuple[Path, list[str]]) -> None:
    """LIMIT stops DuckDB's scan of the biggest table early; the process must exit 0, every time."""
    home, _ = demo_home
    codes = [_query(home, "SELECT * FROM lineitem LIMIT 2", "json").returncode for _ in range(8)]
    assert codes == [0] * 8


def test_local_tables_are_scanned_without_a_python_filesystem(demo_home: tuple[Path, list[str]]) -> None:
    """The cause of the hang/segfault: Arrow's I/O threads calling a Python filesystem at exit."""
    from lakehouse.local.athena import delta_dataset

    home, _ = demo_home
    dataset = delta_dataset(str(home / "buckets" / "lake" / "tables" / "lineitem"))
    assert not isinstance(dataset.filesystem, pa_fs.PyFileSystem)
    assert dataset.count_rows() > 0
