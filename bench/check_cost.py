"""Check-cost benchmark: what one batch's checks read when the table is 1x and 10x as large.

Two Delta tables of orders are built, one of `--batches` committed batches and one of 10x as many, each
batch of `--batch-rows` rows and written as its own Delta commit with its own file (as a drain does),
`_run_id` = the batch's id and keys increasing with time (as TPC-H order keys, or any sequence / time
key). Then one more batch of the same size (new keys) is committed to each, and the contract's
batch-scoped checks for it are compiled (`compile_checks(scope="batch")`) and run on DuckDB over views
through the local query engine (`LocalQueryEngine._query`: Delta file skipping from the log's
statistics, then DuckDB's Parquet reader over the files left). What the query read: the files its views
open (every file a view lists is opened when DuckDB binds it) and their bytes; from DuckDB's profiler, the
rows scanned and row groups read by each table scan (after min/max pruning) and the bytes read. For
contrast, the same checks in table scope (what every ingest used to run) are measured too.

Target: the batch checks' rows and bytes read at 10x within 1.1x of those at 1x.

Run: .venv/bin/python bench/check_cost.py [--batch-rows 50000] [--batches 10] [--scale 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import pyarrow as pa  # noqa: E402
from deltalake import DeltaTable, write_deltalake  # noqa: E402

from lakehouse.contracts.loader import parse_contract  # noqa: E402
from lakehouse.contracts.model import Contract  # noqa: E402
from lakehouse.local.athena import LocalQueryEngine  # noqa: E402
from lakehouse.sql.checks import athena_table, compile_checks  # noqa: E402

CONTRACT = """
name: orders
landing_prefix: orders/
format: {type: csv}
columns:
  - {name: o_orderkey, type: bigint}
  - {name: o_custkey, type: bigint}
  - {name: o_orderstatus, type: string}
  - {name: o_totalprice, type: double}
  - {name: o_orderdate, type: date}
checks:
  - {name: has_rows, type: row_count, SCOPE}
  - {name: orderkey_unique, type: uniqueness, column: o_orderkey, SCOPE}
  - {name: custkey_complete, type: completeness, column: o_custkey, SCOPE}
  - {name: status_known, type: values_in_set, column: o_orderstatus, values: [F, O, P], SCOPE}
  - {name: price_sane, type: values_in_range, column: o_totalprice, range_min: 0, range_max: 1000000, SCOPE}
  - {name: fresh, type: freshness, column: o_orderdate, max: 1000000, SCOPE}
  - {name: no_negative, type: custom_sql, sql: "SELECT count(*) FROM {table} WHERE o_totalprice < 0", SCOPE}
  - name: customer_exists
    type: referential_integrity
    column: o_custkey
    reference: {dataset: customers, column: c_custkey}
    SCOPE
"""
CUSTOMERS = 150_000


def contract(scope: str) -> Contract:
    text = CONTRACT.replace(", SCOPE}", f", scope: {scope}}}").replace("    SCOPE", f"    scope: {scope}")
    return parse_contract(text, "orders.yaml")


def batch(index: int, rows: int) -> pa.Table:
    import pyarrow.compute as pc

    first = index * rows
    keys = pa.array(range(first, first + rows), pa.int64())
    return pa.table(
        {
            "o_orderkey": keys,
            "o_custkey": pc.add(pc.bit_wise_and(keys, 0xFFFF), 1),  # 1..65536, all existing customers
            "o_orderstatus": pa.array(["F", "O", "P"] * (rows // 3) + ["F"] * (rows % 3)),
            "o_totalprice": pc.cast(pc.multiply(pc.bit_wise_and(keys, 0x3FF), 97), pa.float64()),
            "o_orderdate": pa.array([19_000 + index] * rows, pa.date32()),
            "_run_id": pa.array([f"batch-{index:05d}"] * rows),
        }
    )


def build(folder: Path, batches: int, rows: int) -> str:
    uri = str(folder)
    for index in range(batches + 1):  # the last one is the batch under check
        write_deltalake(uri, batch(index, rows), mode="append")
    return uri


def _scans(node: dict[str, Any], out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if node.get("type") == "TABLE_SCAN":
        out.append(node)
    for child in node.get("children", []):
        _scans(child, out)
    return out


class _Engine(LocalQueryEngine):
    """The local query engine (Delta file skipping, views, transpiler) over the bench's tables, with
    DuckDB's profiler on and a count of the files each query's views open."""

    def __init__(self, tables: dict[str, str], profile: Path) -> None:
        settings = SimpleNamespace(glue_database="lakehouse", duckdb_threads=2, duckdb_memory_limit="2GB")
        super().__init__(SimpleNamespace(settings=settings))  # type: ignore[arg-type]
        self.uris = tables
        self.profile = profile
        self.files_opened = 0
        self.file_bytes = 0

    def _open_tables(self, only: set[str] | None = None) -> dict[str, tuple[str, DeltaTable]]:
        return {n: (u, DeltaTable(u)) for n, u in self.uris.items() if only is None or n.lower() in only}

    def _add_view(self, con: Any, name: str, uri: str, table: DeltaTable, keep: Any = None) -> None:
        sizes = pa.table(table.get_add_actions(flatten=True)).column("size_bytes").to_pylist()
        picked = sizes if keep is None else [sizes[i] for i in keep]
        self.files_opened += len(picked)
        self.file_bytes += sum(picked)
        super()._add_view(con, name, uri, table, keep)
        con.execute("PRAGMA enable_profiling = 'json'")
        con.execute(f"PRAGMA profiling_output = '{self.profile}'")
        con.execute("SET profiling_mode = 'detailed'")


def measure(
    uris: dict[str, str], checks: Contract, run_id: str | None, scope: str, work: Path
) -> dict[str, Any]:
    """Run the compiled checks through the local query engine with DuckDB's profiler on."""
    query = compile_checks(checks, athena_table("lakehouse"), run_id=run_id, scope=scope)  # type: ignore[arg-type]
    assert query is not None
    engine = _Engine(uris, work / "profile.json")
    started = time.perf_counter()
    result = engine._query(query.athena(), work)
    seconds = time.perf_counter() - started
    report = json.loads(engine.profile.read_text())
    scans = [s for top in report["operator"] for s in _scans(top, [])]
    return {
        "files_opened": engine.files_opened,
        "file_bytes": engine.file_bytes,
        "rows_scanned": sum(int(s.get("rows_scanned") or 0) for s in scans),
        "row_groups_read": sum(int(s.get("row_groups_scanned") or 0) for s in scans),
        "row_groups_total": sum(int(s.get("total_row_groups_to_scan") or 0) for s in scans),
        "bytes_read": int(report["io"]["total_bytes_read"]),
        "seconds": round(seconds, 3),
        "metrics": dict(zip([c.name for c in query.checks], result.rows[0], strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-rows", type=int, default=50_000)
    parser.add_argument("--batches", type=int, default=10, help="committed batches of the 1x table")
    parser.add_argument("--scale", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="check-cost-") as tmp:
        work = Path(tmp)
        customers = str(work / "customers")
        write_deltalake(customers, pa.table({"c_custkey": pa.array(range(1, CUSTOMERS + 1), pa.int64())}))
        results: dict[int, dict[str, dict[str, Any]]] = {}
        for size in (1, args.scale):
            batches = args.batches * size
            started = time.perf_counter()
            uri = build(work / f"orders_{size}x", batches, args.batch_rows)
            built = time.perf_counter() - started
            uris = {"orders": uri, "customers": customers}
            run_id = f"batch-{batches:05d}"
            results[size] = {
                "batch": measure(uris, contract("batch"), run_id, "batch", work),
                "table": measure(uris, contract("table"), None, "table", work),
            }
            rows = (batches + 1) * args.batch_rows
            print(f"{size}x: {rows:,} rows in {batches + 1} commits (built in {built:.1f} s)")
            for scope, r in results[size].items():
                print(
                    f"  {scope:5} scope: files opened {r['files_opened']:>4} ({r['file_bytes']:>11,} bytes)  "
                    f"rows scanned {r['rows_scanned']:>10,}  row groups {r['row_groups_read']:>4}/"
                    f"{r['row_groups_total']:<4}  bytes read {r['bytes_read']:>11,}  {r['seconds']:.3f} s"
                )
            failing = {
                n: v for n, v in results[size]["batch"]["metrics"].items() if n != "has_rows" and v != 1.0
            }
            has_rows = results[size]["batch"]["metrics"]["has_rows"]
            print(f"  batch metrics other than 1.0 (has_rows = {has_rows}): {failing}")
        measures = ("files_opened", "rows_scanned", "bytes_read")
        for scope in ("batch", "table"):
            small, large = results[1][scope], results[args.scale][scope]
            ratios = ", ".join(f"{k} {large[k] / small[k]:.3f}" for k in measures)
            print(f"{scope} checks, {args.scale}x / 1x: {ratios}")
        ratio = max(results[args.scale]["batch"][k] / results[1]["batch"][k] for k in measures)
        verdict = "met" if ratio <= 1.1 else "MISSED"
        print(f"target: batch checks' reads at {args.scale}x <= 1.1 x those at 1x: {verdict}")


if __name__ == "__main__":
    main()
