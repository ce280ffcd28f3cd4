"""The small interfaces domain code talks to. `adapters.aws` and `adapters.local` implement them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# One listing page: the keys (in key order) and whether more follow (`ObjectStore.list_page`).
KeyPage = tuple[list[str], bool]


@dataclass(frozen=True)
class ObjectInfo:
    """What we know of a stored object without reading it."""

    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None = None


class ObjectStore(Protocol):
    """Buckets of objects: S3 in AWS, folders locally.

    An object *version* is the unit of exactly-once (docs/ARCHITECTURE.md, "Object versions"). Reads
    take pins: `version_id` reads exactly that version (versioned buckets), `etag` reads only if the
    bytes still have that ETag. A pinned read that cannot be satisfied (the version or key is gone, the
    ETag differs) raises `ObjectChangedError`; it never returns other bytes.
    """

    def uri(self, bucket: str, key: str) -> str:
        """A URI deltalake/DuckDB understand: `s3://bucket/key` or an absolute local path."""

    def head(
        self, bucket: str, key: str, version_id: str | None = None, etag: str | None = None
    ) -> ObjectInfo: ...

    def download(
        self,
        bucket: str,
        key: str,
        dest: Path,
        version_id: str | None = None,
        etag: str | None = None,
    ) -> Path: ...

    def read_bytes(
        self,
        bucket: str,
        key: str,
        max_bytes: int | None = None,
        version_id: str | None = None,
        etag: str | None = None,
    ) -> bytes: ...

    def put_bytes(
        self, bucket: str, key: str, data: bytes, metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo | None:
        """Store `data`; the new version's identity where the store knows it without another request."""

    def put_file(self, bucket: str, key: str, src: Path) -> ObjectInfo | None:
        """Store the file's bytes; the new version's identity where the store knows it (local: always)."""

    def copy(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        version_id: str | None = None,
        etag: str | None = None,
    ) -> None:
        """Copy the source (exactly the pinned version, if pins are given) to the destination."""

    def exists(self, bucket: str, key: str) -> bool: ...

    def list(self, bucket: str, prefix: str = "") -> Iterator[str]: ...

    def list_page(self, bucket: str, prefix: str, start_after: str, max_keys: int) -> KeyPage:
        """Up to `max_keys` keys under `prefix` after `start_after`, in key order (one ListObjectsV2 page
        with StartAfter); and whether more keys follow."""

    def storage_options(self) -> dict[str, str]:
        """Options for deltalake (endpoint, region, credentials) when tables live in this store."""


@dataclass(frozen=True)
class Lease:
    """A table's single-writer lease."""

    table: str
    owner: str
    expires_at: float


class LeaseStore(Protocol):
    """Conditional-write leases: DynamoDB in AWS, a locked JSON file locally."""

    def acquire(self, table: str, owner: str, ttl_seconds: int) -> Lease:
        """Take the lease if free, expired, or already ours; else raise LeaseHeldError."""

    def release(self, table: str, owner: str) -> bool:
        """Give the lease back if we hold it; True if something was released."""

    def get(self, table: str) -> Lease | None: ...


class Catalog(Protocol):
    """The Glue Data Catalog, or a local JSON catalog with the same entries."""

    def upsert_delta_table(
        self,
        database: str,
        table: str,
        location: str,
        columns: list[tuple[str, str]],
        partition_keys: list[str],
    ) -> dict[str, Any]:
        """Create or update the entry (table_type=DELTA); returns `{created, schema_changed}`."""

    def get_table(self, database: str, table: str) -> dict[str, Any] | None: ...

    def list_tables(self, database: str) -> list[str]: ...


class Notifier(Protocol):
    """SNS alerts and EventBridge events, or the local outbox."""

    def alert(self, subject: str, message: Mapping[str, Any]) -> None: ...

    def publish(self, detail_type: str, detail: Mapping[str, Any]) -> None: ...


class RunLedger(Protocol):
    """One record per pipeline run: status, route, per-state timings."""

    def put(self, run_id: str, record: Mapping[str, Any]) -> None: ...

    def get(self, run_id: str) -> dict[str, Any] | None: ...

    def list(self, limit: int = 100) -> list[dict[str, Any]]: ...


class PendingSet(Protocol):
    """The object versions waiting for their dataset's drain: DynamoDB in AWS, JSON files locally.

    Items are `lakehouse.state.PendingObject` dumps keyed by (dataset, object_id). Every change is a
    conditional write on one item, so two writers never both win: `add` only creates, `claim` only
    takes a `pending` item. A drain that finished removes its items (the run ledger keeps the outcome).
    """

    def add(self, item: Mapping[str, Any]) -> bool:
        """Create the item unless (dataset, object_id) exists (pending or claimed); True if created."""

    def items(self, dataset: str) -> list[dict[str, Any]]:
        """Every item of `dataset`, read consistently (a write acknowledged before is seen). For listings:
        the drain path reads only `oldest` and `claimed`, whatever the backlog."""

    def oldest(self, dataset: str, limit: int) -> list[dict[str, Any]]:
        """The `limit` oldest `pending` items, in arrival order, read consistently."""

    def claimed(self, dataset: str, drain_id: str | None = None) -> list[dict[str, Any]]:
        """The items claimed by `drain_id` (by any drain when None), read consistently."""

    def claim(self, dataset: str, object_ids: list[str], drain_id: str) -> list[str]:
        """Mark the `pending` items as claimed by `drain_id`; the ids actually claimed."""

    def requeue(
        self,
        dataset: str,
        object_ids: list[str],
        group: str | None,
        note: str | None,
        txn_versions: Mapping[str, int] | None = None,
    ) -> None:
        """Put the items back to `pending` (unclaimed), in isolation group `group`, with the app
        transaction version each is retried with (`txn_versions`, where it changes)."""

    def remove(self, dataset: str, object_ids: list[str]) -> None:
        """Delete the items (their drain finished with them)."""
