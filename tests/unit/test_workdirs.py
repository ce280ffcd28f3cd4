"""Work folders and temp files a crash leaves are removed by the next run; a live run's never are."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakehouse import workdirs
from lakehouse.adapters.local import LocalObjectStore

# A process that takes a work folder (in `base`) and then waits to be killed.
HOLDER = """
import sys, time
from pathlib import Path
from lakehouse.workdirs import run_workdir
with run_workdir("orders-abc", Path(sys.argv[1])) as folder:
    (folder / "copy.csv").write_bytes(b"x" * 1000)
    print(folder, flush=True)
    time.sleep(600)
"""


def _holder(base: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(base)], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, "the holder process did not start"
    return proc, Path(line)


def test_sweep_removes_a_killed_runs_folder_but_not_a_live_ones(tmp_path: Path) -> None:
    base = tmp_path / "lakehouse-work"
    dead, dead_folder = _holder(base)
    live, live_folder = _holder(base)
    try:
        dead.send_signal(signal.SIGKILL)
        dead.wait(10)
        assert dead_folder.is_dir()  # SIGKILL: no cleanup ran

        removed = workdirs.sweep(base)

        assert removed == [dead_folder]
        assert not dead_folder.exists()
        assert (live_folder / "copy.csv").is_file()
        # A new run's folder sweeps too, and leaves the live one alone.
        with workdirs.run_workdir("orders-def", base) as mine:
            assert mine.parent == base
            assert mine.name.startswith("orders-def-")
            assert live_folder.is_dir()
        assert not mine.exists()
    finally:
        live.kill()
        live.wait(10)
    assert workdirs.sweep(base) == [live_folder]


def test_run_workdir_refuses_a_crafted_run_id(tmp_path: Path) -> None:
    from lakehouse.errors import InvalidInputError

    with pytest.raises(InvalidInputError), workdirs.run_workdir("../../x", tmp_path):
        pass
    assert list(tmp_path.iterdir()) == []


def test_temp_files_of_a_dead_writer_go_on_the_next_listing(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("landing", "orders/a.csv", b"a\n")
    folder = tmp_path / "buckets" / "landing" / "orders"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    of_dead = folder / f"{workdirs.TMP_PREFIX}{dead.pid}-0123abcd"
    of_live = folder / f"{workdirs.TMP_PREFIX}{os.getppid()}-4567cdef"  # a live process: kept
    old_format = folder / f"{workdirs.TMP_PREFIX}89abcdef"
    for path in (of_dead, of_live, old_format):
        path.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(old_format, (two_hours_ago, two_hours_ago))

    assert list(store.list("landing")) == ["orders/a.csv"]

    assert not of_dead.exists()
    assert not old_format.exists()  # no pid, not written to for longer than the grace period
    assert of_live.exists()
    assert workdirs.sweep_tmp_files(tmp_path) == []
