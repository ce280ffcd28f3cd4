"""Timestamp (TIMESTAMPTZ) values returned from DuckDB to Python on the Lambda engine.

DuckDB imports pytz to hand a TIMESTAMP WITH TIME ZONE to Python. The engine does that for the partition
values of `overwrite_partitions` and for merge keys, so pytz is a runtime dependency of the engine layer.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

from deltalake import DeltaTable
from engine_helpers import ingest

from lakehouse.contracts import parse_contract

ROOT = Path(__file__).resolve().parents[2]


def _contract(mode: str) -> str:
    extra = "partition_by: [hour]\n" if mode == "overwrite_partitions" else "primary_key: [hour]\n"
    return (
        "name: readings\nlanding_prefix: readings/\nformat: {type: csv, header: true}\n"
        "columns:\n  - {name: hour, type: timestamp, nullable: false}\n  - {name: value, type: bigint}\n"
        f"{extra}write_mode: {mode}\n"
    )


def _rows(uri: str) -> list[tuple[datetime, int]]:
    data = DeltaTable(uri).to_pyarrow_table(columns=["hour", "value"]).to_pylist()
    return sorted((r["hour"].astimezone(UTC), r["value"]) for r in data)


def test_timestamp_partitions_and_merge_keys_on_the_lambda_engine(tmp_path: Path) -> None:
    src = tmp_path / "readings.csv"
    src.write_text("hour,value\n2026-01-01T10:00:00Z,1\n2026-01-01T11:00:00Z,2\n", encoding="utf-8")
    again = tmp_path / "readings2.csv"
    again.write_text("hour,value\n2026-01-01T11:00:00Z,20\n", encoding="utf-8")
    h10 = datetime(2026, 1, 1, 10, tzinfo=UTC)
    h11 = datetime(2026, 1, 1, 11, tzinfo=UTC)
    for mode in ("overwrite_partitions", "merge"):
        contract = parse_contract(_contract(mode), f"{mode}.yaml")
        uri = str(tmp_path / mode)
        assert ingest(src, contract, uri, tmp_path / f"w1{mode}").status == "committed"
        assert ingest(again, contract, uri, tmp_path / f"w2{mode}", run_id="run-2").status == "committed"
        assert _rows(uri) == [(h10, 1), (h11, 20)], mode


def test_pytz_is_pinned_for_the_engine_layer() -> None:
    pins = (ROOT / "layers" / "engine" / "requirements.txt").read_text().splitlines()
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    layer = [p for p in pins if p.startswith("pytz==")]
    assert layer, "the engine layer must ship pytz (DuckDB imports it for timestamptz results)"
    assert layer[0] in deps
