"""The batch engine alone: N small orders files staged one by one, then committed in one Delta commit.

What `CommitWithLambda` does for a drain's batch, without the state machine: `stage_file` per object
(its own ingest flow: header, plan, counts, rejects, Parquet staging), then `commit_staged`. Prints the
staging cost per object and the commit's time, best of `--rounds`. With `--cprofile` it prints the top
of a cProfile of one round instead.

Run: .venv/bin/python bench/batch_stage.py [--files 100] [--rounds 3] [--cprofile]
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from local_pipeline import small_orders  # noqa: E402


def one_round(files: list[Path], work: Path) -> tuple[float, float]:
    """(staging seconds per object, commit seconds) for one batch of `files` into a new table."""
    from lakehouse.contracts.loader import load_contract
    from lakehouse.duckdb_engine import batch
    from lakehouse.sql.compiler import RunMeta

    contract = load_contract(ROOT / "datasets" / "orders.yaml")
    table = str(work / "table")
    options = {"storage_options": None, "memory_limit": "256MB", "threads": 2}
    shared = "session" in inspect.signature(batch.stage_file).parameters  # older code: no session
    session = batch.BatchSession(table, work_dir=work / "session", **options) if shared else None  # type: ignore[arg-type]
    extra = {"session": session} if shared else {}
    started = time.perf_counter()
    staged = []
    for n, path in enumerate(files):
        meta = RunMeta(f"s3://landing/orders/{path.name}", str(n), datetime.now(UTC), "bench")
        staged.append(
            batch.stage_file(
                path, contract, table, meta, app_id=f"bench:{n}", txn_version=1,
                work_dir=work / f"o{n}", source_name=path.name, **options, **extra,  # type: ignore[arg-type]
            )
        )  # fmt: skip
    if session is not None:
        session.close()
    staged_at = time.perf_counter()
    batch.commit_staged(staged, contract, table, "bench", storage_options=None, work_dir=work / "commit")
    return (staged_at - started) / len(files), time.perf_counter() - staged_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lakehouse-batch-") as tmp:
        work = Path(tmp)
        files = [
            small_orders(work / f"orders_{n:05d}.csv", 1 + n * args.rows, args.rows)
            for n in range(args.files)
        ]
        if args.cprofile:
            profile = cProfile.Profile()
            profile.runcall(one_round, files, work / "profiled")
            pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
            return
        results = [one_round(files, work / f"round{r}") for r in range(args.rounds)]
        for per_object, commit in results:
            print(f"staging {per_object * 1000:.1f} ms/object, commit {commit * 1000:.0f} ms")
        best = min(results)
        print(f"best of {args.rounds}: {best[0] * 1000:.1f} ms/object ({args.files} x {args.rows} rows)")


if __name__ == "__main__":
    main()
