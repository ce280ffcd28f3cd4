"""What a landed file is, from its bytes (never from its name)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from lakehouse.errors import InvalidInputError, UnsupportedFormatError

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
    """Fail with the line and byte of the first invalid UTF-8 sequence.

    DuckDB's CSV reader silently skips such lines when errors are ignored, which would lose data,
    so text files are validated up front. ASCII chunks (most data) are checked with isascii(), which
    scans without decoding; gzip is decompressed as it goes.
    """
    import codecs

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
                offset += len(chunk)
            decoder.decode(b"", final=True)
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
        if size >= 4:
            handle.seek(size - 4)
            tail = handle.read(4)
    return detect(head, tail, size, name or path.name)
