"""A `lakehouse run` killed with SIGKILL in the middle of its commit: the next run cleans up after it
(work folder, temp files) and the table ends with exactly the rows of a clean run."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from deltalake import DeltaTable
from e2e_helpers import DATASETS, ROOT, csv_rows, write_lineitem

ROWS = 400_000


def _cli(home: Path, tmpdir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lakehouse", "--home", str(home), "--datasets", str(DATASETS), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "LAKEHOUSE_PROJECT_ROOT": str(ROOT), "TMPDIR": str(tmpdir)},
    )


def _owner_gone(folder: Path) -> bool:
    fd = os.open(folder / ".owner", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_sigkill_mid_commit_then_the_next_run_cleans_up_and_commits_exactly_once(tmp_path: Path) -> None:
    home, tmpdir = tmp_path / "home", tmp_path / "tmp"
    tmpdir.mkdir()
    # lineitem appends in one stream: its data files are being written for most of the commit.
    source = write_lineitem(tmp_path / "lineitem_big.csv", 1, ROWS)
    table = home / "buckets" / "lake" / "tables" / "lineitem"
    work_root = tmpdir / "lakehouse-work"

    first = _cli(home, tmpdir, "run", str(source), "--dataset", "lineitem", "--no-spark", "--json")
    # CommitWithLambda has copied the file into its work folder and is reading and writing it (the
    # stream takes seconds; delta-rs commits at its end).
    deadline = time.monotonic() + 240
    while not [p for p in work_root.rglob("*.csv") if p.stat().st_size == source.stat().st_size]:
        assert first.poll() is None, f"the run ended before it could be killed: {first.communicate()}"
        assert time.monotonic() < deadline, "the commit never started"
        time.sleep(0.01)
    time.sleep(1.0)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL

    # Its worker dies with it (its lock on the work folder goes) and never finishes the commit.
    (left,) = list(work_root.iterdir())
    deadline = time.monotonic() + 30
    while not _owner_gone(left):
        assert time.monotonic() < deadline, "the worker outlived the killed executor"
        time.sleep(0.05)
    time.sleep(1.0)
    assert not (table / "_delta_log").is_dir() or DeltaTable(str(table)).count() == 0
    assert any(left.rglob("*.csv"))  # what the crash left: the work folder and its copy of the file

    second = _cli(home, tmpdir, "run", str(source), "--dataset", "lineitem", "--no-spark", "--json")
    out, _err = second.communicate(timeout=600)
    assert second.returncode == 0, out[-3000:]

    assert list(work_root.iterdir()) == []
    assert not [p for p in [*home.rglob(".lakehouse-tmp-*"), *tmpdir.rglob(".lakehouse-tmp-*")]]
    rows = DeltaTable(str(table)).to_pyarrow_table(columns=["l_orderkey"]).column("l_orderkey").to_pylist()
    expected = [int(r["l_orderkey"]) for r in csv_rows(source)]
    assert len(rows) == len(expected)  # nothing duplicated
    assert sorted(rows) == sorted(expected)  # nothing lost
