"""AWS adapters (boto3): S3, DynamoDB leases and run ledger, Glue Data Catalog, SNS + EventBridge.

Clients are created lazily (a Lambda that never touches Glue does not pay for its client), with the
settings' region; the S3 client also takes the optional endpoint override. Other services honour boto3's
own `AWS_ENDPOINT_URL_<SERVICE>` variables. Throttling and 5xx answers become `TransientError`, which the
state machines retry with backoff; everything else propagates unchanged.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from lakehouse.adapters import columns_changed, delta_table_input
from lakehouse.errors import LakehouseError, LeaseHeldError, ObjectChangedError, TransientError
from lakehouse.ports import KeyPage, Lease, ObjectInfo

# CopyObject copies at most 5 GiB in one call; above that only a multipart copy works.
_COPY_OBJECT_MAX = 5 * 1024**3

_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServiceException",
        "InternalServiceError",
        "TransactionConflictException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ConcurrentModificationException",
    }
)
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})
# What S3 answers when a pinned read cannot be had: the version or key is gone (404, NoSuchVersion, a
# delete marker: 405), the ETag differs (412), or the version id is not one S3 ever issued (400).
_PIN_FAILED_CODES = _NOT_FOUND_CODES | frozenset(
    {"NoSuchVersion", "412", "PreconditionFailed", "405", "MethodNotAllowed", "400", "InvalidArgument"}
)


_CONNECTION_ERRORS = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


_SERVER_ERROR = 500  # HTTP 5xx: the service failed, a retry may succeed


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _CONNECTION_ERRORS):
        return True
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return _code(exc) in _TRANSIENT_CODES or status >= _SERVER_ERROR
    return False


@contextlib.contextmanager
def _translate(what: str) -> Iterator[None]:
    """Re-raise throttling/5xx/connection errors as TransientError so Step Functions retries them."""
    try:
        yield
    except (ClientError, *_CONNECTION_ERRORS) as exc:
        if _is_transient(exc):
            raise TransientError(f"{what}: {exc}") from exc
        raise


class _Clients:
    """Lazily created boto3 clients sharing one session, region and retry policy."""

    def __init__(self, region: str, endpoints: Mapping[str, str | None] | None = None) -> None:
        self.region = region
        self._endpoints = dict(endpoints or {})
        self._cache: dict[str, Any] = {}
        # Adaptive retries absorb short throttling bursts before we surface TransientError.
        self._config = Config(retries={"mode": "adaptive", "max_attempts": 5})

    def get(self, service: str) -> Any:
        if service not in self._cache:
            self._cache[service] = boto3.session.Session().client(
                service,
                region_name=self.region,
                endpoint_url=self._endpoints.get(service),
                config=self._config,
            )
        return self._cache[service]


def _pins(version_id: str | None, etag: str | None) -> dict[str, str]:
    """GetObject/HeadObject arguments that read exactly one version (or fail)."""
    pins: dict[str, str] = {}
    if version_id:
        pins["VersionId"] = version_id
    if etag:
        pins["IfMatch"] = f'"{etag.strip(chr(34))}"'
    return pins


def _raise_missing(exc: ClientError, bucket: str, key: str, version_id: str | None, etag: str | None) -> None:
    """Translate "not there" answers: ObjectChangedError for a pinned read, FileNotFoundError otherwise."""
    code = _code(exc)
    if (version_id or etag) and code in _PIN_FAILED_CODES:
        pin = f"version {version_id}" if version_id else "the version"
        if etag:
            pin += f" with ETag {etag}"
        raise ObjectChangedError(
            f"s3://{bucket}/{key}: {pin} named by the event can no longer be read (S3 answered {code}: "
            "overwritten or deleted); nothing was ingested from other bytes under this run's identity. "
            "A newer version has its own event and run."
        ) from exc
    if code in _NOT_FOUND_CODES:
        raise FileNotFoundError(f"no object {key!r} in bucket {bucket!r}") from exc


def _utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


class S3ObjectStore:
    """S3 buckets. `put_*` sets no encryption header: the bucket's default encryption (SSE) applies."""

    def __init__(self, region: str, endpoint_url: str | None = None, client: Any = None) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self._clients = _Clients(region, {"s3": endpoint_url})
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._clients.get("s3")
        return self._client

    def uri(self, bucket: str, key: str) -> str:
        return f"s3://{bucket}/{key.rstrip('/') or key}"

    def _head(
        self, bucket: str, key: str, version_id: str | None = None, etag: str | None = None
    ) -> dict[str, Any]:
        try:
            with _translate(f"HeadObject s3://{bucket}/{key}"):
                return dict(self.client.head_object(Bucket=bucket, Key=key, **_pins(version_id, etag)))
        except ClientError as exc:
            _raise_missing(exc, bucket, key, version_id, etag)
            raise

    def head(
        self, bucket: str, key: str, version_id: str | None = None, etag: str | None = None
    ) -> ObjectInfo:
        resp = self._head(bucket, key, version_id, etag)
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=int(resp["ContentLength"]),
            etag=str(resp.get("ETag", "")).strip('"'),
            version_id=resp.get("VersionId") or None,
        )

    def metadata(self, bucket: str, key: str) -> dict[str, str]:
        """The user metadata the object was put with (`x-amz-meta-*`, keys lower-cased by S3)."""
        return dict(self._head(bucket, key).get("Metadata", {}))

    def download(
        self,
        bucket: str,
        key: str,
        dest: Path,
        version_id: str | None = None,
        etag: str | None = None,
    ) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Download beside the destination and rename, so a failed transfer leaves no partial file behind.
        tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.part"
        try:
            with _translate(f"download s3://{bucket}/{key}"):
                if version_id is None and etag is None:
                    self.client.download_file(bucket, key, str(tmp))
                else:
                    self._download_pinned(bucket, key, tmp, version_id, etag)
            os.replace(tmp, dest)
        except ClientError as exc:
            _raise_missing(exc, bucket, key, version_id, etag)
            raise
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def _download_pinned(
        self, bucket: str, key: str, tmp: Path, version_id: str | None, etag: str | None
    ) -> None:
        """A (multipart, parallel) download of exactly the pinned version: the transfer manager is given
        the expected size and ETag, so every ranged GET carries `If-Match` (and `VersionId` if pinned)."""
        from boto3.s3.transfer import TransferConfig, create_transfer_manager
        from s3transfer.subscribers import BaseSubscriber

        info = self.head(bucket, key, version_id, etag)

        class Pin(BaseSubscriber):  # type: ignore[misc]
            def on_queued(self, future: Any, **kwargs: Any) -> None:
                future.meta.provide_transfer_size(info.size)
                future.meta.provide_object_etag(f'"{info.etag}"')

        extra = {"VersionId": version_id} if version_id else {}
        with create_transfer_manager(self.client, TransferConfig()) as manager:
            manager.download(bucket, key, str(tmp), extra_args=extra, subscribers=[Pin()]).result()

    def read_bytes(
        self,
        bucket: str,
        key: str,
        max_bytes: int | None = None,
        version_id: str | None = None,
        etag: str | None = None,
    ) -> bytes:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, **_pins(version_id, etag)}
        if max_bytes is not None:
            if max_bytes <= 0:
                return b""
            kwargs["Range"] = f"bytes=0-{max_bytes - 1}"
        try:
            with _translate(f"GetObject s3://{bucket}/{key}"):
                body = self.client.get_object(**kwargs)["Body"]
                try:
                    return bytes(body.read())
                finally:
                    body.close()
        except ClientError as exc:
            _raise_missing(exc, bucket, key, version_id, etag)
            raise

    def put_bytes(
        self, bucket: str, key: str, data: bytes, metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": data}
        if metadata:
            kwargs["Metadata"] = dict(metadata)
        with _translate(f"PutObject s3://{bucket}/{key}"):
            resp = self.client.put_object(**kwargs)
        return ObjectInfo(
            bucket, key, len(data), str(resp.get("ETag", "")).strip('"'), resp.get("VersionId") or None
        )

    def put_file(self, bucket: str, key: str, src: Path) -> None:
        # upload_file switches to multipart above its threshold, so large files never hit PutObject's limit.
        with _translate(f"upload s3://{bucket}/{key}"):
            self.client.upload_file(str(src), bucket, key)

    def copy(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        version_id: str | None = None,
        etag: str | None = None,
    ) -> None:
        # The pinned HEAD fails fast (and the size picks the API); the copy itself carries the pins too.
        size = self.head(src_bucket, src_key, version_id, etag).size
        source = {"Bucket": src_bucket, "Key": src_key, **({"VersionId": version_id} if version_id else {})}
        extra = {"CopySourceIfMatch": f'"{etag}"'} if etag else {}
        try:
            with _translate(f"copy s3://{src_bucket}/{src_key} to s3://{dst_bucket}/{dst_key}"):
                if size <= _COPY_OBJECT_MAX:
                    # One server-side request; MetadataDirective COPY keeps the user metadata.
                    self.client.copy_object(
                        Bucket=dst_bucket, Key=dst_key, CopySource=source, MetadataDirective="COPY", **extra
                    )
                # boto3's managed copy does UploadPartCopy in parallel parts, the only way past 5 GiB.
                elif extra:
                    self.client.copy(source, dst_bucket, dst_key, ExtraArgs=extra)
                else:
                    self.client.copy(source, dst_bucket, dst_key)
        except ClientError as exc:
            _raise_missing(exc, src_bucket, src_key, version_id, etag)
            raise

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self._head(bucket, key)
        except FileNotFoundError:
            return False
        return True

    def list(self, bucket: str, prefix: str = "") -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        with _translate(f"ListObjectsV2 s3://{bucket}/{prefix}"):
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    yield str(obj["Key"])

    def list_page(self, bucket: str, prefix: str, start_after: str, max_keys: int) -> KeyPage:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": max_keys}
        if start_after:
            kwargs["StartAfter"] = start_after
        with _translate(f"ListObjectsV2 s3://{bucket}/{prefix}"):
            page = self.client.list_objects_v2(**kwargs)
        keys = [str(obj["Key"]) for obj in page.get("Contents", [])]
        return keys, bool(page.get("IsTruncated"))

    def storage_options(self) -> dict[str, str]:
        """Options for deltalake (delta-rs 1.6) on this S3.

        No locking provider: delta-rs 1.6 commits with S3 conditional writes (`If-None-Match`), and its
        `conditional_put` already defaults to `etag`, which AWS, MinIO and moto's server all honour.
        Credentials are passed only if the environment has them (Lambda does); otherwise delta-rs uses its
        own credential chain (instance/container role, web identity).
        """
        opts = {"AWS_REGION": self.region}
        if self.endpoint_url:
            opts["AWS_ENDPOINT_URL"] = self.endpoint_url
            if self.endpoint_url.startswith("http://"):
                opts["AWS_ALLOW_HTTP"] = "true"
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            value = os.environ.get(name)
            if value:
                opts[name] = value
        return opts


class _DynamoDbTable:
    """One DynamoDB table, its client created on first use (a Lambda cold start pays only for what runs)."""

    def __init__(self, table_name: str, region: str, client: Any = None) -> None:
        self.table_name = table_name
        self._clients = _Clients(region)
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._clients.get("dynamodb")
        return self._client


class DynamoDbLeaseStore(_DynamoDbTable):
    """Leases in a DynamoDB table keyed by `table_name` (S), with TTL enabled on the `ttl` attribute.

    TTL only tidies up (DynamoDB deletes expired items within days); correctness comes from the
    `expires_at < :now` condition, which lets a new owner take over an expired lease at once.
    """

    def __init__(
        self,
        table_name: str,
        region: str,
        client: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(table_name, region, client)
        self._clock = clock

    def acquire(self, table: str, owner: str, ttl_seconds: int) -> Lease:
        now = self._clock()
        expires_at = now + ttl_seconds
        item = {
            "table_name": {"S": table},
            "owner": {"S": owner},
            "expires_at": {"N": repr(expires_at)},
            "acquired_at": {"N": repr(now)},
            "ttl": {"N": str(math.ceil(expires_at))},
        }
        try:
            with _translate(f"acquire lease on {table!r}"):
                self.client.put_item(
                    TableName=self.table_name,
                    Item=item,
                    ConditionExpression=_ACQUIRE_CONDITION,
                    ExpressionAttributeNames={"#owner": "owner"},
                    ExpressionAttributeValues={":now": {"N": repr(now)}, ":owner": {"S": owner}},
                    # The holder comes back with the failure, so no second read (and no race) is needed.
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            old = exc.response.get("Item")
            holder = _lease_from_item(old) if old else self.get(table)
            if holder is None:
                raise LeaseHeldError(f"table {table!r} is leased by another run") from exc
            raise LeaseHeldError(
                f"table {table!r} is leased by {holder.owner!r} until {_utc_iso(holder.expires_at)}"
            ) from exc
        return Lease(table=table, owner=owner, expires_at=expires_at)

    def release(self, table: str, owner: str) -> bool:
        try:
            with _translate(f"release lease on {table!r}"):
                self.client.delete_item(
                    TableName=self.table_name,
                    Key={"table_name": {"S": table}},
                    ConditionExpression="#owner = :owner",
                    ExpressionAttributeNames={"#owner": "owner"},
                    ExpressionAttributeValues={":owner": {"S": owner}},
                )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get(self, table: str) -> Lease | None:
        with _translate(f"read lease on {table!r}"):
            resp = self.client.get_item(
                TableName=self.table_name, Key={"table_name": {"S": table}}, ConsistentRead=True
            )
        item = resp.get("Item")
        return _lease_from_item(item) if item else None


_ACQUIRE_CONDITION = "attribute_not_exists(table_name) OR expires_at < :now OR #owner = :owner"


def _lease_from_item(item: Mapping[str, Any]) -> Lease:
    return Lease(
        table=item["table_name"]["S"], owner=item["owner"]["S"], expires_at=float(item["expires_at"]["N"])
    )


class GlueCatalog:
    """Delta tables in the Glue Data Catalog, readable by Athena natively (`table_type=DELTA`)."""

    def __init__(self, region: str, client: Any = None) -> None:
        self._clients = _Clients(region)
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._clients.get("glue")
        return self._client

    def upsert_delta_table(
        self,
        database: str,
        table: str,
        location: str,
        columns: list[tuple[str, str]],
        partition_keys: list[str],
    ) -> dict[str, Any]:
        table_input = delta_table_input(table, location, columns, partition_keys)
        old = self.get_table(database, table)
        if old is None:
            try:
                self._create(database, table_input)
                return {"created": True, "schema_changed": False}
            except ClientError as exc:
                # Another run created it between our read and write: fall through to the update path.
                if _code(exc) != "AlreadyExistsException":
                    raise
                old = self.get_table(database, table) or {}
        schema_changed = columns_changed(old, table_input)
        location_changed = old.get("StorageDescriptor", {}).get("Location") != location
        params = old.get("Parameters", {})
        params_ok = all(params.get(k) == v for k, v in table_input["Parameters"].items())
        # Skip no-op updates: every UpdateTable adds a Glue table version, and those are capped.
        if schema_changed or location_changed or not params_ok:
            # Keep parameters others added (e.g. by a crawler); ours win on conflict.
            table_input["Parameters"] = {**params, **table_input["Parameters"]}
            with _translate(f"UpdateTable {database}.{table}"):
                self.client.update_table(DatabaseName=database, TableInput=table_input)
        return {"created": False, "schema_changed": schema_changed}

    def _create(self, database: str, table_input: dict[str, Any]) -> None:
        try:
            with _translate(f"CreateTable {database}.{table_input['Name']}"):
                self.client.create_table(DatabaseName=database, TableInput=table_input)
        except ClientError as exc:
            if _code(exc) != "EntityNotFoundException":
                raise
            # The database itself is missing (a fresh local/moto account; the template creates it in AWS).
            with _translate(f"CreateDatabase {database}"), contextlib.suppress(ClientError):
                self.client.create_database(DatabaseInput={"Name": database})
            with _translate(f"CreateTable {database}.{table_input['Name']}"):
                self.client.create_table(DatabaseName=database, TableInput=table_input)

    def get_table(self, database: str, table: str) -> dict[str, Any] | None:
        try:
            with _translate(f"GetTable {database}.{table}"):
                return dict(self.client.get_table(DatabaseName=database, Name=table)["Table"])
        except ClientError as exc:
            if _code(exc) == "EntityNotFoundException":
                return None
            raise

    def list_tables(self, database: str) -> list[str]:
        names: list[str] = []
        try:
            with _translate(f"GetTables {database}"):
                for page in self.client.get_paginator("get_tables").paginate(DatabaseName=database):
                    names.extend(t["Name"] for t in page.get("TableList", []))
        except ClientError as exc:
            if _code(exc) == "EntityNotFoundException":
                return []
            raise
        return sorted(names)


_PRINTABLE_ASCII = range(32, 127)
_SNS_SUBJECT_MAX = 100  # characters (SNS Publish)


def sns_subject(subject: str) -> str:
    """An SNS-valid subject: printable ASCII, one line, at most 100 characters, never empty."""
    clean = "".join(ch if ord(ch) in _PRINTABLE_ASCII else " " for ch in subject)
    clean = " ".join(clean.split())
    if len(clean) > _SNS_SUBJECT_MAX:
        clean = clean[: _SNS_SUBJECT_MAX - 3].rstrip() + "..."
    return clean or "lakehouse alert"


class SnsEventBridgeNotifier:
    """Alerts to an SNS topic, events to an EventBridge bus with source `lakehouse`."""

    SOURCE = "lakehouse"

    def __init__(
        self,
        region: str,
        topic_arn: str | None,
        event_bus_name: str = "default",
        sns_client: Any = None,
        events_client: Any = None,
    ) -> None:
        self.topic_arn = topic_arn
        self.event_bus_name = event_bus_name
        self._clients = _Clients(region)
        self._sns = sns_client
        self._events = events_client

    def alert(self, subject: str, message: Mapping[str, Any]) -> None:
        if not self.topic_arn:
            # Dropping an alert silently would hide exactly the failures it is about.
            raise LakehouseError("no SNS topic configured for alerts (ALERT_TOPIC_ARN is empty)")
        if self._sns is None:
            self._sns = self._clients.get("sns")
        with _translate("SNS Publish"):
            self._sns.publish(
                TopicArn=self.topic_arn,
                Subject=sns_subject(subject),
                Message=json.dumps(dict(message), default=str, sort_keys=True),
            )

    def publish(self, detail_type: str, detail: Mapping[str, Any]) -> None:
        if self._events is None:
            self._events = self._clients.get("events")
        with _translate("EventBridge PutEvents"):
            resp = self._events.put_events(
                Entries=[
                    {
                        "Source": self.SOURCE,
                        "DetailType": detail_type,
                        "Detail": json.dumps(dict(detail), default=str, sort_keys=True),
                        "EventBusName": self.event_bus_name,
                    }
                ]
            )
        # PutEvents answers 200 even when an entry is rejected; the failure is only in the body.
        if resp.get("FailedEntryCount", 0):
            failed = [e for e in resp.get("Entries", []) if e.get("ErrorCode")]
            code = failed[0].get("ErrorCode", "") if failed else ""
            text = f"EventBridge rejected {detail_type!r}: {failed}"
            if code in _TRANSIENT_CODES or not code:
                raise TransientError(text)
            raise LakehouseError(text)


class DynamoDbRunLedger(_DynamoDbTable):
    """Run records in a DynamoDB table keyed by `run_id` (S).

    The record is stored as one JSON string (`record`), so floats and nested values need no DynamoDB
    type mapping; `status`, `dataset` and `updated_at` are copied to top-level attributes for the console.
    """

    def put(self, run_id: str, record: Mapping[str, Any]) -> None:
        body = {**dict(record), "run_id": run_id}
        body.setdefault("updated_at", datetime.now(tz=UTC).isoformat())
        item: dict[str, Any] = {
            "run_id": {"S": run_id},
            "record": {"S": json.dumps(body, default=str)},
            "updated_at": {"S": str(body["updated_at"])},
        }
        for attr in ("status", "dataset"):
            if isinstance(body.get(attr), str) and body[attr]:
                item[attr] = {"S": body[attr]}
        with _translate(f"put run {run_id}"):
            self.client.put_item(TableName=self.table_name, Item=item)

    def get(self, run_id: str) -> dict[str, Any] | None:
        with _translate(f"get run {run_id}"):
            resp = self.client.get_item(TableName=self.table_name, Key={"run_id": {"S": run_id}})
        item = resp.get("Item")
        if not item:
            return None
        data = json.loads(item["record"]["S"])
        return data if isinstance(data, dict) else None

    def list(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recently updated runs first (a Scan: the ledger is small and this is for humans)."""
        records: list[dict[str, Any]] = []
        with _translate("scan runs"):
            for page in self.client.get_paginator("scan").paginate(TableName=self.table_name):
                for item in page.get("Items", []):
                    data = json.loads(item["record"]["S"])
                    if isinstance(data, dict):
                        records.append(data)
        records.sort(key=lambda r: str(r.get("updated_at", "")), reverse=True)
        return records[:limit]


class DynamoDbPendingSet(_DynamoDbTable):
    """The pending set in a DynamoDB table keyed by `dataset` (S, hash) and `object_id` (S, range).

    The item is stored as one JSON string (`item`) with `status` and `drain_id` as top-level attributes,
    because the conditions test them: `add` creates only (attribute_not_exists), `claim` takes only a
    `pending` item. Finished items are deleted, so a Query reads only live items.

    Two sparse local secondary indexes keep a drain's reads independent of the backlog (a backfill may
    queue millions): `pending_by_arrival` holds only pending items, sorted by `pending_at`
    ("<arrived_ns, 20 digits>#<object_id>"), so the next batch is the first page; `claimed_by_drain`
    holds only claimed items, sorted by `claimed_by` ("<drain_id>#<object_id>"), so a drain finds its
    own items with `begins_with`. Local indexes, unlike global ones, can be read consistently.
    """

    PENDING_INDEX = "pending_by_arrival"
    CLAIMED_INDEX = "claimed_by_drain"

    @staticmethod
    def _key(dataset: str, object_id: str) -> dict[str, Any]:
        return {"dataset": {"S": dataset}, "object_id": {"S": object_id}}

    def add(self, item: Mapping[str, Any]) -> bool:
        body = dict(item)
        arrival = f"{int(body.get('arrived_ns') or 0):020d}#{body['object_id']}"
        record: dict[str, Any] = {
            **self._key(str(body["dataset"]), str(body["object_id"])),
            "item": {"S": json.dumps(body, default=str)},
            "status": {"S": str(body.get("status") or "pending")},
            "arrival": {"S": arrival},
        }
        if record["status"]["S"] == "pending":
            record["pending_at"] = {"S": arrival}
        try:
            with _translate(f"add pending {body['object_id']}"):
                self.client.put_item(
                    TableName=self.table_name,
                    Item=record,
                    ConditionExpression="attribute_not_exists(object_id)",
                )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    @staticmethod
    def _decode(raw: Mapping[str, Any]) -> dict[str, Any] | None:
        data = json.loads(raw["item"]["S"])
        if not isinstance(data, dict):
            return None
        data["status"] = raw.get("status", {}).get("S", data.get("status"))
        data["drain_id"] = raw.get("drain_id", {}).get("S")
        if "group" in raw:
            data["group"] = raw["group"].get("S")
        if "note" in raw:
            data["note"] = raw["note"].get("S")
        if "txn_version" in raw:
            data["txn_version"] = int(raw["txn_version"]["N"])
        return data

    def items(self, dataset: str) -> list[dict[str, Any]]:
        return self._query(dataset, "pending")

    def _query(self, dataset: str, what: str, limit: int | None = None, **query: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        condition = query.pop("KeyConditionExpression", "dataset = :d")
        values = {":d": {"S": dataset}, **query.pop("ExpressionAttributeValues", {})}
        with _translate(f"list {what} {dataset}"):
            pages = self.client.get_paginator("query").paginate(
                TableName=self.table_name,
                KeyConditionExpression=condition,
                ExpressionAttributeValues=values,
                ConsistentRead=True,
                PaginationConfig={"PageSize": min(limit, 1000)} if limit else {},
                **query,
            )
            for page in pages:
                items.extend(d for raw in page.get("Items", []) if (d := self._decode(raw)) is not None)
                if limit is not None and len(items) >= limit:
                    return items[:limit]
        return items

    def oldest(self, dataset: str, limit: int) -> list[dict[str, Any]]:
        return self._query(dataset, "pending", limit, IndexName=self.PENDING_INDEX, ScanIndexForward=True)

    def claimed(self, dataset: str, drain_id: str | None = None) -> list[dict[str, Any]]:
        if drain_id is None:
            return self._query(dataset, "claimed", IndexName=self.CLAIMED_INDEX)
        return self._query(
            dataset,
            f"claimed by {drain_id}",
            IndexName=self.CLAIMED_INDEX,
            KeyConditionExpression="dataset = :d AND begins_with(claimed_by, :p)",
            ExpressionAttributeValues={":p": {"S": f"{drain_id}#"}},
        )

    def claim(self, dataset: str, object_ids: list[str], drain_id: str) -> list[str]:
        claimed = []
        for object_id in object_ids:
            try:
                with _translate(f"claim pending {object_id}"):
                    self.client.update_item(
                        TableName=self.table_name,
                        Key=self._key(dataset, object_id),
                        UpdateExpression=(
                            "SET #s = :claimed, drain_id = :drain, claimed_by = :by REMOVE pending_at"
                        ),
                        ConditionExpression="#s = :pending",
                        ExpressionAttributeNames={"#s": "status"},
                        ExpressionAttributeValues={
                            ":claimed": {"S": "claimed"},
                            ":pending": {"S": "pending"},
                            ":drain": {"S": drain_id},
                            ":by": {"S": f"{drain_id}#{object_id}"},
                        },
                    )
            except ClientError as exc:
                if _code(exc) == "ConditionalCheckFailedException":
                    continue
                raise
            claimed.append(object_id)
        return claimed

    def requeue(
        self,
        dataset: str,
        object_ids: list[str],
        group: str | None,
        note: str | None,
        txn_versions: Mapping[str, int] | None = None,
    ) -> None:
        versions = dict(txn_versions or {})
        for object_id in object_ids:
            values: dict[str, Any] = {":pending": {"S": "pending"}}
            sets = ["#s = :pending", "pending_at = arrival"]  # back in the pending index, in arrival order
            if group:
                sets.append("#g = :group")
                values[":group"] = {"S": group}
            if note:
                sets.append("note = :note")
                values[":note"] = {"S": note[:1000]}
            if object_id in versions:
                sets.append("txn_version = :v")
                values[":v"] = {"N": str(versions[object_id])}
            update = "SET " + ", ".join(sets) + " REMOVE drain_id, claimed_by" + ("" if group else ", #g")
            with _translate(f"requeue pending {object_id}"):
                self.client.update_item(
                    TableName=self.table_name,
                    Key=self._key(dataset, object_id),
                    UpdateExpression=update,
                    ConditionExpression="attribute_exists(object_id)",
                    ExpressionAttributeNames={"#s": "status", "#g": "group"},
                    ExpressionAttributeValues=values,
                )

    def remove(self, dataset: str, object_ids: list[str]) -> None:
        for object_id in object_ids:
            with _translate(f"remove pending {object_id}"):
                self.client.delete_item(TableName=self.table_name, Key=self._key(dataset, object_id))
