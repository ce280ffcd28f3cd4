"""Format detection from bytes (never from names) and UTF-8 validation."""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.contracts.model import FormatSpec
from lakehouse.errors import InputLimitError, InvalidInputError, UnsupportedFormatError
from lakehouse.formats import Detected, check_utf8, detect, detect_file, preflight


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "data", "kind", "compression"),
    [
        ("a.csv", b"id,name\n1,a\n", "csv", "none"),
        ("a.json", b"id,name\n1,a\n", "csv", "none"),  # the name lies; the bytes decide
        ("a.csv", b'{"id": 1}\n', "jsonl", "none"),
        ("a.txt", b'\xef\xbb\xbf \n\t{"id": 1}\n', "jsonl", "none"),  # BOM and blank space before the object
        ("a.csv", gzip.compress(b"id\n1\n", mtime=0), "csv", "gzip"),  # gzip without a .gz name
        ("a.gz", gzip.compress(b'{"id": 1}\n', mtime=0), "jsonl", "gzip"),
        ("a.csv.gz", b"id\n1\n", "csv", "none"),  # a .gz name over plain text
    ],
    ids=[
        "csv",
        "csv-named-json",
        "jsonl",
        "jsonl-after-bom",
        "gzip-csv-named-csv",
        "gzip-jsonl",
        "plain-named-gz",
    ],
)
def test_detect_by_bytes(tmp_path: Path, name: str, data: bytes, kind: str, compression: str) -> None:
    detected = detect_file(_write(tmp_path, name, data))
    assert (detected.kind, detected.compression, detected.size_bytes) == (kind, compression, len(data))
    assert detected.as_dict() == {"format": kind, "compression": compression, "size_bytes": len(data)}


def test_parquet_needs_its_footer(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"  # misleading name on purpose
    duckdb.sql(f"COPY (SELECT 1 AS id) TO '{path}' (FORMAT parquet)")
    assert detect_file(path).kind == "parquet"
    data = path.read_bytes()
    truncated = _write(tmp_path, "cut.parquet", data[:-10])
    with pytest.raises(
        UnsupportedFormatError, match=r"cut\.parquet: starts like Parquet but has no Parquet footer"
    ):
        detect_file(truncated)


def test_detect_uses_head_and_tail() -> None:
    assert detect(b"PAR1....", b"PAR1", 100, "x").kind == "parquet"
    with pytest.raises(UnsupportedFormatError):
        detect(b"PAR1....", b"\x00\x00\x00\x00", 100, "x")


def test_nul_bytes_are_binary(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError, match=r"blob\.csv: binary content \(NUL bytes"):
        detect_file(_write(tmp_path, "blob.csv", b"id,name\n1,\x00a\n"))


def test_nul_bytes_inside_gzip_are_binary(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError, match="binary content"):
        detect_file(_write(tmp_path, "blob.gz", gzip.compress(b"\x00\x01\x02")))


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"empty\.csv: the file is empty \(0 bytes\)") as info:
        detect_file(_write(tmp_path, "empty.csv", b""))
    assert type(info.value) is InvalidInputError


def test_corrupt_gzip_header(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"bad\.gz: gzip data is corrupt"):
        detect_file(_write(tmp_path, "bad.gz", b"\x1f\x8b\x08\x00" + b"\xff" * 40))


def test_zstd_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError, match="zstd"):
        detect_file(_write(tmp_path, "a.zst", b"\x28\xb5\x2f\xfd" + b"rest"))


# --- UTF-8 ---------------------------------------------------------------------------------------


def test_valid_utf8_passes(tmp_path: Path) -> None:
    path = _write(tmp_path, "ok.csv", "id,name\n1,Zoë\n2,日本\n".encode())
    check_utf8(path, "none", "ok.csv")


def test_invalid_utf8_names_line_and_byte(tmp_path: Path) -> None:
    data = b"id,name\n1,ok\n2,caf\xe9\n"
    path = _write(tmp_path, "latin1.csv", data)
    with pytest.raises(InvalidInputError) as info:
        check_utf8(path, "none", "landing/latin1.csv")
    message = str(info.value)
    assert message.startswith("landing/latin1.csv: line 3: byte 0xe9 at offset ")
    assert "offset 18 " in message  # len(b"id,name\n1,ok\n2,caf") == 18
    assert data[18] == 0xE9


def test_invalid_utf8_across_chunks(tmp_path: Path) -> None:
    # Small chunks: the line count and the offset must carry over from chunk to chunk.
    data = b"a\n" * 10 + b"bad \xff here\n"
    path = _write(tmp_path, "chunks.csv", data)
    with pytest.raises(InvalidInputError, match=r"line 11: byte 0xff at offset 24 "):
        check_utf8(path, "none", "chunks.csv", chunk_size=3)


def test_multibyte_character_split_across_chunks_is_fine(tmp_path: Path) -> None:
    path = _write(tmp_path, "split.csv", "é€😀\n".encode() * 5)
    check_utf8(path, "none", "split.csv", chunk_size=1)


def test_ends_inside_a_sequence(tmp_path: Path) -> None:
    path = _write(tmp_path, "cut.csv", "abc€".encode()[:-1])
    with pytest.raises(InvalidInputError, match=r"cut\.csv: ends inside a UTF-8 sequence"):
        check_utf8(path, "none", "cut.csv")


def test_invalid_utf8_inside_gzip(tmp_path: Path) -> None:
    path = _write(tmp_path, "z.csv", gzip.compress(b"id\n1\n\xc3\x28\n"))
    with pytest.raises(InvalidInputError, match=r"z\.csv: line 3: byte 0xc3"):
        check_utf8(path, "gzip", "z.csv")


def test_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(
        bytes(range(256)) * 0 + "".join(f"{i},{i * 7919 % 1000}\n" for i in range(5000)).encode()
    )
    path = _write(tmp_path, "t.csv.gz", data[: len(data) // 2])
    with pytest.raises(InvalidInputError, match=r"t\.csv\.gz: compressed data is corrupt or truncated"):
        check_utf8(path, "gzip", "t.csv.gz")


# --- preflight limits: the streaming scan agrees with a line-by-line reading, whatever the chunking ---


def _naive(lines: list[str], max_line: int, max_fields: int) -> int | None:
    """The 1-based line that breaks a limit first, or None."""
    for number, line in enumerate(lines, start=1):
        if len(line.encode()) > max_line:
            return number
        if len(line.split(",")) > max_fields:
            return number
    return None


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(
    lines=st.lists(st.text(alphabet="ab,", max_size=40), min_size=1, max_size=12),
    chunk=st.integers(1, 64),
    max_fields=st.integers(1, 12),
)
def test_preflight_limits_match_a_line_by_line_reading(
    lines: list[str], chunk: int, max_fields: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("pre") / "f.csv"
    path.write_text("\n".join(lines) + "\n")
    spec = FormatSpec(type="csv", max_line_bytes=1024, max_fields=max_fields)
    expected = _naive(lines, 1024, max_fields)
    detected = Detected("csv", "none", path.stat().st_size)
    if expected is None:
        preflight(path, detected, spec, "f.csv", chunk_size=chunk)
    else:
        with pytest.raises(InputLimitError, match=rf"f\.csv: line {expected} has \d+ fields"):
            preflight(path, detected, spec, "f.csv", chunk_size=chunk)


def test_preflight_line_length_across_chunks(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("a,b\n" + "x" * 1500 + "\n" + "y" * 1025 + "\n")
    spec = FormatSpec(type="csv", max_line_bytes=1500)
    detected = Detected("csv", "none", path.stat().st_size)
    with pytest.raises(InputLimitError, match=r"f\.csv: line 2 is longer than 1499 bytes"):
        preflight(path, detected, FormatSpec(type="csv", max_line_bytes=1499), "f.csv", chunk_size=7)
    preflight(path, detected, spec, "f.csv", chunk_size=7)


def test_preflight_deeply_nested_json_is_a_limit_error(tmp_path: Path) -> None:
    """json.loads raises RecursionError on deep nesting; the scan falls back to counting separators."""
    path = tmp_path / "deep.jsonl"
    path.write_text('{"a":' * 30_000 + "\n")
    detected = Detected("jsonl", "none", path.stat().st_size)
    with pytest.raises(InputLimitError, match=r"deep\.jsonl: line 1 has 30001 fields"):
        preflight(path, detected, FormatSpec(type="jsonl"), "deep.jsonl")
