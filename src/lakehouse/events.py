"""Object-created events in the three shapes users send, normalised to one model.

1. SQS records whose body is an EventBridge "Object Created" event (what the deployed stack sends).
2. A plain EventBridge "Object Created" event.
3. Classic S3 notification records (`Records[].s3`), delivered directly or inside SQS.

Keys are decoded here, exactly once, as each source encodes them:

- S3 event notifications (`Records[].s3.object.key`) form-encode the key
  (application/x-www-form-urlencoded: a space is `+`, a literal `+` is `%2B`, `=` is `%3D`), so they
  are decoded with `unquote_plus`.
- EventBridge "Object Created" events (`detail.object.key`) do not form-encode: a `+` is a literal plus.
  Their keys are percent-decoded only (`unquote`: `%20` is a space, `%25` a percent sign), so that
  `orders/a+b.csv` stays `orders/a+b.csv` (docs/ARCHITECTURE.md, "Object keys in events").
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_plus

from pydantic import BaseModel, ConfigDict

from lakehouse.errors import InvalidInputError

if TYPE_CHECKING:
    from lakehouse.ports import ObjectInfo


class ObjectCreated(BaseModel):
    """One landed object."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    size: int = 0
    etag: str = ""
    version_id: str | None = None
    sequencer: str = ""
    event_time: str = ""

    @property
    def identity(self) -> str:
        """What makes two events the same object: version id, else sequencer, else ETag."""
        return self.version_id or self.sequencer or self.etag

    @classmethod
    def seen_now(cls, bucket: str, key: str, info: ObjectInfo) -> ObjectCreated:
        """The event an object found by a HEAD (a backfill, a local submit) would have had, timed now."""
        return cls(
            bucket=bucket,
            key=key,
            size=info.size,
            etag=info.etag,
            version_id=info.version_id,
            event_time=datetime.now(UTC).isoformat(timespec="milliseconds"),
        )


def _from_eventbridge(event: Mapping[str, Any]) -> ObjectCreated:
    detail = event.get("detail") or {}
    obj = detail.get("object") or {}
    bucket = (detail.get("bucket") or {}).get("name")
    if not bucket or "key" not in obj:
        raise InvalidInputError("EventBridge event lacks detail.bucket.name or detail.object.key")
    return ObjectCreated(
        bucket=bucket,
        key=unquote(obj["key"]),  # `+` is a literal plus here, unlike in S3 notifications
        size=int(obj.get("size") or 0),
        etag=str(obj.get("etag") or ""),
        version_id=obj.get("version-id") or None,
        sequencer=str(obj.get("sequencer") or ""),
        event_time=str(event.get("time") or ""),
    )


def _from_s3_record(record: Mapping[str, Any]) -> ObjectCreated:
    s3 = record["s3"]
    obj = s3.get("object") or {}
    return ObjectCreated(
        bucket=s3["bucket"]["name"],
        key=unquote_plus(obj["key"]),
        size=int(obj.get("size") or 0),
        etag=str(obj.get("eTag") or obj.get("etag") or ""),
        version_id=obj.get("versionId") or None,
        sequencer=str(obj.get("sequencer") or ""),
        event_time=str(record.get("eventTime") or ""),
    )


def _is_object_created(record: Mapping[str, Any]) -> bool:
    return str(record.get("eventName", "")).startswith("ObjectCreated:")


def parse_message(message: Mapping[str, Any]) -> list[ObjectCreated]:
    """Objects in one message: an EventBridge event or an S3 notification (test events are skipped)."""
    if message.get("source") == "aws.s3" or "detail-type" in message:
        if message.get("detail-type") != "Object Created":
            return []
        return [_from_eventbridge(message)]
    if "Records" in message:
        return [_from_s3_record(r) for r in message["Records"] if "s3" in r and _is_object_created(r)]
    if message.get("Event") == "s3:TestEvent":
        return []
    raise InvalidInputError(f"not an object-created event: keys {sorted(message)}")


def iter_sqs_bodies(event: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(messageId, parsed body) of each SQS record."""
    for record in event.get("Records", []):
        body = record.get("body", "")
        try:
            yield record.get("messageId", ""), json.loads(body)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"SQS message {record.get('messageId')} body is not JSON: {exc}") from exc


def is_sqs_event(event: Mapping[str, Any]) -> bool:
    records = event.get("Records") or []
    return bool(records) and all(r.get("eventSource") == "aws:sqs" for r in records)


_NAME_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def execution_name(dataset: str, obj: ObjectCreated) -> str:
    """Deterministic Step Functions execution name (≤ 80 chars): a duplicate event maps to it again."""
    digest = hashlib.sha256(f"{obj.bucket}\x00{obj.key}\x00{obj.identity}".encode()).hexdigest()[:40]
    return f"{_NAME_SAFE.sub('-', dataset)[:38]}-{digest}"


def rerun_name(dataset: str, run_id: str, txn_version: int) -> str:
    """Execution name of the `txn_version`-th application of the object that run `run_id` ingested."""
    digest = hashlib.sha256(f"{run_id}\x00rerun\x00{txn_version}".encode()).hexdigest()[:40]
    return f"{_NAME_SAFE.sub('-', dataset)[:38]}-{digest}"


def object_version(state: Mapping[str, Any]) -> str:
    """What identifies one version of an object for exactly-once: its version id where the bucket is
    versioned, else its ETag (the same bytes under the same key are the same object version). The
    sequencer is only a last resort for events that carry neither."""
    etag = str(state.get("etag") or "").strip('"')  # S3 quotes ETags in HEAD responses, not in events
    return str(state.get("version_id") or etag or state.get("sequencer") or "")


def app_id_for(dataset: str, bucket: str, key: str, version: str) -> str:
    """The Delta app transaction id of one source object (bucket, key, version id or ETag)."""
    digest = hashlib.sha256(f"{bucket}\x00{key}\x00{version}".encode()).hexdigest()[:32]
    return f"lakehouse:{dataset}:{digest}"


def run_input(dataset: str, obj: ObjectCreated) -> dict[str, Any]:
    """The state machine input; identical for identical objects (StartExecution is then idempotent)."""
    return {
        "run_id": execution_name(dataset, obj),
        "dataset": dataset,
        "bucket": obj.bucket,
        "key": obj.key,
        "version_id": obj.version_id,
        "etag": obj.etag,
        "size": obj.size,
        "sequencer": obj.sequencer,
        "event_time": obj.event_time,
    }


def started_at(state: Mapping[str, Any]) -> datetime:
    """When the run's object arrived (its event time), so a retried or re-routed commit stamps
    `_ingested_at` with the same instant, whichever engine writes it."""
    started = state.get("started_at") or state.get("event_time")
    if isinstance(started, str) and started:
        try:
            parsed = datetime.fromisoformat(started.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)
