"""Local pipeline benchmarks: `lakehouse demo`, small-file latency, executor overhead.

1. `lakehouse demo` after setup, in a fresh process (the Delta jar download is excluded: the jar cache is
   warmed first). Target: < 60 s on 2 cores.
2. A small file's latency on the Lambda route, from its arrival in the landing folder to committed and
   checked (the run's ledger record final), median of several runs in a warm executor. Target: < 2 s.
3. The executor's overhead: the same small file through the whole state machine versus calling the
   ingest core (`lakehouse.duckdb_engine.ingest.ingest_file`) directly, as a ratio of medians.

Run: .venv/bin/python bench/local_pipeline.py [--runs N] [--skip-demo]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = ",".join(
    [
        "o_orderkey",
        "o_custkey",
        "o_orderstatus",
        "o_totalprice",
        "o_orderdate",
        "o_orderpriority",
        "o_clerk",
        "o_shippriority",
        "o_comment",
    ]
)


def small_orders(path: Path, first_key: int, rows: int = 200) -> Path:
    lines = [HEADER] + [
        f"{first_key + i},{100 + i},{'FOP'[i % 3]},{1000 + i:.2f},1996-01-02,5-LOW,"
        f"Clerk#000000951,0,bench {i}"
        for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def bench_demo(work: Path) -> float:
    from lakehouse.spark.jars import delta_jars

    delta_jars()  # the one-time download is setup, not part of the demo
    home = work / "demo-home"
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lakehouse",
            "--home",
            str(home),
            "--datasets",
            str(ROOT / "datasets"),
            "demo",
            "--json",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def bench_latency(work: Path, runs: int) -> tuple[list[float], list[float]]:
    """Arrival -> committed and checked, through LandingWatcher-equivalent submit + drain, warm process."""
    from lakehouse.local.executor import LocalOptions, LocalPipeline

    home = work / "latency-home"
    pipeline = LocalPipeline(LocalOptions(home=home, datasets_dir=ROOT / "datasets", spark=False))
    landing = home / "buckets" / "landing" / "orders"
    landing.mkdir(parents=True, exist_ok=True)
    # One untimed run first: a Lambda "cold start" (imports) happens once per process.
    small_orders(landing / "warmup.csv", 1)
    pipeline.submit("orders/warmup.csv")
    pipeline.drain()
    latencies, states_ms = [], []
    for i in range(runs):
        source = small_orders(work / f"orders_{i}.csv", 10_000 + i * 1000)
        arrived = time.perf_counter()
        os.replace(source, landing / source.name)  # the file lands
        pipeline.submit(f"orders/{source.name}")
        (record,) = pipeline.drain()
        latencies.append(time.perf_counter() - arrived)
        assert record.status == "SUCCEEDED", record.data.get("error")
        states_ms.append(sum(s["duration_ms"] or 0 for s in record.data["states"]))
    return latencies, states_ms


def bench_direct(work: Path, runs: int) -> list[float]:
    """The ingest core alone on the same kind of file: no state machine, no handlers, no checks."""
    from lakehouse.contracts import ContractRegistry
    from lakehouse.duckdb_engine.ingest import ingest_file
    from lakehouse.events import app_id_for
    from lakehouse.sql.compiler import RunMeta

    contract = ContractRegistry.from_dir(ROOT / "datasets").get("orders")
    table = str(work / "direct-table")
    ingest_file(
        small_orders(work / "direct_warm.csv", 1), contract, table,
        RunMeta("s3://landing/orders/w.csv", "w", datetime.now(UTC), "warm"),
        app_id="lakehouse:orders:warm", work_dir=work / "direct-work",
    )  # fmt: skip
    timings = []
    for i in range(runs):
        source = small_orders(work / f"direct_{i}.csv", 10_000 + i * 1000)
        started = time.perf_counter()
        ingest_file(
            source, contract, table,
            RunMeta(f"s3://landing/orders/{source.name}", str(i), datetime.now(UTC), f"direct-{i}"),
            app_id=app_id_for("orders", "landing", source.name, str(i)), work_dir=work / f"direct-work-{i}",
        )  # fmt: skip
        timings.append(time.perf_counter() - started)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory(prefix="lakehouse-bench-") as folder:
        work = Path(folder)
        print(f"cores: {os.cpu_count()}")
        if not args.skip_demo:
            demo_s = bench_demo(work)
            print(f"lakehouse demo (fresh process, jars cached): {demo_s:.1f} s  (target < 60 s)")
        latencies, states_ms = bench_latency(work, args.runs)
        direct = bench_direct(work, args.runs)
        median_latency = statistics.median(latencies)
        median_direct = statistics.median(direct)
        print(
            f"small file (200 rows) arrival -> committed and checked, Lambda route, median of {args.runs}: "
            f"{median_latency * 1000:.0f} ms (min {min(latencies) * 1000:.0f}, "
            f"max {max(latencies) * 1000:.0f}; "
            f"sum of state times {statistics.median(states_ms):.0f} ms)  (target < 2000 ms)"
        )
        print(f"ingest core alone (ingest_file), median: {median_direct * 1000:.0f} ms")
        print(f"executor overhead: {median_latency / median_direct:.1f}x the ingest core for the same file")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
