"""What `lakehouse run` says about a run that committed nothing new: a rerun after a crash that followed
the commit is a resume of that run (not "already ingested"); a finished run is not run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_helpers import DATASETS, ROOT, Cli, write_orders

from lakehouse.cli import _run_note, _runtime_for_home

pytestmark = pytest.mark.e2e

# The executor kills itself right after the fourth Task (AcquireTableLease, ClaimBatch, Inspect,
# CommitWithLambda): the process dies between the commit and RegisterTable (lakehouse.local.faults).
KILL_AFTER_COMMIT = "4"


def test_rerun_after_a_crash_that_followed_the_commit_says_resumed(cli: Cli, tmp_path: Path) -> None:
    source = write_orders(tmp_path / "orders_crash.csv", 1, 5)
    args = ["--home", str(cli.home), "--datasets", str(DATASETS), "run", str(source), "--no-spark"]
    crashed = subprocess.run(
        [sys.executable, "-m", "lakehouse", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={
            **os.environ,
            "LAKEHOUSE_PROJECT_ROOT": str(ROOT),
            "LAKEHOUSE_FAULT_KILL_AFTER_TASKS": KILL_AFTER_COMMIT,
        },
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    [committed] = [  # the crashed run's commit is in the table
        c for c in cli("history", "orders", "--json").json() if c["operation"] in ("WRITE", "MERGE")
    ]

    rerun = cli("run", str(source), "--no-spark")
    assert rerun.exit_code == 0, rerun.stderr
    assert f"resumed after its own commit (version {committed['version']})" in rerun.stdout
    assert "already ingested" not in rerun.stdout
    assert cli("query", "SELECT count(*) AS n FROM orders", "-f", "json").json() == [{"n": 5}]

    again = cli("run", str(source), "--no-spark")
    assert again.exit_code == 0, again.stderr
    assert "already run as orders-" in again.stdout
    assert "nothing was done now" in again.stdout


def test_a_duplicate_names_the_run_that_ingested_the_object(cli: Cli, tmp_path: Path) -> None:
    first = cli("run", str(write_orders(tmp_path / "orders_dup.csv", 1, 5)), "--no-spark", "--json")
    assert first.exit_code == 0, first.stderr
    [record] = cli("runs", "--json").json()
    # Another execution of the same object (e.g. a second event with another sequencer) found it applied.
    other = {**record, "run_id": "orders-another-run", "commit": {**record["commit"], "status": "duplicate"}}
    summary = {"run_id": other["run_id"], "status": "DUPLICATE"}
    note = _run_note(_runtime_for_home(cli.home, DATASETS), other, summary)
    version = record["commit"]["version_after"]
    # The run that committed it is the drain that took the object (its batch).
    assert note == f"already ingested by run {record['batch_id']} (version {version}); nothing new committed"
