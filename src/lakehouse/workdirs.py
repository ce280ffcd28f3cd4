"""Per-run scratch folders under one known root, and the removal of those a crash left behind.

A run's scratch folder holds a copy of the landed file and DuckDB's spill files: hundreds of MB for a
large file. It lives at `<tmp>/lakehouse-work/<run_id>-<random>/` and holds an exclusive `flock` on its
`.owner` file for as long as the run uses it. The kernel drops that lock when the process ends, however
it ends (SIGKILL, a Lambda timeout, a crash), so the next run can tell a live run's folder (locked) from
a dead one's (lockable) without trusting pids. `sweep()` removes the dead ones; every new work folder
sweeps first, and the local executor sweeps when it starts. In Lambda, `/tmp` survives a timed-out
invocation in the same container, so the same rule applies there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from lakehouse import identifiers

OWNER_FILE = ".owner"
# A folder whose owner file is not there yet is being created; one this old without it is debris.
UNOWNED_GRACE_S = 300.0


def root() -> Path:
    """`<tmp>/lakehouse-work` (tmp: TMPDIR, else the platform default; /tmp in Lambda)."""
    return Path(tempfile.gettempdir()) / "lakehouse-work"


def _lock(path: Path, *, blocking: bool) -> int | None:
    """An open fd holding an exclusive flock on `path`, or None if someone else holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def sweep(base: Path | None = None) -> list[Path]:
    """Remove work folders whose owner is gone; never one a live process holds. Returns the removed."""
    base = base or root()
    removed: list[Path] = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for folder in entries:
        if not folder.is_dir() or folder.is_symlink():
            continue
        owner = folder / OWNER_FILE
        if folder.name.startswith(".") or not owner.exists():  # being created (or debris of that)
            with contextlib.suppress(OSError):
                if time.time() - folder.stat().st_mtime > UNOWNED_GRACE_S:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
            continue
        with contextlib.suppress(OSError):
            fd = _lock(owner, blocking=False)
            if fd is None:
                continue  # a live run
            try:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
            finally:
                os.close(fd)
    return removed


@contextlib.contextmanager
def run_workdir(run_id: str, base: Path | None = None) -> Iterator[Path]:
    """A scratch folder for one run, removed afterwards; stale folders of dead runs are removed first."""
    base = base or root()
    identifiers.run_id(run_id)
    sweep(base)
    base.mkdir(parents=True, exist_ok=True)
    name = f"{run_id}-{uuid.uuid4().hex[:8]}"
    # Locked before it gets its visible name, so a concurrent sweep never sees it unowned.
    staging = base / f".{name}"
    staging.mkdir()
    fd = _lock(staging / OWNER_FILE, blocking=True)
    folder = base / name
    try:
        staging.rename(folder)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        if fd is not None:
            os.close(fd)


# -- temp files of the local object store ----------------------------------------------------------

TMP_PREFIX = ".lakehouse-tmp-"
# A temp file whose writer may still be alive (its pid is taken, or unknown) is left alone until it has
# not been written to for this long.
TMP_GRACE_S = 3600.0


def tmp_sibling(folder: Path) -> Path:
    """A temp file name in `folder` for a write that is renamed into place: `.lakehouse-tmp-<pid>-<hex>`."""
    return folder / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale_tmp(path: Path, grace_s: float = TMP_GRACE_S) -> bool:
    """A temp file whose writing process is gone, or that nobody has written to for `grace_s`."""
    pid_text, sep, _ = path.name.removeprefix(TMP_PREFIX).partition("-")
    if sep and pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
        return True
    try:
        return time.time() - path.stat().st_mtime > grace_s
    except OSError:
        return False


def sweep_tmp_files(*folders: Path, grace_s: float = TMP_GRACE_S) -> list[Path]:
    """Remove stale `.lakehouse-tmp-*` files under `folders` (what a crash mid-write leaves)."""
    removed: list[Path] = []
    for folder in folders:
        for dirpath, _dirs, files in os.walk(folder):
            for name in files:
                path = Path(dirpath) / name
                if name.startswith(TMP_PREFIX) and is_stale_tmp(path, grace_s):
                    with contextlib.suppress(OSError):
                        path.unlink()
                        removed.append(path)
    return removed
