"""Local adapters: the same semantics as the AWS services they stand in for, across processes."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
from pathlib import Path

import pytest

from lakehouse.adapters import delta_table_input, hive_type
from lakehouse.adapters.factory import build_adapters
from lakehouse.adapters.local import (
    LocalCatalog,
    LocalLeaseStore,
    LocalNotifier,
    LocalObjectStore,
    LocalRunLedger,
)
from lakehouse.errors import LeaseHeldError, ObjectChangedError
from lakehouse.settings import Settings

# --- object store -------------------------------------------------------------------------------


def test_object_roundtrip_and_head(tmp_home: Path) -> None:
    store = LocalObjectStore(tmp_home)
    store.put_bytes("landing", "orders/2026/a b.csv", b"id\n1\n", metadata={"reason": "x"})
    info = store.head("landing", "orders/2026/a b.csv")
    assert info.size == 5
    assert info.etag == "bc9280dfc1d4e67233f138f5bbbf0951"  # md5(b"id\n1\n")
    assert info.version_id is None
    assert store.read_bytes("landing", "orders/2026/a b.csv") == b"id\n1\n"
    assert store.read_bytes("landing", "orders/2026/a b.csv", max_bytes=2) == b"id"
    assert store.metadata("landing", "orders/2026/a b.csv") == {"reason": "x"}
    assert store.uri("landing", "orders/2026/a b.csv") == str(
        tmp_home / "buckets/landing/orders/2026/a b.csv"
    )


def test_object_missing_raises_file_not_found(tmp_home: Path) -> None:
    store = LocalObjectStore(tmp_home)
    assert not store.exists("landing", "nope")
    with pytest.raises(FileNotFoundError, match="nope"):
        store.head("landing", "nope")


def test_key_cannot_escape_bucket(tmp_home: Path) -> None:
    store = LocalObjectStore(tmp_home)
    with pytest.raises(ValueError, match="invalid object key"):
        store.put_bytes("landing", "../lake/x", b"1")


def test_list_copy_download_and_metadata_follow_copy(tmp_home: Path, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_home)
    store.put_bytes("landing", "a/1.csv", b"1", metadata={"k": "v"})
    store.put_bytes("landing", "a/2.csv", b"2")
    store.put_bytes("landing", "b/3.csv", b"3")
    assert list(store.list("landing", "a/")) == ["a/1.csv", "a/2.csv"]
    assert list(store.list("landing")) == ["a/1.csv", "a/2.csv", "b/3.csv"]
    assert list(store.list("missing-bucket")) == []
    store.copy("landing", "a/1.csv", "quarantine", "objects/1.csv")
    assert store.read_bytes("quarantine", "objects/1.csv") == b"1"
    assert store.metadata("quarantine", "objects/1.csv") == {"k": "v"}
    # A re-put without metadata drops the old metadata, as S3 does.
    store.put_bytes("landing", "a/1.csv", b"11")
    assert store.metadata("landing", "a/1.csv") == {}
    dest = store.download("landing", "b/3.csv", tmp_path / "dl" / "3.csv")
    assert dest.read_bytes() == b"3"
    src = tmp_path / "src.bin"
    src.write_bytes(b"file")
    store.put_file("artifacts", "x/src.bin", src)
    assert store.read_bytes("artifacts", "x/src.bin") == b"file"
    # No temp files left behind by atomic writes.
    assert not [p for p in (tmp_home / "buckets").rglob("*") if p.name.startswith(".lakehouse-tmp-")]
    assert store.storage_options() == {}


# --- leases -------------------------------------------------------------------------------------


def _try_acquire(home: str, owner: str, start: mp.synchronize.Barrier, results: mp.Queue[str]) -> None:
    store = LocalLeaseStore(Path(home))
    start.wait()
    try:
        store.acquire("orders", owner, ttl_seconds=60)
        results.put(f"won:{owner}")
    except LeaseHeldError:
        results.put(f"lost:{owner}")


def test_lease_exclusive_across_processes(tmp_home: Path) -> None:
    ctx = mp.get_context("spawn")
    n = 6
    barrier = ctx.Barrier(n)
    results: mp.Queue[str] = ctx.Queue()
    procs = [
        ctx.Process(target=_try_acquire, args=(str(tmp_home), f"run-{i}", barrier, results)) for i in range(n)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    outcomes = [results.get(timeout=5) for _ in range(n)]
    winners = [o for o in outcomes if o.startswith("won:")]
    assert len(winners) == 1, outcomes
    holder = LocalLeaseStore(tmp_home).get("orders")
    assert holder is not None
    assert winners[0] == f"won:{holder.owner}"


def test_lease_held_expiry_takeover_and_renewal(tmp_home: Path) -> None:
    now = [1000.0]
    store = LocalLeaseStore(tmp_home, clock=lambda: now[0])
    lease = store.acquire("orders", "run-a", ttl_seconds=60)
    assert lease.expires_at == 1060.0
    with pytest.raises(LeaseHeldError, match="run-a"):
        store.acquire("orders", "run-b", ttl_seconds=60)
    # The owner may renew.
    assert store.acquire("orders", "run-a", ttl_seconds=120).expires_at == 1120.0
    now[0] = 1121.0
    taken = store.acquire("orders", "run-b", ttl_seconds=60)
    assert taken.owner == "run-b"
    assert store.get("orders") == taken
    # Another table is independent.
    assert store.acquire("customers", "run-a", ttl_seconds=60).owner == "run-a"


def test_lease_release_only_by_owner(tmp_home: Path) -> None:
    store = LocalLeaseStore(tmp_home)
    store.acquire("orders", "run-a", ttl_seconds=60)
    assert store.release("orders", "run-b") is False
    assert store.get("orders") is not None
    assert store.release("orders", "run-a") is True
    assert store.get("orders") is None
    assert store.release("orders", "run-a") is False
    store.acquire("orders", "run-b", ttl_seconds=60)


# --- catalog ------------------------------------------------------------------------------------


def test_catalog_upsert_created_then_schema_changed(tmp_home: Path) -> None:
    cat = LocalCatalog(tmp_home)
    cols = [("id", "int64"), ("amount", "decimal(12, 2)"), ("day", "date")]
    assert cat.upsert_delta_table("db", "orders", "/t/orders", cols, ["day"]) == {
        "created": True,
        "schema_changed": False,
    }
    assert cat.upsert_delta_table("db", "orders", "/t/orders", cols, ["day"]) == {
        "created": False,
        "schema_changed": False,
    }
    entry = cat.get_table("db", "orders")
    assert entry is not None
    assert entry["Parameters"]["table_type"] == "DELTA"
    assert entry["StorageDescriptor"]["Location"] == "/t/orders"
    assert entry["StorageDescriptor"]["Columns"] == [
        {"Name": "id", "Type": "bigint"},
        {"Name": "amount", "Type": "decimal(12,2)"},
    ]
    assert entry["PartitionKeys"] == [{"Name": "day", "Type": "date"}]
    result = cat.upsert_delta_table("db", "orders", "/t/orders", [*cols, ("note", "string")], ["day"])
    assert result == {"created": False, "schema_changed": True}
    assert cat.list_tables("db") == ["orders"]
    assert cat.list_tables("other") == []
    assert cat.get_table("db", "missing") is None


def test_catalog_rejects_unknown_partition_key(tmp_home: Path) -> None:
    with pytest.raises(ValueError, match="partition keys"):
        LocalCatalog(tmp_home).upsert_delta_table("db", "t", "/t", [("id", "long")], ["day"])


@pytest.mark.parametrize(
    ("ours", "hive"),
    [
        ("long", "bigint"),
        ("int32", "int"),
        ("timestamp_ntz", "timestamp"),
        ("Decimal(10,2)", "decimal(10,2)"),
        ("array<long>", "array<bigint>"),
        ("struct<a:integer,b:map<string,long>>", "struct<a:int,b:map<string,bigint>>"),
    ],
)
def test_hive_type(ours: str, hive: str) -> None:
    assert hive_type(ours) == hive


def test_table_input_is_athena_delta() -> None:
    ti = delta_table_input("t", "s3://lake/tables/t", [("id", "long")], [])
    assert ti["TableType"] == "EXTERNAL_TABLE"
    assert ti["Parameters"]["table_type"] == "DELTA"


# --- notifier and ledger ------------------------------------------------------------------------


def test_outbox_lines(tmp_home: Path) -> None:
    notifier = LocalNotifier(tmp_home)
    notifier.alert("orders failed checks", {"run_id": "r1", "failed": ["row_count"]})
    notifier.publish("DatasetUpdated", {"dataset": "orders", "version": 3})
    notifier.publish("DatasetUpdated", {"dataset": "orders", "version": 4})
    alerts = [json.loads(x) for x in (tmp_home / "outbox/alerts.jsonl").read_text().splitlines()]
    events = [json.loads(x) for x in (tmp_home / "outbox/events.jsonl").read_text().splitlines()]
    assert len(alerts) == 1
    assert alerts[0]["subject"] == "orders failed checks"
    assert alerts[0]["message"]["failed"] == ["row_count"]
    assert alerts[0]["time"].endswith("+00:00")
    assert [e["detail"]["version"] for e in events] == [3, 4]
    assert {e["detail_type"] for e in events} == {"DatasetUpdated"}
    assert {e["source"] for e in events} == {"lakehouse"}


def test_run_ledger(tmp_home: Path) -> None:
    ledger = LocalRunLedger(tmp_home)
    assert ledger.get("r1") is None
    assert ledger.list() == []
    ledger.put("r1", {"status": "RUNNING", "updated_at": "2026-01-01T00:00:00+00:00"})
    ledger.put("r/2", {"status": "SUCCEEDED", "updated_at": "2026-01-02T00:00:00+00:00"})
    ledger.put("r1", {"status": "FAILED", "updated_at": "2026-01-03T00:00:00+00:00", "ms": 1.5})
    assert ledger.get("r1") == {
        "status": "FAILED",
        "updated_at": "2026-01-03T00:00:00+00:00",
        "ms": 1.5,
        "run_id": "r1",
    }
    assert [r["run_id"] for r in ledger.list()] == ["r1", "r/2"]
    assert [r["run_id"] for r in ledger.list(limit=1)] == ["r1"]


def test_factory_builds_local_set(tmp_home: Path) -> None:
    from lakehouse.local.enforce import unwrap

    adapters = build_adapters(Settings(LAKEHOUSE_BACKEND="local", LAKEHOUSE_HOME=tmp_home))
    # Each behind its local-IAM checking wrapper (docs/IAM.md).
    assert isinstance(unwrap(adapters.objects), LocalObjectStore)
    assert isinstance(unwrap(adapters.leases), LocalLeaseStore)
    assert isinstance(unwrap(adapters.catalog), LocalCatalog)
    assert isinstance(unwrap(adapters.notifier), LocalNotifier)
    assert isinstance(unwrap(adapters.ledger), LocalRunLedger)
    adapters.objects.put_bytes("lake", "k", b"1")
    assert (tmp_home / "buckets/lake/k").read_bytes() == b"1"


# --- object versions (the local landing bucket is versioned, as in the deployed stack) ------------------


def test_versioned_bucket_keeps_every_version_readable(tmp_home: Path, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_home, versioned_buckets=("landing",))
    first = store.put_file("landing", "orders/o.csv", _write(tmp_path / "a.csv", b"id\n1\n2\n"))
    second = store.put_bytes("landing", "orders/o.csv", b"id\n3\n")
    assert first.version_id
    assert second.version_id
    assert first.version_id != second.version_id
    assert first.etag == "cb583ba345bc7ea478a361b56d3691a7"  # md5(b"id\n1\n2\n"), as S3 for one part
    assert store.head("landing", "orders/o.csv") == second
    # Reads pinned to the first version return exactly its bytes, whatever the key holds now.
    key, v1 = "orders/o.csv", first.version_id
    assert store.head("landing", key, version_id=v1, etag=first.etag) == first
    assert store.read_bytes("landing", key, version_id=v1) == b"id\n1\n2\n"
    assert store.read_bytes("landing", key, 3, version_id=v1) == b"id\n"
    assert store.download("landing", key, tmp_path / "d.csv", version_id=v1).read_bytes() == b"id\n1\n2\n"
    store.copy("landing", key, "quarantine", "q.csv", version_id=v1, etag=first.etag)
    assert store.read_bytes("quarantine", "q.csv") == b"id\n1\n2\n"
    assert (tmp_home / "buckets/landing/orders/o.csv").read_bytes() == b"id\n3\n"
    # The same bytes again are not a new version (a re-run of the same file is the same object).
    assert store.put_bytes("landing", key, b"id\n3\n").version_id == second.version_id
    # A version the store never issued, or a wrong ETag, cannot be read.
    with pytest.raises(ObjectChangedError, match=r"orders/o.csv: version nope .*no such version"):
        store.read_bytes("landing", key, version_id="nope")
    with pytest.raises(ObjectChangedError, match="that version has ETag"):
        store.head("landing", key, version_id=v1, etag=second.etag)
    with pytest.raises(ObjectChangedError, match="now has ETag"):
        store.download("landing", key, tmp_path / "x.csv", etag=first.etag)
    assert not (tmp_path / "x.csv").exists()


def test_in_place_overwrite_of_the_visible_file_leaves_the_version_intact(tmp_home: Path) -> None:
    store = LocalObjectStore(tmp_home, versioned_buckets=("landing",))
    first = store.put_bytes("landing", "orders/o.csv", b"id\n1\n")
    visible = tmp_home / "buckets/landing/orders/o.csv"
    with open(visible, "r+b") as fh:  # a user's editor or `cp` writes into the same inode
        fh.truncate(0)
        fh.write(b"id\n9\n9\n")
    assert store.read_bytes("landing", "orders/o.csv", version_id=first.version_id) == b"id\n1\n"
    now = store.head("landing", "orders/o.csv")
    assert now.version_id is None  # not a version yet: the watcher snapshots it once complete
    assert now.etag == hashlib.md5(b"id\n9\n9\n", usedforsecurity=False).hexdigest()
    with pytest.raises(ObjectChangedError):
        store.read_bytes("landing", "orders/o.csv", etag=first.etag)
    second = store.snapshot("landing", "orders/o.csv")
    assert second.version_id not in (None, first.version_id)
    assert store.snapshot("landing", "orders/o.csv") == second  # unchanged: the same version
    visible.write_bytes(b"id\n7\n")
    assert store.read_bytes("landing", "orders/o.csv", version_id=second.version_id) == b"id\n9\n9\n"


def test_unversioned_bucket_reads_pinned_by_etag(tmp_home: Path, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_home, versioned_buckets=("landing",))
    info = store.put_bytes("lake", "runs/x.json", b"{}")
    assert info.version_id is None
    assert store.read_bytes("lake", "runs/x.json", etag=info.etag) == b"{}"
    store.put_bytes("lake", "runs/x.json", b"[]")
    with pytest.raises(ObjectChangedError, match="now has ETag"):
        store.read_bytes("lake", "runs/x.json", etag=info.etag)
    with pytest.raises(ObjectChangedError, match="not versioned"):
        store.read_bytes("lake", "runs/x.json", version_id="v1")
    with pytest.raises(ObjectChangedError):
        store.copy("lake", "runs/x.json", "quarantine", "q.json", etag=info.etag)
    assert not store.exists("quarantine", "q.json")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
