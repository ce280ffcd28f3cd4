"""Hostile files and columns on the Spark engine: the same outcome as the DuckDB engine, table for table."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from engine_helpers import app_id, ingest, meta_for, read_rows, sha256

from lakehouse import errors
from lakehouse.contracts import Contract, parse_contract

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.xdist_group("spark")]

CONTRACT = """
name: items
landing_prefix: items/
format: {{type: csv{format}}}
columns:
  - {{name: id, type: int, nullable: false}}
  - {{name: name, type: string}}
  - {{name: day, type: date}}
  - {{name: ts, type: timestamp}}
schema_evolution: add_columns
"""
HEADER = "id,name,day,ts\n"


def items(fmt: str = "") -> Contract:
    return parse_contract(CONTRACT.format(format=fmt), "items.yaml")


def spark_ingest(spark: Any, path: Path, contract: Contract, uri: str, rejects: Path) -> dict[str, Any]:
    from lakehouse.spark.ingest import ingest_object

    return ingest_object(
        spark,
        str(path),
        contract,
        uri,
        meta_for(path),
        app_id=app_id(contract, path),
        rejects_uri=str(rejects),
    )


def landed(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def both(spark: Any, tmp_path: Path, contract: Contract, path: Path) -> tuple[Any, Any]:
    """(Spark outcome, DuckDB outcome): a result dict, or the exception raised."""
    outcomes: list[Any] = []
    for engine in ("spark", "duckdb"):
        try:
            if engine == "spark":
                outcomes.append(
                    spark_ingest(spark, path, contract, str(tmp_path / engine), tmp_path / "rejects.parquet")
                )
            else:
                outcomes.append(ingest(path, contract, str(tmp_path / engine), tmp_path / "work").as_dict())
        except errors.LakehouseError as exc:
            outcomes.append(exc)
    return outcomes[0], outcomes[1]


def sorted_rows(uri: str) -> list[dict[str, Any]]:
    return sorted(read_rows(uri, with_metadata=True), key=lambda r: r["id"])


def test_hostile_header_names_same_table(spark: Any, tmp_path: Path) -> None:
    names = ['we"ird', "tick`x", "do.t", "it's", "ünï☃", "a-b"]
    header = "id,name,day,ts," + ",".join('"' + n.replace('"', '""') + '"' for n in names)
    path = landed(tmp_path / "landing", "odd.csv", f"{header}\n2,b,2024-01-02,,1,2,3,4,5,6\n".encode())
    spark_result, duck_result = both(spark, tmp_path, items(), path)
    assert spark_result["status"] == duck_result["status"] == "committed"
    assert spark_result["added_columns"] == duck_result["added_columns"] == names
    spark_schema = [f.name for f in DeltaTable(str(tmp_path / "spark")).schema().fields]
    assert spark_schema == [f.name for f in DeltaTable(str(tmp_path / "duckdb")).schema().fields]
    assert sorted_rows(str(tmp_path / "spark")) == sorted_rows(str(tmp_path / "duckdb"))


@pytest.mark.parametrize("column", ["_rejected", "_ROW", "_corrupt_record", "_lakehouse_mid", "sp ace"])
def test_reserved_header_is_refused_by_both(column: str, spark: Any, tmp_path: Path) -> None:
    path = landed(tmp_path / "landing", "attack.csv", f"id,name,day,ts,{column}\nx,b,nope,,false\n".encode())
    digest = sha256(path)
    spark_error, duck_error = both(spark, tmp_path, items(), path)
    for error in (spark_error, duck_error):
        assert type(error) is errors.SchemaMismatchError, error
        assert repr(column) in str(error)
        assert "reserved" in str(error) or "cannot become Delta columns" in str(error)
    assert not (tmp_path / "spark" / "_delta_log").exists()
    assert sha256(path) == digest


def test_out_of_range_dates_quarantined_alike(spark: Any, tmp_path: Path) -> None:
    values = ["-0001-01-01", "0000-01-01", "10000-01-01", "infinity", "-infinity", "epoch"]
    lines = ["2,edge,0001-01-01,0001-01-01 00:00:00Z", "3,edge,9999-12-31,9999-12-31 23:59:59.999999Z"]
    for i, value in enumerate(values):
        lines.append(f"{10 + i},d,{value},")
        lines.append(f"{20 + i},t,,{value}")
    path = landed(tmp_path / "landing", "dates.csv", (HEADER + "\n".join(lines) + "\n").encode())
    spark_result, duck_result = both(spark, tmp_path, items(), path)
    assert spark_result["rows_written"] == duck_result["rows_written"] == 2
    assert spark_result["rows_rejected"] == duck_result["rows_rejected"] == 2 * len(values)
    assert sorted_rows(str(tmp_path / "spark")) == sorted_rows(str(tmp_path / "duckdb"))


def test_limits_refuse_before_spark_parses(spark: Any, tmp_path: Path) -> None:
    wide = landed(tmp_path / "landing", "wide.csv", (HEADER + ",".join(["9"] * 50_000) + "\n").encode())
    spark_error, duck_error = both(spark, tmp_path, items(), wide)
    assert type(spark_error) is type(duck_error) is errors.InputLimitError
    assert str(spark_error) == str(duck_error)
    assert "line 2 has 50000 fields" in str(spark_error)

    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    data = packer.compress(HEADER.encode()) + packer.compress(b"2,b,2024-01-02,\n" * 500_000) + packer.flush()
    big = landed(tmp_path / "landing", "big.csv.gz", data)
    spark_error, duck_error = both(spark, tmp_path, items(", max_decompressed_bytes: 1048576"), big)
    assert type(spark_error) is type(duck_error) is errors.InputLimitError
    assert "format.max_decompressed_bytes" in str(spark_error)
    assert not (tmp_path / "spark" / "_delta_log").exists()


def test_remote_object_limits_are_kept_by_the_parser(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Objects on S3 are not pre-scanned; Spark's CSV parser stops a too-wide line with the same class."""
    import lakehouse.spark.ingest as spark_ingest_module

    monkeypatch.setattr(spark_ingest_module, "preflight", lambda *args, **kwargs: None)
    wide = landed(tmp_path / "landing", "wide.csv", (HEADER + ",".join(["9"] * 50_000) + "\n").encode())
    digest = sha256(wide)
    with pytest.raises(
        errors.InputLimitError, match=r"wide\.csv: a line exceeds format\.max_fields \(10000\)"
    ):
        spark_ingest(spark, wide, items(), str(tmp_path / "spark"), tmp_path / "rejects.parquet")
    assert not (tmp_path / "spark" / "_delta_log").exists()
    assert sha256(wide) == digest
