"""Lambda cold start of the commit path: import time of DuckDB, delta-rs, Powertools and the handler.

Each figure is the median wall time of a fresh interpreter (`python -c ...`) doing one thing, minus
nothing: the first line is the bare interpreter, so the import cost of a module is its line minus that
one. The last line imports `functions/commit_object/app.py` (the CommitWithLambda handler) as Lambda's
runtime does at init, then what the first invocation does before it reads a byte: it imports the engine
(the handler imports it on first use), runs a DuckDB query and opens a delta-rs table. `-X importtime`
then says which packages the time goes to.

This machine is not Lambda (x86-64 vs arm64, a warm page cache, a full core): the figures are the
import work itself, a lower bound for a cold Lambda init. Lambda's own part of a cold start (fetching
the package, starting the runtime) comes on top (docs/COST.md, "Throughput").

Run: .venv/bin/python bench/lambda_cold_start.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANDLER = ROOT / "functions" / "commit_object" / "app.py"

LOAD_HANDLER = (
    "import importlib.util, sys;"
    f"spec = importlib.util.spec_from_file_location('app', {str(HANDLER)!r});"
    "app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)"
)
CASES: list[tuple[str, str]] = [
    ("python (bare interpreter)", "pass"),
    ("import duckdb", "import duckdb"),
    ("import deltalake", "import deltalake"),
    (
        "import aws_lambda_powertools (Logger, Metrics, Tracer)",
        "from aws_lambda_powertools import Logger, Metrics, Tracer; Logger(); Metrics(); Tracer()",
    ),
    ("import lakehouse.duckdb_engine.ingest", "import lakehouse.duckdb_engine.ingest"),
    ("import the commit_object handler (app.py)", LOAD_HANDLER),
]


def _env(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "POWERTOOLS_SERVICE_NAME": "lakehouse",
        "POWERTOOLS_METRICS_NAMESPACE": "Lakehouse",
        "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here; the SDK is still imported
        "LAKEHOUSE_BACKEND": "local",
        "LAKEHOUSE_HOME": str(work / "home"),
        "DATASETS_DIR": str(ROOT / "datasets"),
    }


def first_use(table: Path) -> str:
    """The handler, then what its first invocation does before it reads data: the engine imported (the
    handler imports it on first use), a DuckDB connection and a delta-rs table opened."""
    return (
        f"{LOAD_HANDLER}; import lakehouse.duckdb_engine.ingest, duckdb, deltalake;"
        " duckdb.connect().execute('SELECT 1').fetchall();"
        f" deltalake.DeltaTable({str(table)!r}).version()"
    )


def timed(code: str, env: dict[str, str], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def slowest_packages(code: str, env: dict[str, str], top: int = 8) -> list[tuple[str, float]]:
    """Import time (`-X importtime`, self time summed per top-level package) of `code`, largest first."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        check=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stderr
    totals: dict[str, float] = {}
    for line in out.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line.removeprefix("import time:").split("|")
        package = name.strip().split(".")[0]
        totals[package] = totals.get(package, 0.0) + int(self_us) / 1e6
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lakehouse-coldstart-") as folder:
        work = Path(folder)
        env = _env(work)
        table = work / "t"
        subprocess.run(
            [sys.executable, "-c", "import deltalake, pyarrow as pa; "
             f"deltalake.write_deltalake({str(table)!r}, pa.table({{'a': [1]}}))"],
            check=True, env=env,
        )  # fmt: skip
        version = sys.version.split()[0]
        print(f"python {version}, {os.cpu_count()} cores, median of {args.rounds} fresh processes")
        bare = 0.0
        for label, code in [
            *CASES,
            ("handler + engine import + first DuckDB query + first Delta table", first_use(table)),
        ]:
            seconds = timed(code, env, args.rounds)
            bare = bare or seconds
            extra = (
                ""
                if seconds is bare
                else f"   (+{(seconds - bare) * 1000:5.0f} ms over the bare interpreter)"
            )
            print(f"  {label:66s} {seconds * 1000:6.0f} ms{extra}")
        print("where the import time goes (-X importtime, self time per package, one run):")
        for name, seconds in slowest_packages(first_use(table), env):
            print(f"  {name:66s} {seconds * 1000:6.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
