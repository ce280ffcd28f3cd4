"""`invoke` with the sample OnObjectCreated events: no runs for objects that do not exist unless asked;
`--seed` puts a file there first; stdout holds only the handler's return value, logs go to stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_helpers import DATASETS, ROOT, Cli, write_orders

pytestmark = pytest.mark.e2e

EVENT = ROOT / "events" / "on_object_created_sqs.json"


def _invoke(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "lakehouse",
            "--home",
            str(home),
            "--datasets",
            str(DATASETS),
            "invoke",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "LAKEHOUSE_PROJECT_ROOT": str(ROOT)},
    )


def test_missing_objects_start_no_runs(cli: Cli) -> None:
    done = _invoke(cli.home, "OnObjectCreatedFunction", "--event", str(EVENT), "--no-spark")
    assert done.returncode == 2
    assert "orders part 1.csv" in done.stderr
    assert "--seed FILE" in done.stderr
    assert cli("runs", "--json").json() == []
    assert not (cli.home / "buckets" / "quarantine").exists()


def test_seed_then_runs_succeed_and_stdout_is_the_response(cli: Cli, tmp_path: Path) -> None:
    seed = write_orders(tmp_path / "seed.csv", 1, 3)
    done = _invoke(
        cli.home, "OnObjectCreatedFunction", "--event", str(EVENT), "--seed", str(seed), "--no-spark"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"batchItemFailures": []}  # nothing else on stdout
    assert "CloudWatchMetrics" not in done.stderr  # no EMF blob
    assert "UserWarning" not in done.stderr
    assert done.stderr.count("seeded ") == 2
    runs = cli("runs", "--json").json()
    assert sorted(r["status"] for r in runs) == ["SUCCEEDED", "SUCCEEDED"]
    landed = cli.home / "buckets" / "landing" / "orders" / "ingest_date=2026-11-26" / "orders part 1.csv"
    assert landed.read_bytes() == seed.read_bytes()


def test_metrics_flag_shows_the_emf_blob_on_stderr(cli: Cli, tmp_path: Path) -> None:
    seed = write_orders(tmp_path / "seed.csv", 1, 3)
    args = ["OnObjectCreatedFunction", "--event", str(EVENT), "--seed", str(seed), "--no-drain", "--metrics"]
    done = _invoke(cli.home, *args)
    assert done.returncode == 0, done.stderr
    assert "CloudWatchMetrics" in done.stderr
    assert json.loads(done.stdout) == {"batchItemFailures": []}
