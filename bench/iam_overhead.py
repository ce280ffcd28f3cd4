"""What local IAM enforcement costs: one ingest run with LAKEHOUSE_IAM on and off, and one check.

PYTHONPATH=src python bench/iam_overhead.py     # docs/IAM.md quotes its output
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
os.environ.setdefault("LAKEHOUSE_PROJECT_ROOT", str(ROOT))

from e2e_helpers import DATASETS, write_orders  # noqa: E402

from lakehouse.local import enforce  # noqa: E402
from lakehouse.local.executor import LocalOptions, LocalPipeline  # noqa: E402


def one_run(mode: str, rows: int = 2000) -> float:
    os.environ["LAKEHOUSE_IAM"] = mode
    with tempfile.TemporaryDirectory() as folder:
        source = write_orders(Path(folder) / "orders_bench.csv", 1, rows)
        options = LocalOptions(
            home=Path(folder) / "home", datasets_dir=DATASETS, project_root=ROOT, spark=False, reports=False
        )
        pipeline = LocalPipeline(options)
        started = time.perf_counter()
        pipeline.submit(pipeline.land_file(source, "orders"))
        [record] = pipeline.drain()
        assert record.status == "SUCCEEDED", record.data.get("error")
        return time.perf_counter() - started


def main() -> None:
    one_run("on")  # imports, template parse
    times: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(5):
        for mode in times:
            times[mode].append(one_run(mode))
    for mode, values in times.items():
        print(
            f"LAKEHOUSE_IAM={mode}: one 2,000-row ingest run, median of 5: {statistics.median(values):.2f} s"
        )
    os.environ["LAKEHOUSE_IAM"] = "on"
    n = 20000
    with enforce.as_role("CommitObjectFunctionRole"):
        started = time.perf_counter()
        for i in range(n):
            enforce.check_s3(
                "CommitObjectFunctionRole", "s3:PutObject", "lake", f"tables/orders/part-{i}.parquet"
            )
        per_call = (time.perf_counter() - started) / n
    print(f"one s3:PutObject check (with its KMS check): {per_call * 1e6:.0f} us")


if __name__ == "__main__":
    main()
