"""A crash at every state boundary of IngestStateMachine, resumed, ends with the table of a clean run.

Each case runs a real `lakehouse run` process that SIGKILLs itself right after the N-th Task finished
(`LAKEHOUSE_FAULT_KILL_AFTER_TASKS`), for every N on the clean run's path, then resumes the interrupted
run with `lakehouse resume`. Rows lost and rows duplicated must both be 0, the run must end as the
clean run did, and a failed file must be rolled back and quarantined even when the crash came after its
commit (before the fix, the resumed run called its own commit a duplicate and skipped the checks).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import DATASETS, ROOT, Cli, write_lineitem

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TASK_STATES = {
    name
    for name, state in json.loads((ROOT / "statemachine" / "ingest.asl.json").read_text())["States"].items()
    if state["Type"] == "Task"
}


def table_rows(home: Path) -> Counter[tuple[Any, ...]]:
    """Every row's data columns (metadata columns differ between homes), with multiplicity."""
    from deltalake import DeltaTable

    path = home / "buckets" / "lake" / "tables" / "lineitem"
    if not (path / "_delta_log").is_dir():
        return Counter()
    table = DeltaTable(str(path)).to_pyarrow_table()
    names = [n for n in table.column_names if not n.startswith("_")]
    columns = [table.column(n).to_pylist() for n in names]
    return Counter(zip(*columns, strict=True))


def crash_run(home: Path, source: Path, kill_after: int) -> int:
    return crash_run_files(home, [source], kill_after)


def crash_run_files(home: Path, sources: list[Path], kill_after: int) -> int:
    """`lakehouse run SOURCES...` in a process that SIGKILLs itself after its `kill_after`-th Task."""
    run = ("run", *map(str, sources), "--no-spark", "--json")
    env = {
        **os.environ,
        "LAKEHOUSE_PROJECT_ROOT": str(ROOT),
        "LAKEHOUSE_FAULT_KILL_AFTER_TASKS": str(kill_after),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "lakehouse", "--home", str(home), "--datasets", str(DATASETS), *run],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
        check=False,
    )
    # Kept for the assertion message of a run that did not crash where it should have.
    log = f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    (home / "crash-run.log").write_text(log)
    return proc.returncode


def crash_log(home: Path) -> str:
    path = home / "crash-run.log"
    return path.read_text() if path.exists() else ""


def scenario(
    tmp_path: Path, name: str, setup: Callable[[Cli], None], source: Path
) -> tuple[dict[str, Any], Counter[tuple[Any, ...]], int]:
    """The clean run: its ledger record, its table, and how many Tasks its path has."""
    cli = Cli(tmp_path / f"{name}-clean")
    setup(cli)
    result = cli("run", str(source), "--no-spark", "--json")
    record = result.json()["runs"][0]
    run = cli("runs", "--id", record["run_id"], "--json").json()
    tasks = [s for s in run["path"] if s in TASK_STATES]
    return record, table_rows(cli.home), len(tasks)


def crash_everywhere(tmp_path: Path, name: str, setup: Callable[[Cli], None], source: Path) -> None:
    clean, clean_rows, tasks = scenario(tmp_path, name, setup, source)
    assert tasks >= 8, tasks
    for kill_after in range(1, tasks + 1):
        cli = Cli(tmp_path / f"{name}-crash-{kill_after}")
        setup(cli)
        code = crash_run(cli.home, source, kill_after)
        assert code == -signal.SIGKILL, (
            f"task {kill_after}: expected the injected crash, exit {code}\n{crash_log(cli.home)}"
        )

        resumed = cli("resume", "--no-spark", "--json")
        runs = resumed.json()["runs"]
        assert len(runs) == 1, (kill_after, runs)
        run = runs[0]
        assert run["status"] == clean["status"], (kill_after, run)
        rows = table_rows(cli.home)
        lost = clean_rows - rows
        duplicated = rows - clean_rows
        assert (sum(lost.values()), sum(duplicated.values())) == (0, 0), (kill_after, run)
        if clean["status"] == "QUARANTINED":
            quarantined = cli.home / "buckets" / "quarantine" / "objects" / "lineitem" / run["run_id"]
            assert (quarantined / f"{source.name}.reason.json").is_file(), kill_after
            assert (quarantined / source.name).read_bytes() == source.read_bytes()
        # The raw file stays in landing whatever happened.
        assert (
            cli.home / "buckets" / "landing" / "lineitem" / source.name
        ).read_bytes() == source.read_bytes()
        # Nothing holds the table once the run is over.
        lease = cli.home / "state" / "leases" / "lineitem.json"
        assert not lease.is_file(), (kill_after, lease.read_text())


def test_crash_at_every_state_of_a_good_run(tmp_path: Path) -> None:
    good = write_lineitem(tmp_path / "lineitem_good.csv", 1, 40)

    def setup(cli: Cli) -> None:
        del cli  # a new table

    crash_everywhere(tmp_path, "good", setup, good)


def test_crash_at_every_state_of_a_run_whose_checks_fail(tmp_path: Path) -> None:
    first = write_lineitem(tmp_path / "lineitem_first.csv", 1, 30)
    bad = write_lineitem(tmp_path / "lineitem_bad.csv", 1000, 20, quantity=0)  # fails quantity_positive

    def setup(cli: Cli) -> None:
        assert cli("run", str(first), "--no-spark").exit_code == 0

    crash_everywhere(tmp_path, "bad", setup, bad)
