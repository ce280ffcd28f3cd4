"""Burst benchmark: N small TPC-H orders files dropped at once, through the local pipeline (no Spark).

The files are landed and their events recorded in the pending set first (what S3 + on_object_created do
for a burst), then the executor runs drains until none is pending. It prints the time until every file
is committed and checked, the Delta commits and data files of the table, the rows (which must be exactly
N x rows), and the peak RSS of this process (the executor; task workers are reported separately).

Targets (2 cores, default 1,000 x 200 rows): <= 60 s; <= 1 Delta commit per 50 files; exactly 200,000 rows.

Run: .venv/bin/python bench/burst.py [--files 1000] [--rows 200] [--batch-size 100]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from local_pipeline import small_orders  # noqa: E402


class _PeakRss(threading.Thread):
    """The largest RSS of any child process (the task workers run the engine), sampled every 50 ms:
    forkserver workers are never waited for, so getrusage(RUSAGE_CHILDREN) does not see them."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_children = 0
        self._done = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._done.wait(0.05):
            for child in me.children(recursive=True):
                try:
                    self.peak_children = max(self.peak_children, child.memory_info().rss)
                except psutil.Error:
                    continue

    def stop(self) -> None:
        self._done.set()
        self.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="BATCH_MAX_OBJECTS (default: the setting)"
    )
    args = parser.parse_args()
    if args.batch_size:
        os.environ["BATCH_MAX_OBJECTS"] = str(args.batch_size)
    os.environ["LAKEHOUSE_PROJECT_ROOT"] = str(ROOT)

    from deltalake import DeltaTable

    from lakehouse.local.executor import LocalOptions, LocalPipeline

    with tempfile.TemporaryDirectory(prefix="lakehouse-burst-") as tmp:
        work = Path(tmp)
        files = [
            small_orders(work / f"orders_{n:05d}.csv", 1 + n * args.rows, args.rows)
            for n in range(args.files)
        ]
        pipeline = LocalPipeline(
            LocalOptions(
                home=work / "home",
                datasets_dir=ROOT / "datasets",
                project_root=ROOT,
                spark=False,
                reports=False,
            )
        )
        sampler = _PeakRss()
        sampler.start()
        started = time.perf_counter()
        for path in files:
            pipeline.submit(pipeline.land_file(path))
        queued_s = time.perf_counter() - started
        records = pipeline.drain()
        elapsed = time.perf_counter() - started

        table = DeltaTable(str(work / "home" / "buckets" / "lake" / "tables" / "orders"))
        history = table.history()
        ingests = [h for h in history if "lakehouse.run_id" in json.loads(h.get("userMetadata") or "{}")]
        rows = table.count() if hasattr(table, "count") else None
        if rows is None:
            import duckdb

            rows = duckdb.sql(
                "SELECT count(*) FROM read_parquet(" + repr(table.file_uris()) + ")"
            ).fetchall()[0][0]
        statuses: dict[str, int] = {}
        for record in records:
            statuses[record.status] = statuses.get(record.status, 0) + 1
        drains = len({str(r.data.get("batch_id")) for r in records})
        sampler.stop()
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        workers_mb = sampler.peak_children / 1024 / 1024
        print(f"files:                 {args.files} x {args.rows} rows")
        print(f"landed + queued:       {queued_s:.1f} s")
        print(f"all committed+checked: {elapsed:.1f} s  ({args.files / elapsed:.1f} files/s)")
        print(f"statuses:              {statuses}")
        print(f"drains:                {drains}")
        print(
            f"Delta ingest commits:  {len(ingests)}  ({args.files / max(len(ingests), 1):.0f} files/commit)"
        )
        print(f"Delta versions:        {table.version() + 1}")
        print(f"data files:            {len(table.file_uris())}")
        print(f"rows:                  {rows}  (expected {args.files * args.rows})")
        print(f"peak RSS executor:     {rss_mb:.0f} MB; largest task worker: {workers_mb:.0f} MB")
        _print_states(records)


def _print_states(records: list) -> None:  # type: ignore[type-arg]
    """Per drain: its wall time, and the states' total time over all drains (from the run ledger)."""
    drains: dict[str, dict] = {}  # type: ignore[type-arg]
    for record in records:
        drains.setdefault(str(record.data.get("batch_id")), record.data)
    totals: dict[str, float] = {}
    walls = []
    for data in drains.values():
        walls.append(float(data.get("duration_ms") or 0))
        for state in data.get("states") or []:
            totals[state["name"]] = totals.get(state["name"], 0.0) + float(state["duration_ms"] or 0)
    print(f"drain wall times (s):  {', '.join(f'{w / 1000:.1f}' for w in walls)}")
    states = sum(totals.values())
    outside = (sum(walls) - states) / 1000
    print(f"states, all drains:    {states / 1000:.1f} s ({outside:.1f} s outside the states)")
    for name, ms in sorted(totals.items(), key=lambda kv: -kv[1])[:6]:
        print(f"  {name:<22} {ms / 1000:.1f} s")


if __name__ == "__main__":
    main()
