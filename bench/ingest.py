"""Ingest benchmark: TPC-H lineitem SF1 through the engine vs a bare pyarrow → delta-rs baseline.

Run: `make bench` or `.venv/bin/python bench/ingest.py [--scale 1] [--data bench/data]`.
Each side runs in its own subprocess so peak RSS (ru_maxrss of that child) is its own.
Targets (2 cores): wall-time ratio engine/baseline ≤ 1.0; engine peak RSS ≤ 600 MB.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def generate(scale: float, data: Path) -> Path:
    target = data / f"sf{scale:g}" / "lineitem.csv"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tpchgen = Path(sys.executable).with_name("tpchgen-cli")
    subprocess.run(
        [str(tpchgen), "csv", "-s", str(scale), "-T", "lineitem", "-o", str(target.parent)], check=True
    )
    return target


def run_engine(path: Path, table: Path) -> dict[str, object]:
    from datetime import UTC, datetime

    from lakehouse.contracts import load_contract
    from lakehouse.duckdb_engine.ingest import ingest_file
    from lakehouse.events import app_id_for
    from lakehouse.sql.compiler import RunMeta

    contract = load_contract(ROOT / "datasets" / "lineitem.yaml")
    meta = RunMeta(f"file://{path}", "bench", datetime.now(UTC), "bench-run")
    result = ingest_file(
        path,
        contract,
        str(table),
        meta,
        app_id=app_id_for("lineitem", "bench", str(path), str(time.time())),
        work_dir=table.parent / "work",
    )
    return {"rows_written": result.rows_written, "rows_rejected": result.rows_rejected}


def run_baseline(path: Path, table: Path) -> dict[str, object]:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    from deltalake import write_deltalake

    reader = pacsv.open_csv(path)
    # Stream batches straight into delta-rs: the bare path, no casts, rules or metadata.
    batches = pa.RecordBatchReader.from_batches(reader.schema, reader)
    write_deltalake(str(table), batches, mode="append", partition_by=["l_shipmode"])
    return {}


def child(side: str, path: Path, table: Path) -> None:
    started = time.perf_counter()
    extra = run_engine(path, table) if side == "engine" else run_baseline(path, table)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"side": side, "seconds": seconds, "peak_rss_mb": peak_mb, **extra}))


def measure(side: str, path: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{side}-") as tmp:
        table = Path(tmp) / "table"
        out = subprocess.run(
            [sys.executable, __file__, "--child", side, "--file", str(path), "--table", str(table)],
            check=True,
            capture_output=True,
            text=True,
        )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--child", choices=["engine", "baseline"])
    parser.add_argument("--file", type=Path)
    parser.add_argument("--table", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.file, args.table)
        return
    path = generate(args.scale, args.data)
    size_mb = path.stat().st_size / 1e6
    print(f"lineitem SF{args.scale:g}: {path} ({size_mb:.0f} MB)")
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for side in ("baseline", "engine"):
            result = measure(side, path)
            print(f"  {side:8s} {result['seconds']:6.2f} s  peak RSS {result['peak_rss_mb']:6.0f} MB")
            if side not in best or result["seconds"] < best[side]["seconds"]:
                best[side] = result
    ratio = best["engine"]["seconds"] / best["baseline"]["seconds"]
    print(f"wall-time ratio engine/baseline: {ratio:.2f}  (target <= 1.0)")
    print(f"engine peak RSS: {best['engine']['peak_rss_mb']:.0f} MB (target <= 600)")
    print(f"baseline peak RSS: {best['baseline']['peak_rss_mb']:.0f} MB")
    print(f"engine rows written: {best['engine'].get('rows_written')}")
    shutil.rmtree(Path(tempfile.gettempdir()) / "bench-unused", ignore_errors=True)


if __name__ == "__main__":
    main()
