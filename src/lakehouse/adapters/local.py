"""Local adapters: every AWS service the pipeline uses, as files under the local home (`.lakehouse/`).

Layout under `<home>`:
  buckets/<bucket>/<key>                 objects (a bucket is a folder)
  state/object-versions/<bucket>/<sha256(key)>/  versioned buckets: each version's immutable bytes
                                         (`<version id>`) and `index.json` (ETags, the current version)
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
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lakehouse.adapters import columns_changed, delta_table_input
from lakehouse.errors import LeaseHeldError, ObjectChangedError
from lakehouse.ports import KeyPage, Lease, ObjectInfo
from lakehouse.workdirs import TMP_PREFIX as _TMP_PREFIX
from lakehouse.workdirs import is_stale_tmp, tmp_sibling

# Temp files (`.lakehouse-tmp-<pid>-<hex>`) are skipped by listings, which also remove those a crashed
# writer left (lakehouse.workdirs.is_stale_tmp).
_CHUNK = 1 << 20
_SAFE_VERSION = re.compile(r"[A-Za-z0-9._-]{1,128}")
_FICLONE = 0x40049409  # Linux ioctl: share the extents of another file (copy-on-write)


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


def _copy_hashing(src: Path, dst: Path) -> str:
    """Copy `src` to a new file `dst` and return the MD5 of the bytes copied (one pass)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for chunk in iter(lambda: fin.read(_CHUNK), b""):
            digest.update(chunk)
            fout.write(chunk)
    return digest.hexdigest()


def _md5_file(path: Path, keep: int = 0) -> tuple[str, bytes]:
    """MD5 of a file, and its first `keep` bytes."""
    digest = hashlib.md5(usedforsecurity=False)
    head = b""
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            if len(head) < keep:
                head += chunk[: keep - len(head)]
            digest.update(chunk)
    return digest.hexdigest(), head


def _clone_or_copy(src: Path, dst: Path) -> None:
    """A copy of `src` at `dst` with its own inode: a reflink where the filesystem has them (btrfs,
    xfs), else a kernel copy. Never a hard link: a user may overwrite the copy in place."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
            return
        except OSError:
            pass
    shutil.copyfile(src, dst)


def _link_or_copy(snapshot: Path, dst: Path) -> None:
    """A read-only view of an immutable version snapshot: a hard link on the same filesystem, else a copy."""
    try:
        os.link(snapshot, dst)
    except OSError:
        _clone_or_copy(snapshot, dst)


def _signature(path: Path) -> dict[str, int] | None:
    """What changes whenever a file's bytes change (size, mtime, ctime, inode); None if absent."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "ino": st.st_ino}


def _new_version_id() -> str:
    """Time-ordered and unique, like an S3 version id is opaque and unique."""
    return f"{time.time_ns():016x}{uuid.uuid4().hex[:16]}"


def _changed(
    bucket: str, key: str, version_id: str | None, etag: str | None, found: str
) -> ObjectChangedError:
    pin = f"version {version_id}" if version_id else "the version"
    if etag:
        pin += f" with ETag {etag}"
    return ObjectChangedError(
        f"s3://{bucket}/{key}: {pin} named by the event can no longer be read ({found}); nothing was "
        "ingested from other bytes under this run's identity. A newer version has its own event and run."
    )


class LocalObjectStore:
    """Buckets as folders: `<home>/buckets/<bucket>/<key>`.

    Versioned buckets (the landing bucket, as in the deployed stack) keep every version's bytes as an
    immutable snapshot `state/object-versions/<bucket>/<sha256(key)>/<version id>` next to an
    `index.json` (versions, ETags, and which one the visible file holds). The visible file is a separate
    copy (a reflink where possible): users may overwrite it in place without touching a snapshot.
    """

    def __init__(self, home: Path, versioned_buckets: Iterable[str] = ()) -> None:
        self.home = Path(home).resolve()
        self.root = self.home / "buckets"
        self._meta_root = self.home / "state" / "object-meta"
        self._versions_root = self.home / "state" / "object-versions"
        self.versioned_buckets = frozenset(versioned_buckets)

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

    # -- versions ----------------------------------------------------------------------------------

    def _vdir(self, bucket: str, key: str) -> Path:
        self._path(bucket, key)  # validates bucket and key
        return self._versions_root / bucket / hashlib.sha256(key.encode()).hexdigest()[:40]

    def _index(self, bucket: str, key: str) -> dict[str, Any]:
        data = _read_json(self._vdir(bucket, key) / "index.json")
        return data if isinstance(data, dict) else {"key": key, "current": None, "versions": {}}

    def _current(self, bucket: str, key: str, index: dict[str, Any]) -> dict[str, Any] | None:
        """The version the visible file holds, if it still holds it (not changed in place since)."""
        current = index.get("current")
        if not isinstance(current, dict):
            return None
        signature = _signature(self._path(bucket, key))
        return current if signature is not None and signature == current.get("signature") else None

    def version_path(self, bucket: str, key: str, version_id: str) -> Path:
        """The immutable snapshot of one version (ObjectChangedError if the store has no such version)."""
        vdir = self._vdir(bucket, key)
        entry = self._index(bucket, key).get("versions", {}).get(version_id)
        path = vdir / version_id
        if not isinstance(entry, dict) or _SAFE_VERSION.fullmatch(version_id) is None or not path.is_file():
            raise _changed(bucket, key, version_id, None, "no such version")
        return path

    def _commit_version(
        self,
        bucket: str,
        key: str,
        snapshot_tmp: Path,
        etag: str,
        source_signature: dict[str, int] | None = None,
        version_id: str | None = None,
    ) -> ObjectInfo:
        """Make a written snapshot a version (or the key's latest version again, if it has these bytes).

        Without `source_signature` this is a put: the visible file becomes a copy of the snapshot. With
        it, the snapshot was taken from the visible file (a file a user dropped), which must still be
        exactly what was read.
        """
        vdir = snapshot_tmp.parent
        visible = self._path(bucket, key)
        with file_lock(vdir / "index.lock"):
            if source_signature is not None and _signature(visible) != source_signature:
                raise _changed(bucket, key, None, None, "the file changed while it was being read")
            index = self._index(bucket, key)
            size = snapshot_tmp.stat().st_size
            latest = index.get("current") or {}
            # The same bytes as the key's latest version are that version again, not a new arrival.
            same = latest.get("etag") == etag and (vdir / str(latest.get("version_id"))).is_file()
            same = same and version_id in (None, latest.get("version_id"))
            if same:
                version_id = str(latest["version_id"])
                snapshot_tmp.unlink(missing_ok=True)
            else:
                version_id = version_id or _new_version_id()
                if _SAFE_VERSION.fullmatch(version_id) is None or version_id.startswith("index."):
                    raise ValueError(f"invalid version id {version_id!r}")
                if version_id in index["versions"]:
                    raise ValueError(f"s3://{bucket}/{key}: version {version_id} exists with other bytes")
                os.chmod(snapshot_tmp, 0o444)
                os.replace(snapshot_tmp, vdir / version_id)
                index["versions"][version_id] = {"etag": etag, "size": size, "created": _utc_iso()}
            if source_signature is None and (not same or self._current(bucket, key, index) is None):
                visible.parent.mkdir(parents=True, exist_ok=True)
                tmp = tmp_sibling(visible.parent)
                _clone_or_copy(vdir / version_id, tmp)
                os.chmod(tmp, 0o644)
                os.replace(tmp, visible)
            index["current"] = {"version_id": version_id, "etag": etag, "signature": _signature(visible)}
            _atomic_write(vdir / "index.json", json.dumps(index, indent=1, sort_keys=True).encode())
            return ObjectInfo(bucket, key, size, etag, version_id)

    def _put_version(self, bucket: str, key: str, fill: Callable[[Path], str]) -> ObjectInfo:
        vdir = self._vdir(bucket, key)
        vdir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_sibling(vdir)
        try:
            etag = fill(tmp)
            return self._commit_version(bucket, key, tmp, etag)
        finally:
            tmp.unlink(missing_ok=True)

    def snapshot(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo:
        """Give the visible file a version of its own (the watcher, once a dropped file is complete).

        The bytes are copied to an immutable snapshot; if the file changed during the copy,
        ObjectChangedError (the caller tries again once it is complete). Unchanged bytes keep their version.
        `version_id` registers the file under that id instead, to replay an event recorded elsewhere.
        """
        if bucket not in self.versioned_buckets:
            return self.head(bucket, key)
        visible = self._path(bucket, key)
        current = self._current(bucket, key, self._index(bucket, key))
        if current is not None and version_id in (None, current["version_id"]):
            return self.head(bucket, key, str(current["version_id"]))
        vdir = self._vdir(bucket, key)
        vdir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_sibling(vdir)
        try:
            before = _signature(visible)
            if before is None:
                raise FileNotFoundError(f"no object {key!r} in bucket {bucket!r}")
            etag = _copy_hashing(visible, tmp)
            return self._commit_version(
                bucket, key, tmp, etag, source_signature=before, version_id=version_id
            )
        finally:
            tmp.unlink(missing_ok=True)

    def _resolve(
        self, bucket: str, key: str, version_id: str | None, etag: str | None
    ) -> tuple[Path, ObjectInfo | None]:
        """Where the pinned bytes are: (path, info) if known to be the pinned version, (path, None) if the
        path is the visible file whose bytes must be checked against `etag` as they are read."""
        versioned = bucket in self.versioned_buckets
        if version_id is not None:
            if not versioned:
                raise _changed(bucket, key, version_id, etag, f"bucket {bucket!r} is not versioned")
            path = self.version_path(bucket, key, version_id)
            entry = self._index(bucket, key)["versions"][version_id]
            if etag and entry["etag"] != etag:
                raise _changed(bucket, key, version_id, etag, f"that version has ETag {entry['etag']}")
            return path, ObjectInfo(bucket, key, int(entry["size"]), str(entry["etag"]), version_id)
        visible = self._path(bucket, key)
        if not visible.is_file():
            if etag:
                raise _changed(bucket, key, None, etag, "the key no longer exists")
            raise FileNotFoundError(f"no object {key!r} in bucket {bucket!r} ({visible})")
        current = self._current(bucket, key, self._index(bucket, key)) if versioned else None
        if current is not None and (not etag or current["etag"] == etag):
            vid = str(current["version_id"])
            return self.version_path(bucket, key, vid), ObjectInfo(
                bucket, key, visible.stat().st_size, str(current["etag"]), vid
            )
        return visible, None

    def pinned_path(
        self, bucket: str, key: str, version_id: str | None = None, etag: str | None = None
    ) -> Path:
        """A path holding exactly the pinned bytes, for readers that take a path (local Spark): the
        version's immutable snapshot, or (unversioned buckets) the file once its ETag is checked."""
        path, info = self._resolve(bucket, key, version_id, etag)
        if info is None and etag:
            self.head(bucket, key, etag=etag)
        return path

    # -- the ObjectStore port ----------------------------------------------------------------------

    def head(
        self, bucket: str, key: str, version_id: str | None = None, etag: str | None = None
    ) -> ObjectInfo:
        path, info = self._resolve(bucket, key, version_id, etag)
        if info is not None:
            return info
        found, _ = _md5_file(path)
        if etag and found != etag:
            raise _changed(bucket, key, None, etag, f"the object now has ETag {found}")
        return ObjectInfo(bucket=bucket, key=key, size=path.stat().st_size, etag=found)

    def metadata(self, bucket: str, key: str) -> dict[str, str]:
        """The user metadata the object was put with (empty if none); S3 returns it on HEAD."""
        if not self.exists(bucket, key):
            raise FileNotFoundError(f"no object {key!r} in bucket {bucket!r}")
        data = _read_json(self._meta_path(bucket, key))
        return dict(data) if isinstance(data, dict) else {}

    def download(
        self,
        bucket: str,
        key: str,
        dest: Path,
        version_id: str | None = None,
        etag: str | None = None,
    ) -> Path:
        src, info = self._resolve(bucket, key, version_id, etag)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_sibling(dest.parent)
        try:
            if info is not None:
                _link_or_copy(src, tmp)  # an immutable, read-only snapshot: no copy needed
            elif not etag:
                _clone_or_copy(src, tmp)
            else:
                found = _copy_hashing(src, tmp)
                if found != etag:
                    raise _changed(bucket, key, None, etag, f"the object now has ETag {found}")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def read_bytes(
        self,
        bucket: str,
        key: str,
        max_bytes: int | None = None,
        version_id: str | None = None,
        etag: str | None = None,
    ) -> bytes:
        path, info = self._resolve(bucket, key, version_id, etag)
        if info is None and etag:
            size = path.stat().st_size
            found, data = _md5_file(path, size if max_bytes is None else max_bytes)
            if found != etag:
                raise _changed(bucket, key, None, etag, f"the object now has ETag {found}")
            return data
        with open(path, "rb") as fh:
            return fh.read() if max_bytes is None else fh.read(max_bytes)

    def put_bytes(
        self, bucket: str, key: str, data: bytes, metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        if bucket in self.versioned_buckets:

            def fill(tmp: Path) -> str:
                tmp.write_bytes(data)
                return hashlib.md5(data, usedforsecurity=False).hexdigest()

            info = self._put_version(bucket, key, fill)
        else:
            _atomic_write(self._path(bucket, key), data)
            info = ObjectInfo(bucket, key, len(data), hashlib.md5(data, usedforsecurity=False).hexdigest())
        self._put_meta(bucket, key, metadata)
        return info

    def put_file(self, bucket: str, key: str, src: Path) -> ObjectInfo:
        info = self._write_from(bucket, key, Path(src))
        self._put_meta(bucket, key, None)
        return info

    def _write_from(self, bucket: str, key: str, src: Path, etag: str | None = None) -> ObjectInfo:
        """Store the bytes of the file `src` (an immutable snapshot when `etag` is known already)."""
        if bucket in self.versioned_buckets:
            return self._put_version(bucket, key, lambda tmp: _copy_hashing(src, tmp))
        dest = self._path(bucket, key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_sibling(dest.parent)
        try:
            if etag is None:
                etag = _copy_hashing(src, tmp)
            else:
                _clone_or_copy(src, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return ObjectInfo(bucket, key, dest.stat().st_size, etag)

    def _put_meta(self, bucket: str, key: str, metadata: Mapping[str, str] | None) -> None:
        meta_path = self._meta_path(bucket, key)
        if metadata:
            _atomic_write(meta_path, json.dumps(dict(metadata), sort_keys=True).encode())
        else:
            # S3 replaces metadata on every PUT; an old sidecar must not outlive its object version.
            meta_path.unlink(missing_ok=True)

    def copy(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        version_id: str | None = None,
        etag: str | None = None,
    ) -> None:
        src, info = self._resolve(src_bucket, src_key, version_id, etag)
        if info is None and etag:
            # The visible file, pinned by ETag: checked in a staging copy before the destination is written.
            staging = self.home / "state" / "staging"
            staging.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=staging) as tmpdir:
                staged = self.download(src_bucket, src_key, Path(tmpdir) / "object", etag=etag)
                self._write_from(dst_bucket, dst_key, staged, etag)
        else:
            self._write_from(dst_bucket, dst_key, src, info.etag if info else None)
        # Like CopyObject's default MetadataDirective=COPY: metadata travels with the object.
        meta = self.metadata(src_bucket, src_key) if self.exists(src_bucket, src_key) else {}
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

    def list_page(self, bucket: str, prefix: str, start_after: str, max_keys: int) -> KeyPage:
        """As ListObjectsV2 with StartAfter: the next `max_keys` keys after `start_after`."""
        keys = [k for k in self.list(bucket, prefix) if k > start_after]
        return keys[:max_keys], len(keys) > max_keys

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


class LocalPendingSet:
    """The pending set as one JSON file per item under `<home>/state/pending/<dataset>/`, changed only
    under the dataset's exclusive flock (the conditional writes of the DynamoDB table, locally)."""

    def __init__(self, home: Path) -> None:
        self.dir = Path(home).resolve() / "state" / "pending"

    def _dataset_dir(self, dataset: str) -> Path:
        return self.dir / _safe_name(dataset)

    def _item(self, dataset: str, object_id: str) -> Path:
        return self._dataset_dir(dataset) / f"{_safe_name(object_id)}.json"

    def _locked(self, dataset: str) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.dir / f"{_safe_name(dataset)}.lock")

    def add(self, item: Mapping[str, Any]) -> bool:
        dataset, object_id = str(item["dataset"]), str(item["object_id"])
        with self._locked(dataset):
            path = self._item(dataset, object_id)
            if path.exists():
                return False
            _atomic_write(path, json.dumps(dict(item), default=str).encode())
            return True

    def items(self, dataset: str) -> list[dict[str, Any]]:
        folder = self._dataset_dir(dataset)
        if not folder.is_dir():
            return []
        items = []
        for path in folder.glob("*.json"):
            data = _read_json(path)
            if isinstance(data, dict):
                items.append(data)
        return items

    def oldest(self, dataset: str, limit: int) -> list[dict[str, Any]]:
        pending = [i for i in self.items(dataset) if i.get("status") == "pending"]
        pending.sort(key=lambda i: (int(i.get("arrived_ns") or 0), str(i.get("object_id"))))
        return pending[:limit]

    def claimed(self, dataset: str, drain_id: str | None = None) -> list[dict[str, Any]]:
        return [
            i
            for i in self.items(dataset)
            if i.get("status") == "claimed" and (drain_id is None or i.get("drain_id") == drain_id)
        ]

    def _update(self, dataset: str, object_id: str, change: Callable[[dict[str, Any]], bool]) -> bool:
        path = self._item(dataset, object_id)
        data = _read_json(path)
        if not isinstance(data, dict) or not change(data):
            return False
        _atomic_write(path, json.dumps(data, default=str).encode())
        return True

    def claim(self, dataset: str, object_ids: list[str], drain_id: str) -> list[str]:
        def take(item: dict[str, Any]) -> bool:
            if item.get("status") != "pending":
                return False
            item.update(status="claimed", drain_id=drain_id)
            return True

        with self._locked(dataset):
            return [i for i in object_ids if self._update(dataset, i, take)]

    def requeue(
        self,
        dataset: str,
        object_ids: list[str],
        group: str | None,
        note: str | None,
        txn_versions: Mapping[str, int] | None = None,
    ) -> None:
        versions = dict(txn_versions or {})
        with self._locked(dataset):
            for object_id in object_ids:

                def back(item: dict[str, Any], object_id: str = object_id) -> bool:
                    item.update(status="pending", drain_id=None, group=group, note=note)
                    if object_id in versions:
                        item["txn_version"] = versions[object_id]
                    return True

                self._update(dataset, object_id, back)

    def remove(self, dataset: str, object_ids: list[str]) -> None:
        with self._locked(dataset):
            for object_id in object_ids:
                self._item(dataset, object_id).unlink(missing_ok=True)
