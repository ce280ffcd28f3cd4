"""AWS adapters against moto: DynamoDB/Glue/SNS/EventBridge in-process, S3 against the moto server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from lakehouse.adapters.aws import (
    DynamoDbLeaseStore,
    DynamoDbRunLedger,
    GlueCatalog,
    S3ObjectStore,
    SnsEventBridgeNotifier,
    sns_subject,
)
from lakehouse.adapters.factory import build_adapters
from lakehouse.errors import LakehouseError, LeaseHeldError, ObjectChangedError, TransientError
from lakehouse.settings import Settings

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process moto for the non-S3 services (no deltalake involved, so no GIL trouble)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


def _table(name: str, key: str) -> None:
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


# --- DynamoDB leases ----------------------------------------------------------------------------


@pytest.mark.usefixtures("aws")
def test_lease_conditional_acquire_takeover_release() -> None:
    _table("leases", "table_name")
    now = [1000.0]
    store = DynamoDbLeaseStore("leases", REGION, clock=lambda: now[0])
    lease = store.acquire("orders", "run-a", ttl_seconds=60)
    assert lease.expires_at == 1060.0
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName="leases", Key={"table_name": {"S": "orders"}}
    )["Item"]
    assert item["ttl"] == {"N": "1060"}
    with pytest.raises(LeaseHeldError, match=r"run-a.*1970-01-01T00:17:40"):
        store.acquire("orders", "run-b", ttl_seconds=60)
    assert store.acquire("orders", "run-a", ttl_seconds=100).expires_at == 1100.0
    now[0] = 1100.5
    assert store.acquire("orders", "run-b", ttl_seconds=60).owner == "run-b"
    assert store.release("orders", "run-a") is False
    assert store.get("orders") is not None
    assert store.release("orders", "run-b") is True
    assert store.get("orders") is None


@pytest.mark.usefixtures("aws")
def test_lease_throttling_is_transient() -> None:
    store = DynamoDbLeaseStore("leases", REGION)
    throttled = ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "PutItem"
    )
    with mock.patch.object(store.client, "put_item", side_effect=throttled), pytest.raises(TransientError):
        store.acquire("orders", "run-a", ttl_seconds=60)
    server_error = ClientError(
        {"Error": {"Code": "Weird", "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetItem"
    )
    with mock.patch.object(store.client, "get_item", side_effect=server_error), pytest.raises(TransientError):
        store.get("orders")
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DeleteItem")
    with mock.patch.object(store.client, "delete_item", side_effect=denied), pytest.raises(ClientError):
        store.release("orders", "run-a")


# --- Run ledger ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("aws")
def test_run_ledger_roundtrip() -> None:
    _table("runs", "run_id")
    ledger = DynamoDbRunLedger("runs", REGION)
    assert ledger.get("r1") is None
    ledger.put("r1", {"status": "RUNNING", "dataset": "orders", "updated_at": "2026-01-01", "ms": 1.25})
    ledger.put("r2", {"status": "SUCCEEDED", "updated_at": "2026-01-02", "timings": {"Inspect": 12.5}})
    assert ledger.get("r1") == {
        "status": "RUNNING",
        "dataset": "orders",
        "updated_at": "2026-01-01",
        "ms": 1.25,
        "run_id": "r1",
    }
    assert [r["run_id"] for r in ledger.list()] == ["r2", "r1"]
    assert len(ledger.list(limit=1)) == 1


# --- Glue ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("aws")
def test_glue_upsert_creates_database_and_tracks_schema() -> None:
    cat = GlueCatalog(REGION)
    cols = [("id", "long"), ("ts", "timestamp"), ("day", "date")]
    assert cat.upsert_delta_table("lakehouse", "orders", "s3://lake/tables/orders", cols, ["day"]) == {
        "created": True,
        "schema_changed": False,
    }
    entry = cat.get_table("lakehouse", "orders")
    assert entry is not None
    assert entry["TableType"] == "EXTERNAL_TABLE"
    assert entry["Parameters"]["table_type"] == "DELTA"
    assert entry["StorageDescriptor"]["Location"] == "s3://lake/tables/orders"
    assert [(c["Name"], c["Type"]) for c in entry["StorageDescriptor"]["Columns"]] == [
        ("id", "bigint"),
        ("ts", "timestamp"),
    ]
    assert entry["PartitionKeys"] == [{"Name": "day", "Type": "date"}]

    glue = boto3.client("glue", region_name=REGION)
    versions_before = len(
        glue.get_table_versions(DatabaseName="lakehouse", TableName="orders")["TableVersions"]
    )
    same = cat.upsert_delta_table("lakehouse", "orders", "s3://lake/tables/orders", cols, ["day"])
    assert same == {"created": False, "schema_changed": False}
    # A no-op upsert must not add a Glue table version.
    assert (
        len(glue.get_table_versions(DatabaseName="lakehouse", TableName="orders")["TableVersions"])
        == versions_before
    )

    changed = cat.upsert_delta_table(
        "lakehouse", "orders", "s3://lake/tables/orders", [*cols, ("note", "string")], ["day"]
    )
    assert changed == {"created": False, "schema_changed": True}
    entry = cat.get_table("lakehouse", "orders")
    assert entry is not None
    assert [c["Name"] for c in entry["StorageDescriptor"]["Columns"]] == ["id", "ts", "note"]
    assert cat.list_tables("lakehouse") == ["orders"]
    assert cat.list_tables("nope") == []
    assert cat.get_table("lakehouse", "missing") is None


# --- SNS / EventBridge --------------------------------------------------------------------------


@pytest.mark.usefixtures("aws")
def test_notifier_alert_and_publish() -> None:
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts-q")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    notifier = SnsEventBridgeNotifier(REGION, topic)
    notifier.alert("orders: checks failed\n" + "x" * 200, {"run_id": "r1"})
    msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    body = json.loads(msgs[0]["Body"])
    assert json.loads(body["Message"]) == {"run_id": "r1"}
    assert len(body["Subject"]) <= 100
    assert body["Subject"].startswith("orders: checks failed x")

    notifier.publish("DatasetUpdated", {"dataset": "orders", "version": 3})

    failing: Any = mock.Mock()
    failing.put_events.return_value = {
        "FailedEntryCount": 1,
        "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow"}],
    }
    with pytest.raises(TransientError, match="ThrottlingException"):
        SnsEventBridgeNotifier(REGION, topic, events_client=failing).publish("DatasetUpdated", {})
    failing.put_events.return_value = {
        "FailedEntryCount": 1,
        "Entries": [{"ErrorCode": "MalformedDetail", "ErrorMessage": "bad"}],
    }
    with pytest.raises(LakehouseError, match="MalformedDetail") as info:
        SnsEventBridgeNotifier(REGION, topic, events_client=failing).publish("DatasetUpdated", {})
    assert not isinstance(info.value, TransientError)
    sent = failing.put_events.call_args.kwargs["Entries"][0]
    assert sent["Source"] == "lakehouse"
    assert sent["DetailType"] == "DatasetUpdated"


def test_alert_without_topic_is_an_error() -> None:
    with pytest.raises(LakehouseError, match="ALERT_TOPIC_ARN"):
        SnsEventBridgeNotifier(REGION, None).alert("x", {})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ok", "ok"),
        ("", "lakehouse alert"),
        ("a\nb\tc", "a b c"),
        ("é" * 3, "lakehouse alert"),
        ("y" * 150, "y" * 97 + "..."),
    ],
)
def test_sns_subject(raw: str, expected: str) -> None:
    assert sns_subject(raw) == expected


# --- S3 against the moto server (a separate process) ---------------------------------------------


@pytest.mark.s3
@pytest.mark.xdist_group("moto_s3")
def test_s3_object_store(s3_env: Any, tmp_path: Path) -> None:
    store = S3ObjectStore(REGION, endpoint_url=s3_env.endpoint_url)
    landing, quarantine = s3_env.buckets["landing"], s3_env.buckets["quarantine"]
    store.put_bytes(landing, "orders/a b.csv", b"id\n1\n", metadata={"reason": "late"})
    info = store.head(landing, "orders/a b.csv")
    assert (info.bucket, info.key, info.size) == (landing, "orders/a b.csv", 5)
    assert info.etag == "bc9280dfc1d4e67233f138f5bbbf0951"
    assert store.read_bytes(landing, "orders/a b.csv", max_bytes=2) == b"id"
    assert store.read_bytes(landing, "orders/a b.csv") == b"id\n1\n"
    assert store.exists(landing, "orders/a b.csv")
    assert not store.exists(landing, "nope")
    with pytest.raises(FileNotFoundError):
        store.head(landing, "nope")
    with pytest.raises(FileNotFoundError):
        store.read_bytes(landing, "nope")
    store.copy(landing, "orders/a b.csv", quarantine, "objects/orders/r1/a b.csv")
    assert store.metadata(quarantine, "objects/orders/r1/a b.csv") == {"reason": "late"}
    dest = store.download(quarantine, "objects/orders/r1/a b.csv", tmp_path / "d" / "x.csv")
    assert dest.read_bytes() == b"id\n1\n"
    assert list(tmp_path.joinpath("d").iterdir()) == [dest]
    src = tmp_path / "f.bin"
    src.write_bytes(b"z" * 1000)
    store.put_file(landing, "orders/f.bin", src)
    for i in range(3):
        store.put_bytes(landing, f"other/{i}", b"")
    assert list(store.list(landing, "orders/")) == ["orders/a b.csv", "orders/f.bin"]
    assert len(list(store.list(landing))) == 5
    assert store.uri(landing, "tables/orders/") == f"s3://{landing}/tables/orders"


@pytest.mark.s3
@pytest.mark.xdist_group("moto_s3")
def test_s3_copy_above_5_gib_uses_managed_copy(s3_env: Any) -> None:
    store = S3ObjectStore(REGION, endpoint_url=s3_env.endpoint_url)
    big = {"ContentLength": 6 * 1024**3, "ETag": '"x"'}
    with (
        mock.patch.object(store.client, "head_object", return_value=big),
        mock.patch.object(store.client, "copy") as managed,
        mock.patch.object(store.client, "copy_object") as single,
    ):
        store.copy("a-bucket", "k", "b-bucket", "k2")
    managed.assert_called_once_with({"Bucket": "a-bucket", "Key": "k"}, "b-bucket", "k2")
    single.assert_not_called()


def test_storage_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    opts = S3ObjectStore("eu-west-1", endpoint_url="http://127.0.0.1:5000").storage_options()
    assert opts == {
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
    }
    # No locking provider: delta-rs 1.6 commits with S3 conditional writes.
    assert not any("LOCKING" in k for k in opts)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert S3ObjectStore("eu-west-1").storage_options() == {"AWS_REGION": "eu-west-1"}


def test_factory_builds_aws_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERT_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:alerts")
    settings = Settings(
        LAKEHOUSE_BACKEND="aws", AWS_REGION="eu-west-1", LEASE_TABLE="L", RUN_LEDGER_TABLE="R"
    )
    adapters = build_adapters(settings)
    assert isinstance(adapters.objects, S3ObjectStore)
    assert isinstance(adapters.leases, DynamoDbLeaseStore)
    assert adapters.leases.table_name == "L"
    assert isinstance(adapters.catalog, GlueCatalog)
    assert isinstance(adapters.notifier, SnsEventBridgeNotifier)
    assert adapters.notifier.topic_arn == "arn:aws:sns:us-east-1:123456789012:alerts"
    assert isinstance(adapters.ledger, DynamoDbRunLedger)
    assert adapters.ledger.table_name == "R"
    assert adapters.objects.storage_options()["AWS_REGION"] == "eu-west-1"


# --- S3 object versions: every read pinned to the event's version -----------------------------------------


def _overwritten(s3_env: Any, versioned: bool) -> tuple[S3ObjectStore, str, dict[str, Any]]:
    """The landing bucket with one object put (its PutObject answer), then overwritten with other bytes."""
    client = s3_env.client()
    bucket = s3_env.buckets["landing"]
    if versioned:
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = client.put_object(Bucket=bucket, Key="orders/same.csv", Body=b"id\n1\n2\n")
    client.put_object(Bucket=bucket, Key="orders/same.csv", Body=b"id\n3\n")  # between event and read
    return S3ObjectStore(s3_env.region, s3_env.endpoint_url), bucket, first


@pytest.mark.s3
@pytest.mark.xdist_group("moto_s3")
def test_s3_versioned_reads_return_the_events_version_after_an_overwrite(s3_env: Any, tmp_path: Path) -> None:
    store, bucket, first = _overwritten(s3_env, versioned=True)
    version, etag = first["VersionId"], first["ETag"].strip('"')

    info = store.head(bucket, "orders/same.csv", version_id=version, etag=etag)
    assert (info.version_id, info.etag, info.size) == (version, etag, 7)
    assert store.read_bytes(bucket, "orders/same.csv", version_id=version) == b"id\n1\n2\n"
    assert store.read_bytes(bucket, "orders/same.csv", 3, version_id=version, etag=etag) == b"id\n"
    out = store.download(bucket, "orders/same.csv", tmp_path / "v1.csv", version_id=version, etag=etag)
    assert out.read_bytes() == b"id\n1\n2\n"
    store.copy(bucket, "orders/same.csv", s3_env.buckets["quarantine"], "q/same.csv", version_id=version)
    assert store.read_bytes(s3_env.buckets["quarantine"], "q/same.csv") == b"id\n1\n2\n"
    # Unpinned, the key reads as it is now.
    assert store.read_bytes(bucket, "orders/same.csv") == b"id\n3\n"

    # A version that is gone (deleted) or was never issued is ObjectChangedError, never other bytes.
    s3_env.client().delete_object(Bucket=bucket, Key="orders/same.csv", VersionId=version)
    with pytest.raises(ObjectChangedError, match=rf"orders/same.csv: version {version}.*own event and run"):
        store.head(bucket, "orders/same.csv", version_id=version)
    with pytest.raises(ObjectChangedError):
        store.download(bucket, "orders/same.csv", tmp_path / "gone.csv", version_id=version)
    with pytest.raises(ObjectChangedError):
        store.read_bytes(bucket, "orders/same.csv", version_id=version)
    assert not (tmp_path / "gone.csv").exists()


@pytest.mark.s3
@pytest.mark.xdist_group("moto_s3")
def test_s3_unversioned_reads_pinned_by_etag_fail_after_an_overwrite(s3_env: Any, tmp_path: Path) -> None:
    store, bucket, first = _overwritten(s3_env, versioned=False)
    etag = first["ETag"].strip('"')
    key = "orders/same.csv"

    for read in (
        lambda: store.head(bucket, key, etag=etag),
        lambda: store.read_bytes(bucket, key, etag=etag),
        lambda: store.read_bytes(bucket, key, 3, etag=etag),
        lambda: store.download(bucket, key, tmp_path / "x.csv", etag=etag),
        lambda: store.copy(bucket, key, s3_env.buckets["quarantine"], "q/x.csv", etag=etag),
    ):
        with pytest.raises(ObjectChangedError, match=rf"ETag {etag}.*412|ETag {etag}.*PreconditionFailed"):
            read()
    assert not (tmp_path / "x.csv").exists()
    assert not store.exists(s3_env.buckets["quarantine"], "q/x.csv")
    # The current bytes, pinned by their own ETag, read fine (also through the multipart download path).
    now = store.head(bucket, key)
    assert store.download(bucket, key, tmp_path / "now.csv", etag=now.etag).read_bytes() == b"id\n3\n"
    s3_env.client().delete_object(Bucket=bucket, Key=key)
    with pytest.raises(ObjectChangedError, match=r"404|NoSuchKey"):
        store.read_bytes(bucket, key, etag=now.etag)
    with pytest.raises(FileNotFoundError):  # unpinned: plain not-found, as before
        store.read_bytes(bucket, key)


@pytest.mark.s3
@pytest.mark.xdist_group("moto_s3")
@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_glue_job_reads_a_staged_copy_of_exactly_the_events_version(s3_env: Any, versioned: bool) -> None:
    pytest.importorskip("pyspark", reason="lakehouse.spark needs pyspark")
    from lakehouse.spark.runs import stage_pinned_source

    store, bucket, first = _overwritten(s3_env, versioned=versioned)
    lake = s3_env.buckets["lake"]
    from lakehouse.state import ManifestObject

    obj = ManifestObject(
        object_id="lineitem-obj1",
        bucket=bucket,
        key="orders/same.csv",
        version_id=first.get("VersionId"),
        etag=first["ETag"].strip('"'),
        ingested_at="2026-11-26T10:15:42Z",
        app_id="lakehouse:lineitem:x",
    )
    if versioned:
        uri = stage_pinned_source(obj, "lineitem-run1", lake, store)
        # One folder per object: two versions of one key may share a batch.
        assert uri == f"s3://{lake}/runs/lineitem-run1/source/lineitem-obj1/same.csv"
        assert store.read_bytes(lake, "runs/lineitem-run1/source/lineitem-obj1/same.csv") == b"id\n1\n2\n"
    else:
        with pytest.raises(ObjectChangedError, match="own event and run"):
            stage_pinned_source(obj, "lineitem-run1", lake, store)
        assert list(store.list(lake, "runs/")) == []
    # Nothing to pin (no version, no ETag): the job reads the object where it is, as before.
    unpinned = obj.model_copy(update={"version_id": None, "etag": ""})
    assert stage_pinned_source(unpinned, "lineitem-run1", lake, store) is None


# --- DynamoDB pending set: a drain's reads do not grow with the backlog ---------------------------


def _pending_table(name: str) -> Any:
    from test_handlers import template_table  # the table's keys and indexes as template.yaml declares

    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(TableName=name, **template_table("PendingObjectsTable"))
    return client


def _queue(store: Any, dataset: str, n: int, first_ns: int = 1000) -> list[str]:
    ids = []
    for i in range(n):
        # Ids in the opposite order of arrival: the table's sort key is not the arrival order.
        object_id = f"{dataset}-{n - i:06d}"
        store.add(
            {
                "dataset": dataset,
                "object_id": object_id,
                "arrived_ns": first_ns + i,
                "bucket": "b",
                "key": f"k{i}",
            }
        )
        ids.append(object_id)
    return ids


@pytest.mark.usefixtures("aws")
def test_pending_set_indexes_give_the_oldest_pending_and_a_drains_own_items() -> None:
    from lakehouse.adapters.aws import DynamoDbPendingSet

    _pending_table("pending")
    store = DynamoDbPendingSet("pending", REGION)
    ids = _queue(store, "orders", 7)
    _queue(store, "lineitem", 2)
    assert [i["object_id"] for i in store.oldest("orders", 3)] == ids[:3]
    assert store.claim("orders", ids[:2], "orders-drain-1") == ids[:2]
    assert store.claim("orders", ids[:3], "orders-drain-2") == [ids[2]]  # claimed items are not taken again
    assert [i["object_id"] for i in store.oldest("orders", 3)] == ids[3:6]
    assert sorted(i["object_id"] for i in store.claimed("orders", "orders-drain-1")) == sorted(ids[:2])
    # The drain id is matched whole: drain-1 is not a prefix match of drain-10.
    assert store.claimed("orders", "orders-drain-") == []
    assert {i["drain_id"] for i in store.claimed("orders")} == {"orders-drain-1", "orders-drain-2"}
    # A requeued item is pending again at its arrival position, in its isolation group.
    store.requeue("orders", [ids[1]], "g1", "split")
    oldest = store.oldest("orders", 2)
    assert [i["object_id"] for i in oldest] == [ids[1], ids[3]]
    assert oldest[0]["group"] == "g1"
    assert oldest[0]["status"] == "pending"
    assert [i["object_id"] for i in store.claimed("orders", "orders-drain-1")] == [ids[0]]
    store.remove("orders", [ids[0]])
    assert store.claimed("orders", "orders-drain-1") == []
    assert len(store.items("orders")) == 6


@pytest.mark.usefixtures("aws")
def test_a_drains_reads_of_the_pending_set_stay_bounded_with_a_large_backlog() -> None:
    """Before, ClaimBatch, kick and settle each read every pending item of the dataset (a consistent
    Query of the whole partition): with a backfill of millions queued, every drain read millions."""
    from lakehouse.adapters.aws import DynamoDbPendingSet

    client = _pending_table("pending")
    store = DynamoDbPendingSet("pending", REGION)
    ids = _queue(store, "orders", 300)
    read: list[int] = []
    store.client.meta.events.register(
        "after-call.dynamodb.Query", lambda parsed, **_: read.append(len(parsed.get("Items", [])))
    )
    batch = [i["object_id"] for i in store.oldest("orders", 11)]
    assert batch == ids[:11]
    store.claim("orders", batch[:10], "orders-drain-a")
    mine = store.claimed("orders", "orders-drain-a")
    assert store.oldest("orders", 1)[0]["object_id"] == ids[10]
    assert sorted(i["object_id"] for i in mine) == sorted(ids[:10])
    assert sum(read) <= 11 + 10 + 1, read
    assert len(client.scan(TableName="pending")["Items"]) == 300  # the backlog is all still there
