"""Writers racing to create a table: one creates it, the others retry and append; no row is lost."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from deltalake import DeltaTable

ROOT = Path(__file__).resolve().parents[2]
ROWS_PER_FILE = 50


def _write_file(folder: Path, writer: int) -> Path:
    header = (
        "l_orderkey,l_partkey,l_suppkey,l_linenumber,l_quantity,l_extendedprice,l_discount,l_tax,"
        "l_returnflag,l_linestatus,l_shipdate,l_commitdate,l_receiptdate,l_shipinstruct,l_shipmode,l_comment"
    )
    lines = [header]
    for i in range(ROWS_PER_FILE):
        key = writer * 1000 + i
        lines.append(
            f"{key},1,1,1,5,10.00,0.05,0.01,N,O,2026-01-01,2026-01-02,2026-01-03,NONE,"
            f"{['AIR', 'RAIL', 'SHIP'][i % 3]},writer {writer}"
        )
    path = folder / f"part-{writer}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _ingest(args: tuple[int, str, str]) -> str:
    writer, path, uri = args
    from lakehouse.contracts import load_contract
    from lakehouse.duckdb_engine.ingest import ingest_file
    from lakehouse.sql.compiler import RunMeta

    contract = load_contract(ROOT / "datasets" / "lineitem.yaml")
    meta = RunMeta(f"file://{path}", "v1", datetime(2026, 1, 1, tzinfo=UTC), f"run-{writer}")
    result = ingest_file(
        Path(path),
        contract,
        uri,
        meta,
        app_id=f"lakehouse:lineitem:{writer}",
        work_dir=Path(path).parent / f"w{writer}",
    )
    return result.status


@pytest.mark.slow
def test_racing_first_writers_all_land_exactly_once(tmp_path: Path) -> None:
    uri = str(tmp_path / "lineitem")
    jobs = [(w, str(_write_file(tmp_path, w)), uri) for w in range(4)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        statuses = pool.map(_ingest, jobs)

    assert statuses == ["committed"] * 4
    table = DeltaTable(uri)
    assert table.version() == 3  # one creating commit and three appends, in some order
    assert table.count() == 4 * ROWS_PER_FILE
    assert table.metadata().configuration.get("delta.enableDeletionVectors") == "false"
