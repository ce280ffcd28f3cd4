"""Hostile files and columns (DuckDB engine): huge lines, gzip bombs, out-of-range dates, header attacks.

Every refused file leaves the table exactly as it was (version and rows) and the raw file byte-for-byte
intact; the errors name the file, where the problem is and the limit it broke.
"""

from __future__ import annotations

import gzip
import time
import zlib
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from engine_helpers import ingest, read_rows, sha256, table_version

from lakehouse import errors
from lakehouse.contracts import Contract, parse_contract

CONTRACT = """
name: items
landing_prefix: items/
format: {{type: csv{format}}}
columns:
  - {{name: id, type: int, nullable: false}}
  - {{name: name, type: string}}
  - {{name: day, type: date}}
  - {{name: ts, type: timestamp}}
schema_evolution: {evolution}
"""
HEADER = "id,name,day,ts\n"
GOOD = "1,a,2024-01-01,2024-01-01T00:00:00Z\n"


def items(evolution: str = "add_columns", fmt: str = "") -> Contract:
    return parse_contract(CONTRACT.format(evolution=evolution, format=fmt), "items.yaml")


def seeded(tmp_path: Path, spec: Contract) -> tuple[str, int, list[dict[str, object]]]:
    """A table holding one good commit: (uri, version, rows with metadata)."""
    uri = str(tmp_path / "items")
    seed = tmp_path / "landing" / "seed.csv"
    seed.parent.mkdir(exist_ok=True)
    seed.write_text(HEADER + GOOD)
    ingest(seed, spec, uri, tmp_path / "seed-work")
    return uri, table_version(uri), read_rows(uri, with_metadata=True)


def refused(
    tmp_path: Path, spec: Contract, path: Path, error: type[Exception], *fragments: str
) -> tuple[str, float]:
    """Ingest `path` into a seeded table; assert the exact error, the table and file unchanged."""
    uri, version, before = seeded(tmp_path, spec)
    digest = sha256(path)
    started = time.monotonic()
    with pytest.raises(errors.LakehouseError) as info:
        ingest(path, spec, uri, tmp_path / "work")
    elapsed = time.monotonic() - started
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    message = str(info.value)
    assert path.name in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert table_version(uri) == version
    assert read_rows(uri, with_metadata=True) == before
    assert sha256(path) == digest
    return message, elapsed


def landed(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "landing" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


# --- one huge line ---------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_five_million_fields_on_one_line_fail_fast(tmp_path: Path) -> None:
    """10 MB: a header and one line of 5,000,000 fields (it ran for 35+ minutes at 100% CPU)."""
    path = landed(tmp_path, "wide.csv", (HEADER + ",".join(["9"] * 5_000_000) + "\n").encode())
    _, elapsed = refused(
        tmp_path,
        items(),
        path,
        errors.InputLimitError,
        "line 2",
        "longer than 8388608 bytes",
        "max_line_bytes",
    )
    print(f"5,000,000-field line refused in {elapsed:.2f} s")


@pytest.mark.timeout(120)
def test_too_many_fields_on_a_short_line(tmp_path: Path) -> None:
    """50,000 fields in 100 KB: within the line limit, over max_fields (10,000 by default)."""
    path = landed(tmp_path, "wide.csv", (HEADER + GOOD + ",".join(["9"] * 50_000) + "\n").encode())
    _, elapsed = refused(
        tmp_path, items(), path, errors.InputLimitError, "line 3", "has 50000 fields", "max_fields"
    )
    assert elapsed < 60


def test_quoted_delimiters_are_not_fields(tmp_path: Path) -> None:
    """A quoted field full of commas is one field: the field limit counts as the CSV reader does."""
    spec = items(fmt=", max_fields: 10")
    uri, version, _ = seeded(tmp_path, spec)
    path = landed(tmp_path, "quoted.csv", f'{HEADER}2,"{"," * 50}",2024-01-02,\n'.encode())
    result = ingest(path, spec, uri, tmp_path / "work")
    assert (result.status, result.rows_written, result.version_after) == ("committed", 1, version + 1)
    assert {r["id"]: r["name"] for r in read_rows(uri)}[2] == "," * 50


def test_header_over_the_field_limit(tmp_path: Path) -> None:
    spec = items(fmt=", max_fields: 5")
    path = landed(tmp_path, "header.csv", ("id,name,day,ts,a,b\n" + "2,b,2024-01-02,,x,y\n").encode())
    refused(tmp_path, spec, path, errors.InputLimitError, "line 1", "has 6 fields, more than 5")


def test_jsonl_object_with_too_many_keys(tmp_path: Path) -> None:
    spec = parse_contract(
        CONTRACT.format(evolution="add_columns", format="").replace("type: csv", "type: jsonl"), "items.yaml"
    )
    uri = str(tmp_path / "items")
    seed = landed(tmp_path, "seed.jsonl", b'{"id": 1, "name": "a"}\n')
    ingest(seed, spec, uri, tmp_path / "seed-work")
    version = table_version(uri)
    keys = ", ".join(f'"k{i}": {i}' for i in range(20_000))
    path = landed(tmp_path, "wide.jsonl", ('{"id": 2}\n{' + keys + "}\n").encode())
    with pytest.raises(
        errors.InputLimitError, match=r"wide\.jsonl: line 2 has 20000 fields, more than 10000"
    ):
        ingest(path, spec, uri, tmp_path / "work")
    assert table_version(uri) == version


# --- gzip bombs ------------------------------------------------------------------------------------


def gzip_rows(path: Path, total: int, level: int = 1) -> Path:
    """A gzip CSV of `total` decompressed bytes of valid rows, compressed as it is generated."""
    block = ("2,b,2024-01-02,2024-01-02T00:00:00Z\n" * (1 << 15)).encode()
    packer = zlib.compressobj(level, zlib.DEFLATED, 31)
    written = 0
    with path.open("wb") as out:
        out.write(packer.compress(HEADER.encode()))
        while written < total:
            out.write(packer.compress(block))
            written += len(block)
        out.write(packer.flush())
    return path


@pytest.mark.timeout(300)
def test_gzip_bomb_is_stopped_by_the_compression_ratio(tmp_path: Path) -> None:
    """1 GiB of rows in about 6 MB (ratio 170): refused after 64 MiB, not decompressed in full."""
    (tmp_path / "landing").mkdir()
    path = gzip_rows(tmp_path / "landing" / "bomb.csv.gz", 1 << 30)
    assert path.stat().st_size < 16 * 1024 * 1024
    message, elapsed = refused(
        tmp_path, items(), path, errors.InputLimitError, "max_compression_ratio", "over 100 times"
    )
    print(f"1 GiB gzip bomb ({path.stat().st_size} bytes) refused in {elapsed:.2f} s: {message}")


def test_gzip_over_max_decompressed_bytes(tmp_path: Path) -> None:
    spec = items(fmt=", max_decompressed_bytes: 4194304")
    (tmp_path / "landing").mkdir()
    path = gzip_rows(tmp_path / "landing" / "big.csv.gz", 8 << 20, level=6)
    refused(
        tmp_path,
        spec,
        path,
        errors.InputLimitError,
        "more than 4194304 bytes",
        "format.max_decompressed_bytes",
    )


def test_small_gzip_is_not_judged_by_its_ratio(tmp_path: Path) -> None:
    """Highly compressible but small (under 64 MiB decompressed): ingested."""
    spec = items()
    uri, version, _ = seeded(tmp_path, spec)
    path = gzip_rows(tmp_path / "landing" / "small.csv.gz", 8 << 20, level=9)
    result = ingest(path, spec, uri, tmp_path / "work")
    assert result.status == "committed"
    assert result.version_after == version + 1


# --- dates and timestamps outside 0001-01-01..9999-12-31 --------------------------------------------

# DuckDB reads all of these (year 0 and negative years, `infinity`, `epoch`); Python cannot.
OUT_OF_RANGE = ["-0001-01-01", "0000-01-01", "10000-01-01", "infinity", "-infinity", "+10000-01-01", "epoch"]


@pytest.mark.parametrize("fmt", ["", ", date_format: '%Y-%m-%d', timestamp_format: '%Y-%m-%d %H:%M:%S'"])
def test_dates_outside_the_supported_range_are_quarantined(fmt: str, tmp_path: Path) -> None:
    spec = items("strict", fmt)
    uri, version, _ = seeded(tmp_path, spec) if not fmt else (str(tmp_path / "items"), -1, [])
    lines = ["2,edge,0001-01-01,0001-01-01 00:00:00", "3,edge,9999-12-31,9999-12-31 23:59:59"]
    for i, value in enumerate(OUT_OF_RANGE):
        lines.append(f"{10 + i},d,{value},")
        lines.append(f"{20 + i},t,,{value}{' 00:00:00' if value[-1].isdigit() else ''}")
    path = landed(tmp_path, "dates.csv", (HEADER + "\n".join(lines) + "\n").encode())
    result = ingest(path, spec, uri, tmp_path / "work")
    assert result.status == "committed"
    assert result.rows_written == 2
    assert result.rows_rejected == 2 * len(OUT_OF_RANGE)
    assert result.version_after == version + 1
    assert result.rejects_path is not None
    reasons = dict(
        duckdb.sql(f"SELECT source_row, reason FROM read_parquet('{result.rejects_path}')").fetchall()
    )
    assert len(reasons) == 2 * len(OUT_OF_RANGE)
    for reason in reasons.values():
        assert "type:day" in reason or "type:ts" in reason
        assert "is outside the supported" in reason or "is not a valid" in reason
    assert any("is outside the supported date range 0001-01-01..9999-12-31" in r for r in reasons.values())
    # The table stays readable by Python (deltalake -> datetime): the edges are exact.
    rows = {r["id"]: r for r in read_rows(uri)}
    assert rows[2]["day"] == date(1, 1, 1)
    assert rows[3]["day"] == date(9999, 12, 31)
    assert isinstance(rows[3]["ts"], datetime)
    assert rows[3]["ts"].year == 9999


# --- column names that collide with the engine's own ---------------------------------------------


@pytest.mark.parametrize(
    "column", ["_rejected", "_reject_action", "_row", "_ROW", "_Reject_Reason", "_run_id"]
)
def test_reserved_header_name_is_refused(column: str, tmp_path: Path) -> None:
    """Under add_columns, `_rejected` in a header used to switch off the row rules."""
    path = landed(tmp_path, "attack.csv", f"id,name,day,ts,{column}\nx,b,nope,,false\n".encode())
    refused(tmp_path, items(), path, errors.SchemaMismatchError, repr(column), "reserved")


@pytest.mark.parametrize("evolution", ["add_columns", "rescue"])
def test_case_insensitive_duplicates_are_refused(evolution: str, tmp_path: Path) -> None:
    path = landed(tmp_path, "dupes.csv", b"id,name,day,ts,Name\n2,b,2024-01-02,,c\n")
    refused(tmp_path, items(evolution), path, errors.SchemaMismatchError, "more than once", "'Name'")


def test_added_column_may_not_shadow_a_contract_column(tmp_path: Path) -> None:
    spec = parse_contract(
        CONTRACT.format(evolution="add_columns", format="").replace(
            "{name: name, type: string}", "{name: name, source: label, type: string}"
        ),
        "items.yaml",
    )
    uri = str(tmp_path / "items")
    seed = landed(tmp_path, "seed.csv", b"id,label,day,ts\n1,a,2024-01-01,\n")
    ingest(seed, spec, uri, tmp_path / "seed-work")
    path = landed(tmp_path, "shadow.csv", b"id,label,day,ts,NAME\n2,b,2024-01-02,,c\n")
    with pytest.raises(errors.SchemaMismatchError, match="'NAME' \\(contract column 'name'\\)"):
        ingest(path, spec, uri, tmp_path / "work")


@pytest.mark.parametrize("where", ["name: _rejected", "name: n, source: _ROW"])
def test_reserved_contract_column_is_refused(where: str) -> None:
    text = CONTRACT.format(evolution="add_columns", format="").replace("name: name", where)
    with pytest.raises(errors.ContractError, match="reserved"):
        parse_contract(text, "items.yaml")


def test_hostile_header_characters_ingest_under_add_columns(tmp_path: Path) -> None:
    """A `"`, a backtick, a dot, a quote and unicode in header names are just names."""
    spec = items()
    uri, version, _ = seeded(tmp_path, spec)
    names = ['we"ird', "tick`x", "do.t", "it's", "ünï☃", "a-b"]
    header = "id,name,day,ts," + ",".join('"' + n.replace('"', '""') + '"' for n in names)
    path = landed(tmp_path, "odd.csv", f"{header}\n2,b,2024-01-02,,1,2,3,4,5,6\n".encode())
    result = ingest(path, spec, uri, tmp_path / "work")
    assert (result.status, result.version_after) == ("committed", version + 1)
    assert result.added_columns == names
    row = next(r for r in read_rows(uri) if r["id"] == 2)
    assert [row[n] for n in names] == ["1", "2", "3", "4", "5", "6"]


def test_gzip_member_with_limits_is_read_whole(tmp_path: Path) -> None:
    """The preflight reads multi-member gzip like DuckDB does (no false truncation)."""
    spec = items()
    uri, _, _ = seeded(tmp_path, spec)
    data = gzip.compress(HEADER.encode()) + gzip.compress(b"2,b,2024-01-02,\n")
    path = landed(tmp_path, "members.csv.gz", data)
    result = ingest(path, spec, uri, tmp_path / "work")
    assert (result.status, result.rows_written) == ("committed", 1)


@pytest.mark.parametrize("column", ["sp ace", "a=b", "x;y", "(p)"])
def test_header_name_delta_cannot_store_is_refused_under_add_columns(column: str, tmp_path: Path) -> None:
    """Spark's Delta writer refuses such names; both engines refuse the file up front, naming the column."""
    path = landed(tmp_path, "spaces.csv", f'id,name,day,ts,"{column}"\n2,b,2024-01-02,,x\n'.encode())
    refused(tmp_path, items(), path, errors.SchemaMismatchError, repr(column), "cannot become Delta columns")


@pytest.mark.parametrize(
    ("data", "says"),
    [
        # Found by the fuzz tests: Python's csv module raised csv.Error on the header line.
        (b"\r0", "header"),
        # Found by the fuzz tests: DuckDB's CSV reader failed on its first chunk, outside any handler.
        (
            b"id,name,day,ts,x\n0\r,,2024-01-02,2024-01-02T03:04:05Z,\n\n0,,2024-01-02,2024-01-02T03:04:05Z,\n",
            "cannot be read",
        ),
    ],
    ids=["lone_carriage_return", "csv_state_machine_error"],
)
def test_parser_failures_are_input_errors(data: bytes, says: str, tmp_path: Path) -> None:
    path = landed(tmp_path, "odd.csv", data)
    refused(tmp_path, items(), path, errors.InvalidInputError, says)


def test_raised_line_limit_lets_a_large_json_object_through(tmp_path: Path) -> None:
    """max_line_bytes is also DuckDB's JSON object limit (its own default is 16 MiB)."""
    spec = parse_contract(
        CONTRACT.format(evolution="add_columns", format=", max_line_bytes: 33554432").replace(
            "type: csv", "type: jsonl"
        ),
        "items.yaml",
    )
    path = landed(tmp_path, "big.jsonl", ('{"id": 1, "name": "' + "x" * (17 << 20) + '"}\n').encode())
    result = ingest(path, spec, str(tmp_path / "items"), tmp_path / "work")
    assert (result.status, result.rows_written) == ("committed", 1)
    assert len(read_rows(str(tmp_path / "items"))[0]["name"]) == 17 << 20
