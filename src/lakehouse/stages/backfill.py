"""Backfill: objects that already sit in the landing bucket, into their datasets' pending sets.

One flow for AWS (`functions/backfill_landing`) and the laptop (`lakehouse backfill`): list a page of
keys (ListObjectsV2 with StartAfter), pin each key's *current* version (HeadObject: its version id, else
its ETag, exactly as an object-created event names it), map it to its dataset by the contracts' landing
prefixes, and enqueue it through the very code path of `on_object_created` (`drain.enqueue`). The object
id is the deterministic name of the object version, so the pending set's conditional put and the run
ledger make the backfill exactly once with respect to live ingestion: a version that is pending, claimed
or processed is not queued again, and one whose app transaction is in the table adds nothing. Each page
kicks every dataset it touched once.

A page is at most 1,000 keys (S3's page size). `backfill` pages on until the listing ends or the time
budget (a Lambda's remaining time) would not fit another page, then returns the continuation token: the
last key it finished (S3 `StartAfter`). Invoking again with that token continues; a page that failed
half-way is simply done again (enqueue is idempotent).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field

from lakehouse.errors import ContractError, InvalidInputError, ObjectChangedError
from lakehouse.events import ObjectCreated
from lakehouse.stages.drain import enqueue, kick
from lakehouse.stages.runtime import Runtime, parse_model
from lakehouse.stages.start import PipelineStarter

logger = Logger(child=True)

MAX_KEYS = 1000  # ListObjectsV2's largest page
SAMPLE = 20  # unknown keys named in a result (the count has them all)
# Stop when the time left is below this many times the slowest page so far, plus a fixed margin.
_PAGE_FACTOR = 2.0
_MARGIN_S = 10.0


class BackfillRequest(BaseModel):
    """The event of BackfillLandingFunction (and what `lakehouse backfill` builds)."""

    model_config = ConfigDict(extra="forbid")

    prefix: str = Field("", description="only keys under this prefix of the landing bucket")
    dataset: str | None = Field(None, description="only this dataset's objects (default prefix: its own)")
    continuation_token: str | None = Field(None, description="where the previous invocation stopped")
    max_keys: int = Field(MAX_KEYS, ge=1, le=MAX_KEYS, description="keys per ListObjectsV2 page")


class BackfilledObject(BaseModel):
    """One listed key that belongs to a dataset."""

    key: str
    dataset: str
    object_id: str
    queued: bool = Field(description="False: already pending, claimed or processed (nothing added)")


class BackfillResult(BaseModel):
    """What one invocation did; `continuation_token` is None when the listing is done."""

    bucket: str
    prefix: str
    dataset: str | None = None
    pages: int = 0
    listed: int = 0
    queued: int = 0
    already: int = Field(0, description="objects pending, claimed or processed before: not queued again")
    unknown: int = Field(0, description="keys no dataset contract claims (skipped)")
    unknown_keys: list[str] = Field(default_factory=list, description=f"the first {SAMPLE} unknown keys")
    skipped: int = Field(0, description="folder markers, other datasets' keys, keys gone since the listing")
    drains: dict[str, str] = Field(default_factory=dict, description="dataset -> the drain last kicked")
    continuation_token: str | None = None
    done: bool = False


class _Page(BaseModel):
    objects: list[BackfilledObject] = Field(default_factory=list)
    unknown: list[str] = Field(default_factory=list)
    skipped: int = 0
    last_key: str = ""
    more: bool = False


def parse_request(event: Any) -> BackfillRequest:
    """The event as a `BackfillRequest` (InvalidInputError naming a bad field); `{}` backfills everything."""
    return parse_model(BackfillRequest, event if event is not None else {}, "backfill_landing event")


def _prefix(rt: Runtime, request: BackfillRequest) -> str:
    if request.dataset is None:
        return request.prefix
    contract = rt.contract(request.dataset)  # ContractError naming the unknown dataset
    own = contract.landing_prefix
    if not request.prefix:
        return own
    if not (request.prefix.startswith(own) or own.startswith(request.prefix)):
        raise InvalidInputError(
            f"backfill: prefix {request.prefix!r} holds no object of dataset {request.dataset} "
            f"(its landing prefix is {own!r})"
        )
    return request.prefix if len(request.prefix) > len(own) else own


def _one(rt: Runtime, bucket: str, key: str, dataset: str | None) -> BackfilledObject | str | None:
    """Enqueue one key: the object, or `"unknown"`, or None (skipped)."""
    if key.endswith("/"):
        return None  # a "folder" marker, not a file
    try:
        contract = rt.contracts.for_key(key)
    except ContractError:
        return "unknown"
    if dataset is not None and contract.name != dataset:
        return None
    try:
        info = rt.adapters.objects.head(bucket, key)
    except (FileNotFoundError, ObjectChangedError):
        logger.info("object gone since the listing", extra={"key": key})
        return None
    obj = ObjectCreated.seen_now(bucket, key, info)
    object_id, queued = enqueue(rt, contract.name, obj)
    return BackfilledObject(key=key, dataset=contract.name, object_id=object_id, queued=queued)


def backfill_page(rt: Runtime, request: BackfillRequest, start_after: str, *, workers: int = 1) -> _Page:
    """One listing page: each key enqueued (in `workers` threads; S3 and DynamoDB calls are I/O)."""
    bucket = rt.settings.landing_bucket
    keys, more = rt.adapters.objects.list_page(bucket, _prefix(rt, request), start_after, request.max_keys)
    page = _Page(last_key=keys[-1] if keys else start_after, more=more and bool(keys))

    def one(key: str) -> BackfilledObject | str | None:
        return _one(rt, bucket, key, request.dataset)

    if workers > 1 and len(keys) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(one, keys))
    else:
        outcomes = [one(k) for k in keys]
    for key, outcome in zip(keys, outcomes, strict=True):
        if isinstance(outcome, BackfilledObject):
            page.objects.append(outcome)
        elif outcome == "unknown":
            page.unknown.append(key)
        else:
            page.skipped += 1
    return page


def _add(result: BackfillResult, page: _Page) -> None:
    result.pages += 1
    result.listed += len(page.objects) + len(page.unknown) + page.skipped
    result.queued += sum(1 for o in page.objects if o.queued)
    result.already += sum(1 for o in page.objects if not o.queued)
    result.unknown += len(page.unknown)
    result.unknown_keys.extend(page.unknown[: max(0, SAMPLE - len(result.unknown_keys))])
    result.skipped += page.skipped


def _kick(rt: Runtime, dataset: str, starter: PipelineStarter) -> str | None:
    """`drain.kick` unless the table's lease is held: the holder's end kicks the next drain, and a kick
    reads the whole pending set, which a backfill of millions of objects must not do once per page.
    (A holder that a crashed kick never started is the sweep's to restart, lakehouse.stages.sweep.)"""
    lease = rt.adapters.leases.get(dataset)
    if lease is not None and lease.expires_at > time.time():
        return None
    drain = kick(rt, dataset, starter)
    return str(drain["run_id"]) if drain is not None else None


def _warm(rt: Runtime) -> None:
    """Create the adapters' boto3 clients on this thread: creating them in several threads at once from
    boto3's default session is not thread-safe."""
    for adapter in (rt.adapters.objects, rt.adapters.ledger, rt.adapters.pending, rt.adapters.leases):
        getattr(adapter, "client", None)


def backfill(
    rt: Runtime,
    request: BackfillRequest,
    starter: PipelineStarter,
    *,
    time_left: Callable[[], float] | None = None,
    on_page: Callable[[list[BackfilledObject]], None] | None = None,
    workers: int = 1,
) -> BackfillResult:
    """Enqueue the landing bucket's objects page by page, kicking each touched dataset's drain once per
    page, until the listing ends or `time_left()` (seconds) would not fit another page."""
    bucket = rt.settings.landing_bucket
    result = BackfillResult(bucket=bucket, prefix=_prefix(rt, request), dataset=request.dataset)
    start_after = request.continuation_token or ""
    slowest = 0.0
    if workers > 1:
        _warm(rt)
    while True:
        began = time.monotonic()
        page = backfill_page(rt, request, start_after, workers=workers)
        for dataset in sorted({o.dataset for o in page.objects}):
            drain = _kick(rt, dataset, starter)
            if drain is not None:
                result.drains[dataset] = drain
        _add(result, page)
        if on_page is not None:
            on_page(page.objects)
        if page.unknown:
            logger.warning("keys no dataset contract claims", extra={"keys": page.unknown[:SAMPLE]})
        start_after = page.last_key
        slowest = max(slowest, time.monotonic() - began)
        if not page.more:
            result.done = True
            return result
        if time_left is not None and time_left() < _PAGE_FACTOR * slowest + _MARGIN_S:
            result.continuation_token = start_after
            return result
