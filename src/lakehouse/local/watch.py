"""Automatic triggering, locally: watch the landing bucket folder and start a run per complete new file.

What S3 + EventBridge give in AWS, rebuilt on a folder:
- a file counts as arrived only once its writer has closed it: it was renamed into place (temp/partial
  names such as `.tmp`, `~`, `.part` and dot-files are never taken), or its size and mtime have not
  changed for `debounce_ms` *and* no process holds it open for writing (Linux: `/proc/<pid>/fd`; elsewhere
  psutil, where any open handle counts). A writer that pauses with the file open is waited for;
- the complete file becomes an object version of its own (an immutable snapshot in the local versioned
  landing bucket), and the run reads exactly that version. A later complete rewrite of the same name is
  a new version and a new run; the same bytes again are the same version (no new run);
- exactly once across restarts: every file handled is recorded in `<home>/state/watch/processed.json`
  (key -> size, mtime, run id), and the run itself has the deterministic execution name (a second
  start of the same object is a no-op); on start-up the folder is scanned, so files that arrived while
  the watcher was down are picked up.

watchdog's observer only wakes the loop up early; the scan is the source of truth, so a missed
filesystem event (network drives, editors that rename) costs latency, never a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.errors import ObjectChangedError
from lakehouse.local.executor import LocalPipeline, RunRecord
from lakehouse.local.paths import LocalPaths
from lakehouse.ports import ObjectInfo

_PARTIAL_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".swp", ".download", "~")


def is_partial_name(name: str) -> bool:
    """Names writers use while a file is incomplete (and hidden files): never a landed object."""
    lower = name.lower()
    return lower.startswith((".", "~$", "_tmp")) or lower.endswith(_PARTIAL_SUFFIXES)


def _writers_linux(paths: set[str]) -> set[str]:
    """Which of `paths` some process has open for writing (O_WRONLY or O_RDWR), from /proc."""
    busy: set[str] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or not ours to see
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target not in paths:
                continue
            with contextlib.suppress(OSError, ValueError, StopIteration):
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    flags = next(line for line in info if line.startswith("flags:"))
                if int(flags.split()[1], 8) & 0o3:  # the access mode: write-only or read-write
                    busy.add(target)
    return busy


def _writers_psutil(paths: set[str]) -> set[str]:
    """Elsewhere: any process holding one of `paths` open (psutil reports no access mode there)."""
    try:
        import psutil
    except ImportError:
        return set()  # without psutil only size stability is checked (use rename-into-place)
    busy: set[str] = set()
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            busy.update(f.path for f in proc.open_files() if f.path in paths)
    return busy


def open_for_writing(paths: set[str]) -> set[str]:
    """The files (absolute real paths) among `paths` that a process still has open for writing."""
    if not paths:
        return set()
    if sys.platform.startswith("linux") and os.path.isdir("/proc/self/fd"):
        return _writers_linux(paths)
    return _writers_psutil(paths)


@dataclass
class WatchStats:
    runs: list[RunRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class ProcessedSet:
    """Keys already handled, with the size and mtime they had (a rewritten file is a new object)."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home).resolve() / "state" / "watch" / "processed.json"
        self.entries: dict[str, dict[str, Any]] = {}
        try:
            data = json.loads(self.path.read_text())
            self.entries = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            self.entries = {}

    def seen(self, key: str, size: int, mtime_ns: int) -> bool:
        entry = self.entries.get(key)
        return entry is not None and entry.get("size") == size and entry.get("mtime_ns") == mtime_ns

    def add(
        self, key: str, size: int, mtime_ns: int, run_id: str | None, version_id: str | None = None
    ) -> None:
        self.entries[key] = {"size": size, "mtime_ns": mtime_ns, "run_id": run_id, "version_id": version_id}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


class LandingWatcher:
    """Scan + debounce + submit + drain, until told to stop."""

    def __init__(
        self,
        pipeline: LocalPipeline,
        *,
        debounce_ms: int = 500,
        poll_s: float = 0.2,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.root = LocalPaths(pipeline.home).bucket_dir(pipeline.rt.settings.landing_bucket)
        self.debounce_s = debounce_ms / 1000
        self.poll_s = poll_s
        self.processed = ProcessedSet(pipeline.home)
        self.on_event = on_event or (lambda _kind, _info: None)
        self._wake = threading.Event()
        self._stop = threading.Event()
        # key -> (size, mtime_ns, first time this exact size/mtime was seen)
        self._candidates: dict[str, tuple[int, int, float]] = {}
        self._waiting: set[tuple[str, int, int]] = set()  # reported once per (key, size, mtime)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _scan(self) -> list[tuple[str, int, int]]:
        """Keys whose size and mtime have been stable for the debounce window and that are not handled."""
        now = time.monotonic()
        ready: list[tuple[str, int, int]] = []
        present: set[str] = set()
        if not self.root.is_dir():
            return ready
        for dirpath, dirnames, files in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in files:
                if is_partial_name(name):
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue  # renamed or deleted between listing and stat
                present.add(key)
                if self.processed.seen(key, stat.st_size, stat.st_mtime_ns):
                    self._candidates.pop(key, None)
                    continue
                previous = self._candidates.get(key)
                if previous is None or previous[:2] != (stat.st_size, stat.st_mtime_ns):
                    self._candidates[key] = (stat.st_size, stat.st_mtime_ns, now)
                    continue
                if now - previous[2] >= self.debounce_s:
                    ready.append((key, stat.st_size, stat.st_mtime_ns))
        for gone in set(self._candidates) - present:
            del self._candidates[gone]
        return self._closed(ready)

    def _closed(self, stable: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
        """The stable files no process still holds open for writing (a pausing writer is waited for)."""
        if not stable:
            return stable
        real = {key: os.path.realpath(self.root / key) for key, _, _ in stable}
        busy = open_for_writing(set(real.values()))
        for key, size, mtime_ns in stable:
            if real[key] in busy and (key, size, mtime_ns) not in self._waiting:
                self._waiting.add((key, size, mtime_ns))
                self.on_event("waiting", {"key": key, "reason": "a process has the file open for writing"})
        return [item for item in stable if real[item[0]] not in busy]

    def _observer(self) -> Any:
        """A watchdog observer that wakes the loop on any change (None if watchdog cannot run here)."""
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:
            return None
        wake = self._wake

        class Wake(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                wake.set()

        self.root.mkdir(parents=True, exist_ok=True)
        observer = Observer()
        observer.schedule(Wake(), str(self.root), recursive=True)
        try:
            observer.start()
        except OSError:
            return None
        return observer

    def run(
        self,
        *,
        once: bool = False,
        max_runs: int | None = None,
        timeout_s: float | None = None,
    ) -> WatchStats:
        """Process arrivals until stopped, `max_runs` runs have finished, or `timeout_s` passed.

        `once`: take what is there now (after its debounce window), run it, and return.
        """
        stats = WatchStats()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        observer = None if once else self._observer()
        try:
            # Runs queued by an earlier process (e.g. a crash mid-run) go first.
            self._drain(stats, max_runs)
            first_pass = True
            while not self._stop.is_set():
                if max_runs is not None and len(stats.runs) >= max_runs:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                ready = self._scan()
                for key, size, mtime_ns in ready:
                    self._submit(key, size, mtime_ns, stats)
                if ready:
                    self._drain(stats, max_runs)
                if once and not first_pass and not self._candidates:
                    break
                first_pass = False
                wait = self.debounce_s if (once or self._candidates) else self.poll_s * 5
                if deadline is not None:
                    wait = max(0.0, min(wait, deadline - time.monotonic()))
                self._wake.wait(min(wait, self.poll_s) if self._candidates else wait)
                self._wake.clear()
        finally:
            if observer is not None:
                observer.stop()
                observer.join(timeout=5)
        return stats

    def _submit(self, key: str, size: int, mtime_ns: int, stats: WatchStats) -> None:
        landing = self.pipeline.rt.settings.landing_bucket
        try:
            # The complete file becomes a version of its own; the run reads exactly that version.
            objects = self.pipeline.rt.adapters.objects
            # The local store (possibly behind the IAM-checking wrapper) versions what users drop in.
            snapshot = getattr(objects, "snapshot", None)
            info: ObjectInfo = snapshot(landing, key) if snapshot else objects.head(landing, key)
        except (ObjectChangedError, FileNotFoundError):
            self._candidates.pop(key, None)  # it changed while we read it: wait until it is complete again
            return
        try:
            started = self.pipeline.submit(key, info=info)
        except Exception as exc:  # one unreadable file must not stop the watcher
            self.on_event("error", {"key": key, "error": f"{type(exc).__name__}: {exc}"})
            stats.skipped.append(key)
            self.processed.add(key, size, mtime_ns, None, info.version_id)
            return
        run_id = started["run_id"] if started else None
        if started is None:
            self.on_event("ignored", {"key": key, "reason": "no dataset contract claims this key"})
            stats.skipped.append(key)
        elif not started.get("queued"):
            self.on_event("duplicate", {"key": key, "run_id": run_id})
            stats.skipped.append(key)
        else:
            self.on_event("queued", {"key": key, "run_id": run_id, "version_id": info.version_id})
        self.processed.add(key, size, mtime_ns, run_id, info.version_id)
        self._candidates.pop(key, None)

    def _drain(self, stats: WatchStats, max_runs: int | None) -> None:
        limit = None if max_runs is None else max(0, max_runs - len(stats.runs))
        if limit == 0:
            return
        records = self.pipeline.drain(
            on_start=lambda q: self.on_event("started", {"run_id": q.name, "key": q.payload.get("key")}),
            on_done=lambda r: self.on_event("finished", {"run_id": r.run_id, "status": r.status}),
            limit=limit,
        )
        stats.runs.extend(records)
