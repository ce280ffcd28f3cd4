"""What a landed file is, from its bytes (never from its name)."""

from __future__ import annotations

import codecs
import csv
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from lakehouse.contracts.model import FormatSpec
from lakehouse.errors import (
    InputLimitError,
    InvalidInputError,
    SchemaMismatchError,
    UnsupportedFormatError,
)

Kind = Literal["csv", "jsonl", "parquet"]
Compression = Literal["none", "gzip", "zstd"]

_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_PARQUET = b"PAR1"
SAMPLE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Detected:
    kind: Kind
    compression: Compression
    size_bytes: int

    def as_dict(self) -> dict[str, object]:
        return {"format": self.kind, "compression": self.compression, "size_bytes": self.size_bytes}


def _text_kind(sample: bytes, name: str) -> Kind:
    if b"\x00" in sample:
        raise UnsupportedFormatError(f"{name}: binary content (NUL bytes in the first {len(sample)} bytes)")
    stripped = sample.lstrip(b"\xef\xbb\xbf \t\r\n")
    return "jsonl" if stripped.startswith(b"{") else "csv"


def detect(head: bytes, tail: bytes | None, size: int, name: str) -> Detected:
    """Classify a file from its first bytes (up to 64 KiB) and last 4 bytes (None: not read)."""
    if size == 0:
        raise InvalidInputError(f"{name}: the file is empty (0 bytes)")
    if head.startswith(_PARQUET) and (tail is None or tail.endswith(_PARQUET)):
        return Detected("parquet", "none", size)
    if head.startswith(_PARQUET):
        raise UnsupportedFormatError(f"{name}: starts like Parquet but has no Parquet footer (truncated?)")
    if head.startswith(_GZIP):
        # Decompress the first chunk only: enough to classify, cheap for any size.
        try:
            sample = zlib.decompressobj(wbits=31).decompress(head, SAMPLE_BYTES)
        except zlib.error as exc:
            raise InvalidInputError(f"{name}: gzip data is corrupt: {exc}") from exc
        if not sample:
            raise InvalidInputError(f"{name}: gzip stream holds no data (truncated?)")
        return Detected(_text_kind(sample, name), "gzip", size)
    if head.startswith(_ZSTD):
        raise UnsupportedFormatError(f"{name}: zstd-compressed files are not supported; use gzip")
    return Detected(_text_kind(head, name), "none", size)


def check_utf8(path: Path, compression: Compression, name: str, chunk_size: int = 4 << 20) -> None:
    """Fail with the line and byte of the first invalid UTF-8 sequence (no other limit)."""
    _scan(path, compression, name, None, chunk_size)


def preflight(path: Path, detected: Detected, spec: FormatSpec, name: str, chunk_size: int = 4 << 20) -> None:
    """One streaming pass over a text file (CSV, JSON Lines) before DuckDB or Spark parse it.

    Fails with InvalidInputError at the first invalid UTF-8 byte (DuckDB's CSV reader silently skips
    such lines when it tolerates errors, which would lose data), and with InputLimitError when a
    line is longer than `max_line_bytes`, a line has more than `max_fields` fields, or gzip data
    decompresses to more than `max_decompressed_bytes` or `max_compression_ratio` times its size
    (a parser fed a 5,000,000-field line or a gzip bomb runs for hours). Memory stays flat.
    """
    if detected.kind not in ("csv", "jsonl"):
        return
    _scan(path, detected.compression, name, _Limits(spec, detected, name, path), chunk_size)


RATIO_FLOOR = 64 * 1024 * 1024  # decompressed bytes below which the compression ratio is not checked


class _Limits:
    """Line, field and size limits, fed chunk by chunk (the bytes of the decompressed stream)."""

    def __init__(self, spec: FormatSpec, detected: Detected, name: str, path: Path) -> None:
        self.spec, self.detected, self.name, self.path = spec, detected, name, path
        self.max_line = spec.max_line_bytes
        # A field needs a separator before it, so a line of fewer than max_fields bytes is within
        # both limits; only longer lines are looked at closely. (JSON: every key needs a colon.)
        self.threshold = max(0, min(self.max_line, spec.max_fields - 1))
        self.sep = spec.delimiter.encode() if detected.kind == "csv" else b":"
        self.line_start = 0  # offset of the first byte of the long line being followed
        self.tail = b""  # the current line's bytes from earlier chunks (short lines only)
        self.long: bytearray | None = None  # the current line, once it is longer than threshold
        self.long_len = 0

    def size(self, total: int) -> None:
        if self.detected.compression == "none":
            return
        spec, compressed = self.spec, self.detected.size_bytes
        if total > spec.max_decompressed_bytes:
            raise InputLimitError(
                f"{self.name}: decompresses to more than {spec.max_decompressed_bytes} bytes "
                f"(format.max_decompressed_bytes); stopped reading at {total} bytes"
            )
        if total > RATIO_FLOOR and total > spec.max_compression_ratio * compressed:
            raise InputLimitError(
                f"{self.name}: {compressed} compressed bytes decompress to more than {total} bytes, "
                f"over {spec.max_compression_ratio:g} times the compressed size "
                "(format.max_compression_ratio; a gzip bomb?)"
            )

    def feed(self, chunk: bytes, base: int) -> None:
        """Check the lines in `chunk`, whose first byte is at offset `base` of the stream."""
        start, n = 0, len(chunk)
        rfind, threshold = chunk.rfind, self.threshold
        while start < n:
            if self.long is not None:
                start = self._long_line(chunk, start)
                continue
            window_end = start + threshold - len(self.tail) + 1
            newline = rfind(b"\n", start, window_end if window_end < n else n)
            if newline != -1:  # every line up to it is at most `threshold` bytes long
                start = newline + 1
                self.tail = b""
            elif window_end <= n:  # no newline within `threshold` bytes: look at this line closely
                self.line_start = base + start - len(self.tail)
                self.long = bytearray(self.tail)
                self.long_len = len(self.tail)
                self.tail = b""
            else:
                self.tail += chunk[start:]
                return

    def _long_line(self, chunk: bytes, start: int) -> int:
        """Follow a long line through `chunk`; where the next line starts (len(chunk): not yet)."""
        assert self.long is not None
        end = chunk.find(b"\n", start)
        stop = len(chunk) if end == -1 else end
        if len(self.long) <= self.max_line:
            self.long += chunk[start : min(stop, start + self.max_line + 1)]
        self.long_len += stop - start
        if self.long_len > self.max_line:
            raise self._error(f"is longer than {self.max_line} bytes (format.max_line_bytes)")
        if end == -1:
            return len(chunk)
        self._fields(bytes(self.long))
        self.long = None
        return end + 1

    def finish(self) -> None:
        if self.long is not None:
            self._fields(bytes(self.long))

    def _fields(self, line: bytes) -> None:
        if line.count(self.sep) + 1 <= self.spec.max_fields:
            return
        found = self._exact_fields(line)
        if found > self.spec.max_fields:
            raise self._error(f"has {found} fields, more than {self.spec.max_fields} (format.max_fields)")

    def _exact_fields(self, line: bytes) -> int:
        """Fields as the CSV reader counts them (quotes respected) / keys of a JSON object."""
        text = line.decode("utf-8", errors="replace").rstrip("\r")
        try:
            if self.detected.kind == "jsonl":
                value = json.loads(text)
                return len(value) if isinstance(value, dict) else 1
            spec = self.spec
            escape = spec.escape if spec.escape not in (None, spec.quote) else None
            reader = csv.reader([text], delimiter=spec.delimiter, quotechar=spec.quote, escapechar=escape)
            return len(next(reader, []))
        except (ValueError, RecursionError, csv.Error):  # unparseable alone: count separators
            return line.count(self.sep) + 1

    def _error(self, what: str) -> InputLimitError:
        line = _line_at(self.path, self.detected.compression, self.line_start)
        return InputLimitError(f"{self.name}: line {line} {what}; nothing was read into the table")


def _scan(path: Path, compression: Compression, name: str, limits: _Limits | None, chunk_size: int) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    try:
        with _open(path, compression) as handle:
            while chunk := handle.read(chunk_size):
                pending = len(decoder.getstate()[0])
                if pending or not chunk.isascii():
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError as exc:
                        bad = offset - pending + exc.start
                        line = _line_at(path, compression, bad)
                        raise InvalidInputError(
                            f"{name}: line {line}: byte 0x{exc.object[exc.start]:02x} at offset {bad} "
                            "is not valid UTF-8 (the contract's encoding is utf-8)"
                        ) from None
                if limits is not None:
                    limits.size(offset + len(chunk))
                    limits.feed(chunk, offset)
                offset += len(chunk)
            decoder.decode(b"", final=True)
            if limits is not None:
                limits.finish()
    except (EOFError, OSError, zlib.error) as exc:
        raise InvalidInputError(f"{name}: compressed data is corrupt or truncated: {exc}") from exc
    except UnicodeDecodeError:
        raise InvalidInputError(f"{name}: ends inside a UTF-8 sequence (truncated?)") from None


def _open(path: Path, compression: Compression) -> BinaryIO:
    import gzip

    return gzip.open(path, "rb") if compression == "gzip" else path.open("rb")  # type: ignore[return-value]


def _line_at(path: Path, compression: Compression, offset: int) -> int:
    """1-based line number of the (decompressed) byte at `offset`; read again only on error."""
    lines, seen = 1, 0
    with _open(path, compression) as handle:
        while seen < offset and (chunk := handle.read(min(4 << 20, offset - seen))):
            lines += chunk.count(b"\n")
            seen += len(chunk)
    return lines


def detect_file(path: Path, name: str | None = None) -> Detected:
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(SAMPLE_BYTES)
        tail = b""
        if size >= len(_PARQUET):
            handle.seek(size - len(_PARQUET))
            tail = handle.read(len(_PARQUET))
    return detect(head, tail, size, name or path.name)


def read_local_head(path: Path, gzip: bool) -> str:
    """The text of a local file's first bytes (decompressed), for reading its header line."""
    with path.open("rb") as handle:
        head = handle.read(SAMPLE_BYTES)
    if gzip:
        head = zlib.decompressobj(wbits=31).decompress(head, SAMPLE_BYTES)
    return head.decode("utf-8", errors="replace").lstrip("\ufeff")


def parse_header(text: str, spec: FormatSpec, name: str) -> list[str]:
    """A CSV header line's field names, read by us rather than sniffed: stripped, blanks named `columnN`."""
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=spec.delimiter, quotechar=spec.quote)
        first = next(reader, [])
    except csv.Error as exc:
        raise InvalidInputError(f"{name}: the header line cannot be read as CSV: {exc}") from None
    names = [n.strip() for n in first]
    if not names or all(not n for n in names):
        raise InvalidInputError(f"{name}: the first line should be a header but is empty")
    return [n or f"column{i}" for i, n in enumerate(names)]


def check_unique_columns(columns: list[str], name: str) -> None:
    """Column names must be unique (DuckDB would fail on them with an unrelated binder error)."""
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise SchemaMismatchError(f"{name}: the header names these columns more than once: {duplicates}")
