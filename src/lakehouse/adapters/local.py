"""Local adapters: every AWS service the pipeline uses, as files under the local home (`.lakehouse/`).

Layout under `<home>`:
  buckets/<bucket>/<key>                 objects (a bucket is a folder)
  state/object-meta/<bucket>/<key>.json  user metadata of objects put with metadata (kept out of the bucket
                                         so listings and Delta table folders stay clean)
  state/leases/<table>.json              one lease per table, changed only under an exclusive flock
  state/catalog.json                     the Glue-shaped catalog
  state/runs/<run_id>.json               the run ledger
  outbox/alerts.jsonl, outbox/events.jsonl  what SNS and EventBridge would have received

Writes go through a temp file and `os.replace`, so a reader never sees half a file, and read-modify-write
sequences hold an exclusive `fcntl.flock`, so concurrent local runs (several processes) behave like the
conditional writes they stand in for.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lakehouse.adapters import columns_changed, delta_table_input
from lakehouse.errors import LeaseHeldError
from lakehouse.ports import Lease, ObjectInfo
from lakehouse.workdirs import TMP_PREFIX as _TMP_PREFIX
from lakehouse.workdirs import is_stale_tmp, tmp_sibling

# Temp files (`.lakehouse-tmp-<pid>-<hex>`) are skipped by listings, which also remove those a crashed
# writer left (lakehouse.workdirs.is_stale_tmp).


def _utc_iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC).isoformat()


def _safe_name(name: str) -> str:
    """A file name for an arbitrary table/run id: no separators, no dot-files, reversible."""
    return quote(name, safe="-_=@,") or "%00"


def _atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see either the old or the new content, never a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(path.parent)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock; flock is per open file, so it also excludes threads of one process."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


class LocalObjectStore:
    """Buckets as folders: `<home>/buckets/<bucket>/<key>`."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home).resolve()
        self.root = self.home / "buckets"
        self._meta_root = self.home / "state" / "object-meta"

    def _path(self, bucket: str, key: str) -> Path:
        if not bucket or "/" in bucket or bucket in (".", ".."):
            raise ValueError(f"invalid bucket name {bucket!r}")
        base = (self.root / bucket).resolve()
        path = (base / key).resolve()
        # A key with `..` could otherwise read or write outside its bucket folder.
        if not key or base not in path.parents:
            raise ValueError(f"invalid object key {key!r} for bucket {bucket!r}")
        return path

    def _meta_path(self, bucket: str, key: str) -> Path:
        return self._meta_root / bucket / f"{key}.json"

    def uri(self, bucket: str, key: str) -> str:
        return str(self._path(bucket, key.rstrip("/") or key))

    def head(self, bucket: str, key: str) -> ObjectInfo:
        path = self._path(bucket, key)
        if not path.is_file():
            raise FileNotFoundError(f"no object {key!r} in bucket {bucket!r} ({path})")
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return ObjectInfo(bucket=bucket, key=key, size=path.stat().st_size, etag=digest.hexdigest())

    def metadata(self, bucket: str, key: str) -> dict[str, str]:
        """The user metadata the object was put with (empty if none); S3 returns it on HEAD."""
        if not self.exists(bucket, key):
            raise FileNotFoundError(f"no object {key!r} in bucket {bucket!r}")
        data = _read_json(self._meta_path(bucket, key))
        return dict(data) if isinstance(data, dict) else {}

    def download(self, bucket: str, key: str, dest: Path) -> Path:
        src = self._path(bucket, key)
        if not src.is_file():
            raise FileNotFoundError(f"no object {key!r} in bucket {bucket!r}")
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_sibling(dest.parent)
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
        return dest

    def read_bytes(self, bucket: str, key: str, max_bytes: int | None = None) -> bytes:
        path = self._path(bucket, key)
        if not path.is_file():
            raise FileNotFoundError(f"no object {key!r} in bucket {bucket!r}")
        with open(path, "rb") as fh:
            return fh.read() if max_bytes is None else fh.read(max_bytes)

    def put_bytes(
        self, bucket: str, key: str, data: bytes, metadata: Mapping[str, str] | None = None
    ) -> None:
        _atomic_write(self._path(bucket, key), data)
        self._put_meta(bucket, key, metadata)

    def put_file(self, bucket: str, key: str, src: Path) -> None:
        dest = self._path(bucket, key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_sibling(dest.parent)
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
        self._put_meta(bucket, key, None)

    def _put_meta(self, bucket: str, key: str, metadata: Mapping[str, str] | None) -> None:
        meta_path = self._meta_path(bucket, key)
        if metadata:
            _atomic_write(meta_path, json.dumps(dict(metadata), sort_keys=True).encode())
        else:
            # S3 replaces metadata on every PUT; an old sidecar must not outlive its object version.
            meta_path.unlink(missing_ok=True)

    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> None:
        src = self._path(src_bucket, src_key)
        if not src.is_file():
            raise FileNotFoundError(f"no object {src_key!r} in bucket {src_bucket!r}")
        dest = self._path(dst_bucket, dst_key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_sibling(dest.parent)
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
        # Like CopyObject's default MetadataDirective=COPY: metadata travels with the object.
        meta = self.metadata(src_bucket, src_key)
        self._put_meta(dst_bucket, dst_key, meta or None)

    def exists(self, bucket: str, key: str) -> bool:
        return self._path(bucket, key).is_file()

    def list(self, bucket: str, prefix: str = "") -> Iterator[str]:
        """Keys under `prefix` (a plain string prefix, as in S3), in lexicographic order."""
        base = self.root / bucket
        if not base.is_dir():
            return
        keys: list[str] = []
        for dirpath, _dirs, files in os.walk(base):
            rel_dir = os.path.relpath(dirpath, base)
            for name in files:
                if name.startswith(_TMP_PREFIX):
                    if is_stale_tmp(Path(dirpath) / name):
                        with contextlib.suppress(OSError):
                            os.unlink(os.path.join(dirpath, name))
                    continue
                key = name if rel_dir == "." else f"{rel_dir.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        yield from sorted(keys)

    def storage_options(self) -> dict[str, str]:
        # Local tables are plain paths; deltalake needs no options for them.
        return {}


class LocalLeaseStore:
    """Single-writer leases, one JSON file per table, changed only under an exclusive flock.

    Same semantics as the DynamoDB conditional write: acquire succeeds if there is no lease, it has
    expired, or we already hold it (renewal); release only by the owner.
    """

    def __init__(self, home: Path, clock: Callable[[], float] = time.time) -> None:
        self.dir = Path(home).resolve() / "state" / "leases"
        self._clock = clock

    def _file(self, table: str) -> Path:
        return self.dir / f"{_safe_name(table)}.json"

    def _lock(self, table: str) -> Path:
        # A separate lock file: the lease file itself is replaced atomically, which would drop a lock on it.
        return self.dir / f"{_safe_name(table)}.lock"

    def _read(self, table: str) -> Lease | None:
        data = _read_json(self._file(table))
        if not isinstance(data, dict):
            return None
        return Lease(table=data["table"], owner=data["owner"], expires_at=float(data["expires_at"]))

    def acquire(self, table: str, owner: str, ttl_seconds: int) -> Lease:
        with file_lock(self._lock(table)):
            now = self._clock()
            current = self._read(table)
            if current is not None and current.owner != owner and current.expires_at >= now:
                raise LeaseHeldError(
                    f"table {table!r} is leased by {current.owner!r} until {_utc_iso(current.expires_at)}"
                )
            lease = Lease(table=table, owner=owner, expires_at=now + ttl_seconds)
            record = {"table": table, "owner": owner, "expires_at": lease.expires_at, "acquired_at": now}
            _atomic_write(self._file(table), json.dumps(record).encode())
            return lease

    def release(self, table: str, owner: str) -> bool:
        with file_lock(self._lock(table)):
            current = self._read(table)
            if current is None or current.owner != owner:
                return False
            self._file(table).unlink(missing_ok=True)
            return True

    def get(self, table: str) -> Lease | None:
        # Returned even if expired, as DynamoDB would until TTL deletes it; callers compare expires_at.
        return self._read(table)


class LocalCatalog:
    """A JSON catalog with Glue's entry shape: `{database: {table: TableInput-like entry}}`."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home).resolve() / "state" / "catalog.json"
        self._lock = self.path.with_name("catalog.lock")

    def _load(self) -> dict[str, dict[str, Any]]:
        data = _read_json(self.path)
        return data if isinstance(data, dict) else {}

    def upsert_delta_table(
        self,
        database: str,
        table: str,
        location: str,
        columns: list[tuple[str, str]],
        partition_keys: list[str],
    ) -> dict[str, Any]:
        entry = delta_table_input(table, location, columns, partition_keys)
        entry["DatabaseName"] = database
        with file_lock(self._lock):
            data = self._load()
            tables = data.setdefault(database, {})
            old: dict[str, Any] | None = tables.get(table)
            created = old is None
            schema_changed = old is not None and columns_changed(old, entry)
            if old is None or schema_changed or _differs(old, entry):
                entry["UpdateTime"] = _utc_iso()
                entry["CreateTime"] = (old or {}).get("CreateTime", entry["UpdateTime"])
                tables[table] = entry
                _atomic_write(self.path, json.dumps(data, indent=2, sort_keys=True).encode())
        return {"created": created, "schema_changed": schema_changed}

    def get_table(self, database: str, table: str) -> dict[str, Any] | None:
        entry = self._load().get(database, {}).get(table)
        return dict(entry) if isinstance(entry, dict) else None

    def list_tables(self, database: str) -> list[str]:
        return sorted(self._load().get(database, {}))


def _differs(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """True if an entry needs rewriting for reasons other than columns (location, parameters)."""
    if old is None:
        return True
    keys = ("Parameters", "TableType")
    if any(old.get(k) != new.get(k) for k in keys):
        return True
    return bool(old.get("StorageDescriptor", {}).get("Location") != new["StorageDescriptor"]["Location"])


class LocalNotifier:
    """SNS and EventBridge as append-only JSON-lines files under `<home>/outbox/`."""

    def __init__(self, home: Path) -> None:
        self.dir = Path(home).resolve() / "outbox"
        self.alerts_path = self.dir / "alerts.jsonl"
        self.events_path = self.dir / "events.jsonl"

    def _append(self, path: Path, record: Mapping[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record, default=str, sort_keys=True) + "\n").encode()
        # O_APPEND plus one write per line under a flock: lines from concurrent runs never interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def alert(self, subject: str, message: Mapping[str, Any]) -> None:
        self._append(self.alerts_path, {"time": _utc_iso(), "subject": subject, "message": dict(message)})

    def publish(self, detail_type: str, detail: Mapping[str, Any]) -> None:
        self._append(
            self.events_path,
            {"time": _utc_iso(), "source": "lakehouse", "detail_type": detail_type, "detail": dict(detail)},
        )


class LocalRunLedger:
    """One JSON file per run; `put` replaces the record, like DynamoDB PutItem."""

    def __init__(self, home: Path) -> None:
        self.dir = Path(home).resolve() / "state" / "runs"

    def put(self, run_id: str, record: Mapping[str, Any]) -> None:
        body = {**dict(record), "run_id": run_id}
        body.setdefault("updated_at", _utc_iso())
        _atomic_write(self.dir / f"{_safe_name(run_id)}.json", json.dumps(body, default=str).encode())

    def get(self, run_id: str) -> dict[str, Any] | None:
        data = _read_json(self.dir / f"{_safe_name(run_id)}.json")
        return data if isinstance(data, dict) else None

    def list(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recently updated runs first."""
        if not self.dir.is_dir():
            return []
        records = []
        for path in self.dir.glob("*.json"):
            data = _read_json(path)
            if isinstance(data, dict):
                records.append(data)
        records.sort(key=lambda r: str(r.get("updated_at", "")), reverse=True)
        return records[:limit]
