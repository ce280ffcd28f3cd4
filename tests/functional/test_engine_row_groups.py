"""The engine's Parquet row groups stay at 32Ki rows: delta-rs buffers one per open partition writer, and
64Ki rows put the engine's peak on TPC-H lineitem SF1 above 600 MB (docs/BENCHMARKS.md, "Large file")."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from deltalake import DeltaTable
from engine_helpers import app_id, meta_for

from lakehouse.contracts import parse_contract
from lakehouse.duckdb_engine.ingest import ingest_file

CONTRACT = """
name: events
landing_prefix: events/
format: {type: csv, delimiter: ",", header: true}
columns:
  - {name: id, type: bigint, nullable: false}
  - {name: kind, type: string}
partition_by: [kind]
write_mode: append
"""


def test_committed_files_have_row_groups_of_at_most_32ki_rows(tmp_path: Path) -> None:
    rows = 80_000  # one partition: a single open writer gets all of them
    source = tmp_path / "events.csv"
    source.write_text("id,kind\n" + "".join(f"{i},a\n" for i in range(rows)), encoding="utf-8")
    contract = parse_contract(CONTRACT, "events.yaml")
    table = tmp_path / "table"
    result = ingest_file(
        source,
        contract,
        str(table),
        meta_for(source),
        app_id=app_id(contract, source),
        work_dir=tmp_path / "w",
    )
    assert result.rows_written == rows
    groups = [
        pq.ParquetFile(path).metadata.row_group(i).num_rows
        for path in DeltaTable(str(table)).file_uris()
        for i in range(pq.ParquetFile(path).metadata.num_row_groups)
    ]
    assert sum(groups) == rows
    assert max(groups) <= 32 * 1024, groups
