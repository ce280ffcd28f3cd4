"""The bad-input corpus: every file ends in a specific error or a quarantine, never in silent loss.

Each case states its expected outcome in the parametrization. For every case the raw file is byte-for-
byte intact afterwards; for errors the table (which already holds one good commit) is unchanged, in
version and content; for quarantines only the good rows are added and each bad row has its reason.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
from engine_helpers import ingest, read_rows, sha256, table_version

from lakehouse import errors
from lakehouse.contracts import Contract, parse_contract

CONTRACT = """
name: items
landing_prefix: items/
format: {{type: {kind}}}
columns:
  - {{name: id, type: int, nullable: false}}
  - {{name: name, type: string}}
  - {{name: amount, type: "decimal(10,2)"}}
  - {{name: day, type: date}}
primary_key: [id]
schema_evolution: {evolution}
"""
HEADER = "id,name,amount,day\n"
GOOD = "1,a,1.00,2024-01-01\n"
MAX_LINE = 8 * 1024 * 1024  # format.max_line_bytes by default


def contract(kind: str = "csv", evolution: str = "strict") -> Contract:
    return parse_contract(CONTRACT.format(kind=kind, evolution=evolution), "items.yaml")


def _parquet(tmp: Path, select: str) -> bytes:
    out = tmp / "made.parquet"
    duckdb.sql(f"COPY ({select}) TO '{out}' (FORMAT parquet)")
    return out.read_bytes()


def _noisy_gzip_truncated(_: Path) -> bytes:
    rng = random.Random(7)
    lines = [f"{i},{rng.getrandbits(64):x},{i}.25,2024-01-01\n" for i in range(2, 3000)]
    data = gzip.compress((HEADER + "".join(lines)).encode(), mtime=0)
    return data[: len(data) // 2]


def _garbage(_: Path) -> bytes:
    rng = random.Random(11)
    return b"\x00\x01" + bytes(rng.getrandbits(8) for _ in range(4096))


@dataclass(frozen=True)
class Case:
    id: str
    content: Callable[[Path], bytes]
    outcome: str  # "error" | "quarantine" | "committed"
    error: type[Exception] | None = None
    says: tuple[str, ...] = ()  # the error message, or each reject reason (in file order), contains these
    written: int = 0
    rejected: int = 0
    kind: str = "csv"
    evolution: str = "strict"
    extra: dict[str, object] = field(default_factory=dict)


def text(value: str) -> Callable[[Path], bytes]:
    return lambda _: value.encode("utf-8")


CASES = [
    Case("empty_file", text(""), "error", errors.InvalidInputError, ("empty", "0 bytes")),
    Case("header_only", text(HEADER), "error", errors.InvalidInputError, ("no data rows",)),
    Case(
        "truncated_gzip", _noisy_gzip_truncated, "error", errors.InvalidInputError, ("corrupt or truncated",)
    ),
    Case(
        "wrong_delimiter",
        text("id;name;amount;day\n2;b;2.00;2024-01-02\n"),
        "error",
        errors.SchemaMismatchError,
        ("missing columns", "'id;name;amount;day'", "delimiter ','"),
    ),
    Case(
        "non_utf8_bytes",
        lambda _: (HEADER + "2,ok,2.00,2024-01-02\n").encode() + b"3,caf\xe9,3.00,2024-01-03\n",
        "error",
        errors.InvalidInputError,
        ("line 3", "0xe9", "not valid UTF-8"),
    ),
    Case("binary_garbage", _garbage, "error", errors.UnsupportedFormatError, ("binary content", "NUL")),
    Case(
        "zstd_compressed",
        lambda _: b"\x28\xb5\x2f\xfd" + b"\x00" * 64,
        "error",
        errors.UnsupportedFormatError,
        ("zstd",),
    ),
    Case(
        "jsonl_for_csv_contract",
        text('{"id": 2, "name": "b"}\n'),
        "error",
        errors.InvalidInputError,
        ("expects csv but the file is jsonl",),
    ),
    Case(
        "unparseable_numbers_and_dates",
        text(HEADER + "2,b,two,2024-01-02\n3,c,3.00,2024-13-01\n4,d,4.00,2024-01-04\nx5,e,5,2024-01-05\n"),
        "quarantine",
        says=(
            "type:amount: 'two' is not a valid decimal(10,2)",
            "type:day: '2024-13-01' is not a valid date",
            "type:id: 'x5' is not a valid int",
        ),
        written=1,
        rejected=3,
    ),
    Case(
        "every_row_bad",
        text(HEADER + "2,b,two,2024-01-02\n3,c,3.00,nope\n"),
        "error",
        errors.InvalidInputError,
        ("every row was rejected", "2 quarantined"),
    ),
    Case(
        "extra_column_strict",
        text("id,name,amount,day,coupon\n2,b,2.00,2024-01-02,X\n"),
        "error",
        errors.SchemaMismatchError,
        ("unexpected columns ['coupon']", "strict"),
    ),
    Case(
        "extra_column_add_columns",
        text("id,name,amount,day,coupon\n2,b,2.00,2024-01-02,X\n"),
        "committed",
        written=1,
        evolution="add_columns",
        extra={"coupon": "X"},
    ),
    Case(
        "missing_column_strict",
        text("id,name,day\n2,b,2024-01-02\n"),
        "error",
        errors.SchemaMismatchError,
        ("missing columns ['amount']", "strict"),
    ),
    Case(
        "missing_column_add_columns",
        text("id,name,day\n2,b,2024-01-02\n"),
        "committed",
        written=1,
        evolution="add_columns",
        extra={"amount": None},
    ),
    Case(
        "missing_required_column_rescue",
        text("name,amount,day\nb,2.00,2024-01-02\n"),
        "error",
        errors.SchemaMismatchError,
        ("required", "['id']"),
        evolution="rescue",
    ),
    Case(
        "duplicated_header_line",
        text(HEADER + "2,b,2.00,2024-01-02\n" + HEADER + "3,c,3.00,2024-01-03\n"),
        "quarantine",
        says=("type:id: 'id' is not a valid int",),
        written=2,
        rejected=1,
    ),
    Case(
        "duplicated_column_names",
        text("id,name,amount,name,day\n2,b,2.00,c,2024-01-02\n"),
        "error",
        errors.SchemaMismatchError,
        ("more than once", "'name'"),
    ),
    Case(
        "ragged_row",
        text(HEADER + "2,b,2.00,2024-01-02,surplus\n3,c,3.00,2024-01-03\n4,d\n"),
        "quarantine",
        says=("line 2", "Expected Number of Columns: 4 Found: 5", "line 4", "Found: 2"),
        written=1,
        rejected=2,
    ),
    Case(
        "unterminated_quote",
        text(HEADER + '2,b,2.00,2024-01-02\n3,"c,3.00,2024-01-03\n4,d,4.00,2024-01-04\n'),
        "quarantine",
        says=("line 3", "unterminated quote"),
        written=1,
        rejected=1,
    ),
    Case(
        "line_over_8_mib",
        text(HEADER + "2,b,2.00,2024-01-02\n3," + "x" * (MAX_LINE + 16) + ",3.00,2024-01-03\n"),
        "error",
        errors.InputLimitError,
        ("line 3", f"longer than {MAX_LINE} bytes", "format.max_line_bytes"),
    ),
    Case(
        "line_just_under_8_mib",
        text(HEADER + "2," + "y" * (MAX_LINE - 64) + ",2.00,2024-01-02\n"),
        "committed",
        written=1,
        extra={"name_length": MAX_LINE - 64},
    ),
    Case(
        "jsonl_broken_line",
        text('{"id": 2, "name": "b"}\n{"id": 3, "name": \n{"id": 4, "name": "d"}\n'),
        "error",
        errors.InvalidInputError,
        ("cannot be read as jsonl", "Malformed JSON", "line"),
        kind="jsonl",
    ),
    Case(
        "parquet_wrong_types",
        lambda tmp: _parquet(
            tmp,
            "SELECT * FROM (VALUES (2, 'b', '2.00', '2024-01-02'), (3, 'c', 'abc', '2024-01-03'), "
            "(4, 'd', '4', '5')) t(id, name, amount, day)",
        ),
        "quarantine",
        says=("'abc' is not a valid decimal(10,2)", "'5' is not a valid date"),
        written=1,
        rejected=2,
        kind="parquet",
    ),
    Case(
        "parquet_without_footer",
        lambda tmp: _parquet(tmp, "SELECT 2 AS id, 'b' AS name")[:-8],
        "error",
        errors.UnsupportedFormatError,
        ("no Parquet footer",),
        kind="parquet",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    spec = contract(case.kind, case.evolution)
    uri = str(tmp_path / "items")
    seed = tmp_path / "landing" / ("seed.csv" if case.kind == "csv" else f"seed.{case.kind}")
    seed.parent.mkdir()
    if case.kind == "csv":
        seed.write_text(HEADER + GOOD)
    elif case.kind == "jsonl":
        seed.write_text('{"id": 1, "name": "a", "amount": "1.00", "day": "2024-01-01"}\n')
    else:
        seed.write_bytes(
            _parquet(tmp_path, "SELECT 1 AS id, 'a' AS name, 1.00 AS amount, DATE '2024-01-01' AS day")
        )
    ingest(seed, spec, uri, tmp_path / "seed-work")
    version = table_version(uri)
    rows_before = read_rows(uri, with_metadata=True)

    path = tmp_path / "landing" / f"bad-{case.id}.dat"
    path.write_bytes(case.content(tmp_path))
    digest = sha256(path)

    if case.outcome == "error":
        assert case.error is not None
        with pytest.raises(errors.LakehouseError) as info:
            ingest(path, spec, uri, tmp_path / "work")
        assert type(info.value) is case.error, f"{type(info.value).__name__}: {info.value}"
        message = str(info.value)
        assert path.name in message
        for fragment in case.says:
            assert fragment in message, f"{fragment!r} not in {message!r}"
        assert table_version(uri) == version
        assert read_rows(uri, with_metadata=True) == rows_before
    else:
        result = ingest(path, spec, uri, tmp_path / "work")
        assert result.status == "committed"
        assert result.rows_written == case.written
        assert result.version_after == version + 1
        rows = read_rows(uri)
        assert len(rows) == 1 + case.written
        if case.outcome == "quarantine":
            assert result.rows_rejected == case.rejected
            assert result.rejects_path is not None
            rejects = duckdb.sql(
                f"SELECT coalesce(source_row::VARCHAR, 'line ' || source_line), reason, raw_line "
                f"FROM read_parquet('{result.rejects_path}')"
            ).fetchall()
            described = " | ".join(f"{where}: {reason}" for where, reason, _ in rejects)
            for fragment in case.says:
                assert fragment in described, f"{fragment!r} not in {described!r}"
            # Malformed lines keep their raw text, so nothing of the file is lost.
            for _, reason, raw in rejects:
                if reason.startswith("malformed line"):
                    assert raw
                    assert raw.split(",")[0].isdigit()
        else:
            assert result.rows_rejected == 0
            added = next(r for r in rows if r["id"] == 2)
            for column, value in case.extra.items():
                if column == "name_length":
                    assert len(added["name"]) == value
                else:
                    assert added[column] == value
    assert sha256(path) == digest, "the raw file must be left exactly as it was"
