"""Hypothesis strategies for malformed landed files (CSV, JSON Lines, gzip), for both engines.

The files start from the shape of a real file (a header, rows, JSON objects) and are then damaged:
hostile header names (quotes, backticks, reserved names, case-insensitive duplicates), ragged rows,
stray quotes and line breaks, out-of-range dates, random bytes spliced in, gzip wrapping (whole,
truncated or corrupted).
"""

from __future__ import annotations

import gzip
import json
from typing import Any

from hypothesis import strategies as st

from lakehouse.contracts import Contract, parse_contract

CONTRACT = """
name: items
landing_prefix: items/
format: {{type: {kind}, max_fields: 50, max_line_bytes: 4096}}
columns:
  - {{name: id, type: int, nullable: false}}
  - {{name: name, type: string}}
  - {{name: day, type: date}}
  - {{name: ts, type: timestamp}}
schema_evolution: add_columns
"""
SEED = {"csv": b"id,name,day,ts\n1,a,2024-01-01,2024-01-01T00:00:00Z\n", "jsonl": b'{"id": 1, "name": "a"}\n'}


def contract(kind: str) -> Contract:
    return parse_contract(CONTRACT.format(kind=kind), "items.yaml")


_CHARS = st.sampled_from([*list("ab,;\"'`\\ \t\r\n0123456789-+:.TZéü☃{}[]"), "\ufeff"])
_SPLICES = st.one_of(
    st.sampled_from(
        [b'"', b"\r", b"\n", b",", b";", b"\\", b"{", b"}", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\x00"]
    ),
    st.binary(min_size=1, max_size=4),
)
_TEXT = st.text(alphabet=_CHARS, max_size=12)
_VALUES = st.one_of(
    _TEXT,
    st.sampled_from(
        ["1", "-0001-01-01", "0000-01-01", "infinity", "epoch", "9999-12-31", "2024-02-30", "1e3", "NaN", ""]
    ),
    st.integers(-(2**40), 2**40).map(str),
)
_NAMES = st.one_of(
    st.sampled_from(
        ["id", "name", "day", "ts", "ID", "Name", "_rejected", "_row", "_run_id", 'we"ird', "a`b"]
    ),
    _TEXT,
)


_GOOD = {
    "id": st.integers(-5, 10**6).map(str),
    "day": st.just("2024-01-02"),
    "ts": st.just("2024-01-02T03:04:05Z"),
}


@st.composite
def _csv(draw: st.DrawFn) -> bytes:
    header = ["id", "name", "day", "ts"]
    if draw(st.integers(0, 2)) == 0:
        header += draw(st.lists(_NAMES, max_size=2))  # extra (hostile) columns
    if draw(st.integers(0, 4)) == 0:
        header = draw(st.lists(_NAMES, min_size=1, max_size=6))
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        row = [draw(_VALUES if draw(st.integers(0, 4)) == 0 else _GOOD.get(n, _VALUES)) for n in header]
        if draw(st.integers(0, 5)) == 0:  # ragged
            row = row[: draw(st.integers(0, len(row)))] + draw(st.lists(_VALUES, max_size=2))
        rows.append(row)
    sep = draw(st.sampled_from([",", ",", ",", ",", ";"]))
    quote = draw(st.booleans())

    def field(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if quote else value

    lines = [sep.join(field(n) for n in header), *(sep.join(field(v) for v in row) for row in rows)]
    return ("\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))).encode("utf-8")


@st.composite
def _jsonl(draw: st.DrawFn) -> bytes:
    scalar = st.one_of(_VALUES, st.integers(), st.floats(allow_nan=False), st.booleans(), st.none())
    value: Any = st.one_of(scalar, st.lists(scalar, max_size=3), st.dictionaries(_TEXT, scalar, max_size=3))
    objects = draw(st.lists(st.dictionaries(_NAMES, value, max_size=6), min_size=1, max_size=6))
    for obj in objects:
        if draw(st.integers(0, 3)):
            obj["id"] = draw(st.one_of(st.integers(-5, 10**6), _VALUES))
    lines = [json.dumps(o, ensure_ascii=draw(st.booleans())) for o in objects]
    lines += draw(st.lists(_TEXT, max_size=2))  # garbage lines
    return ("\n".join(lines) + "\n").encode("utf-8")


@st.composite
def _damaged(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    data = draw(base)
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, 3]))):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(_SPLICES) + data[at:]
    if draw(st.integers(0, 5)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    wrap = draw(st.sampled_from(["none"] * 6 + ["gzip", "gzip", "gzip-truncated", "gzip-corrupt"]))
    if wrap != "none":
        packed = gzip.compress(data, mtime=0)
        if wrap == "gzip-truncated":
            packed = packed[: draw(st.integers(2, max(2, len(packed) - 1)))]
        elif wrap == "gzip-corrupt" and len(packed) > 12:
            at = draw(st.integers(10, len(packed) - 1))
            packed = packed[:at] + bytes([packed[at] ^ 0xFF]) + packed[at + 1 :]
        data = packed
    return data


def hostile_files(kind: str) -> st.SearchStrategy[bytes]:
    """Malformed files meant for a `kind` (csv | jsonl) contract."""
    return _damaged(_csv() if kind == "csv" else _jsonl())
