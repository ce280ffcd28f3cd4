"""Automatic triggering, locally: watch the landing bucket folder and start a run per complete new file.

What S3 + EventBridge give in AWS, rebuilt on a folder:
- a file counts as arrived only once it is complete: its size and mtime have not changed for
  `debounce_ms`, and its name is not a temp/partial name (`.tmp`, `~`, `.part`, dot-files...);
- exactly once across restarts: every file handled is recorded in `<home>/state/watch/processed.json`
  (key -> size, mtime, run id), and the run itself has the deterministic execution name (a second
  start of the same object is a no-op); on start-up the folder is scanned, so files that arrived while
  the watcher was down are picked up.

watchdog's observer only wakes the loop up early; the scan is the source of truth, so a missed
filesystem event (network drives, editors that rename) costs latency, never a file.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.local.executor import LocalPipeline, RunRecord

_PARTIAL_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".swp", ".download", "~")


def is_partial_name(name: str) -> bool:
    """Names writers use while a file is incomplete (and hidden files): never a landed object."""
    lower = name.lower()
    return lower.startswith((".", "~$", "_tmp")) or lower.endswith(_PARTIAL_SUFFIXES)


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

    def add(self, key: str, size: int, mtime_ns: int, run_id: str | None) -> None:
        self.entries[key] = {"size": size, "mtime_ns": mtime_ns, "run_id": run_id}
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
        self.root = Path(pipeline.home) / "buckets" / pipeline.rt.settings.landing_bucket
        self.debounce_s = debounce_ms / 1000
        self.poll_s = poll_s
        self.processed = ProcessedSet(pipeline.home)
        self.on_event = on_event or (lambda _kind, _info: None)
        self._wake = threading.Event()
        self._stop = threading.Event()
        # key -> (size, mtime_ns, first time this exact size/mtime was seen)
        self._candidates: dict[str, tuple[int, int, float]] = {}

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
        return ready

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
        try:
            started = self.pipeline.submit(key)
        except Exception as exc:  # one unreadable file must not stop the watcher
            self.on_event("error", {"key": key, "error": f"{type(exc).__name__}: {exc}"})
            stats.skipped.append(key)
            self.processed.add(key, size, mtime_ns, None)
            return
        run_id = started["run_id"] if started else None
        if started is None:
            self.on_event("ignored", {"key": key, "reason": "no dataset contract claims this key"})
            stats.skipped.append(key)
        elif not started.get("started"):
            self.on_event("duplicate", {"key": key, "run_id": run_id})
            stats.skipped.append(key)
        else:
            self.on_event("queued", {"key": key, "run_id": run_id})
        self.processed.add(key, size, mtime_ns, run_id)
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
