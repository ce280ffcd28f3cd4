"""The pending set and drains (docs/ARCHITECTURE.md, "Pending set and drains").

Arrivals do not start one run each. `enqueue` records the object version in its dataset's pending set
(a conditional put: a re-delivered event adds nothing) and `kick` starts the dataset's drain, unless
one holds the table's lease already. A drain is an IngestStateMachine execution without an object in
its input: `ClaimBatch` takes a batch from the pending set, the batch is committed in one Delta
transaction (one app transaction per object version), checked, and `FinishBatch` settles each object.
A failed batch of several objects is split (`SplitBatch`) and requeued, so the bad object ends up alone,
is quarantined with its reason, and the others commit. Whoever ends a drain (`settle_drain`, at the end
of every execution) kicks the next one, so an object that arrived during a drain is never stranded.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from aws_lambda_powertools import Logger

from lakehouse.errors import InvalidInputError, LeaseHeldError
from lakehouse.events import ObjectCreated, execution_name
from lakehouse.stages.runtime import RunState, Runtime, parse_model, started_at
from lakehouse.stages.start import PipelineStarter
from lakehouse.state import (
    Batch,
    BatchObject,
    BatchOutcome,
    GlueManifest,
    ManifestObject,
    PendingObject,
    RunInput,
    RunRecord,
    RunStatus,
)

logger = Logger(child=True)

DRAIN_MARK = "-drain-"
# Ledger statuses of an object version that is queued or being taken: any other status means it was
# processed, and a re-delivered event for it is not queued again (as Step Functions refuses an execution
# name it has seen); `lakehouse rerun` applies a rolled-back or quarantined object once more.
IN_FLIGHT: frozenset[str] = frozenset({"PENDING", "STARTED", "RUNNING"})
# An object's own final status, which the end of its drain keeps (any other takes the drain's outcome).
_SETTLED: frozenset[str] = frozenset({"QUARANTINED", "DUPLICATE", "SUCCEEDED"})
_OBJECT_FIELDS = ("bucket", "key", "version_id", "etag", "size", "sequencer", "event_time", "txn_version")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_drain_id(dataset: str) -> str:
    """A fresh execution name for a drain of `dataset` (≤ 80 characters of [A-Za-z0-9_-])."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return f"{dataset[:40]}{DRAIN_MARK}{stamp}-{uuid.uuid4().hex[:8]}"


def is_drain(run_id: str) -> bool:
    return DRAIN_MARK in run_id


def ledger_object(rt: Runtime, dataset: str, obj: BatchObject, status: RunStatus, **fields: Any) -> None:
    """Merge `fields` into an object's own ledger record (best effort, as every ledger write)."""
    try:
        record = rt.adapters.ledger.get(obj.object_id) or {
            "run_id": obj.object_id,
            "dataset": dataset,
            **obj.model_dump(mode="json", exclude={"object_id"}),
        }
        record.update(fields, status=status, updated_at=_now())
        rt.adapters.ledger.put(obj.object_id, RunRecord.model_validate(record).model_dump(mode="json"))
    except Exception:
        logger.exception("could not update the run ledger", extra={"run_id": obj.object_id})


# -- arrivals -----------------------------------------------------------------------------------------


def enqueue(rt: Runtime, dataset: str, obj: ObjectCreated) -> tuple[str, bool]:
    """Record the object version as pending; (its object id, whether it was added)."""
    object_id = execution_name(dataset, obj)
    done = rt.adapters.ledger.get(object_id)
    if done is not None and str(done.get("status")) not in IN_FLIGHT:
        return object_id, False  # processed already: the event is a re-delivery
    item = PendingObject(
        object_id=object_id,
        dataset=dataset,
        arrived_ns=time.time_ns(),
        **obj.model_dump(include=set(_OBJECT_FIELDS)),
    )
    added = rt.adapters.pending.add(item.model_dump(mode="json"))
    if added:
        ledger_object(rt, dataset, item, "PENDING", arrived_at=_now())
    return object_id, added


def kick(
    rt: Runtime, dataset: str, starter: PipelineStarter, *, known_pending: bool = False
) -> dict[str, Any] | None:
    """Start the dataset's drain if objects are pending and no drain runs; None when none is needed.

    `known_pending`: the caller has just queued an object, so the pending set is not read (in a burst,
    reading it at every arrival made queueing N objects cost N²/2 item reads).

    The drain takes the table's lease *before* it starts (a conditional write), so at most one drain
    per table exists. If a drain holds the lease, it is started again under its own name: a no-op
    for a running execution, and the recovery when a kick crashed between the lease and the start.
    """
    if not known_pending and not rt.adapters.pending.oldest(dataset, 1):
        return None
    drain = new_drain_id(dataset)
    try:
        rt.adapters.leases.acquire(dataset, drain, rt.settings.lease_ttl_seconds)
    except LeaseHeldError:
        holder = rt.adapters.leases.get(dataset)
        if holder is None or not is_drain(holder.owner) or holder.expires_at < time.time():
            return None  # maintenance holds it (its end kicks), or it expired (the next kick takes it)
        started = starter.start(holder.owner, _drain_input(holder.owner, dataset))
        return {"run_id": holder.owner, "dataset": dataset, **started, "started": False}
    payload = _drain_input(drain, dataset)
    started = starter.start(drain, payload)
    try:
        record = RunRecord.model_validate({**payload, "status": "STARTED", "kind": "drain", **started})
        rt.adapters.ledger.put(drain, record.model_dump(mode="json"))
    except Exception:
        logger.exception("could not write the run ledger", extra={"run_id": drain})
    return {"run_id": drain, "dataset": dataset, **started}


def _drain_input(drain: str, dataset: str) -> dict[str, Any]:
    # Only the names: StartExecution of a running drain is idempotent for the identical input.
    return RunInput(run_id=drain, dataset=dataset).model_dump(mode="json", exclude_defaults=True)


# -- ClaimBatch ---------------------------------------------------------------------------------------


def select_batch(
    items: Sequence[PendingObject],
    *,
    max_objects: int,
    max_bytes: int,
    alone_over_bytes: int,
    glue_max_objects: int = 1,
    glue_max_bytes: int = 0,
) -> list[PendingObject]:
    """The next batch, oldest first. An isolation group goes alone. Objects up to the Lambda route
    (`alone_over_bytes`) batch up to `max_objects`/`max_bytes`; objects above it take the Glue route and
    batch only with each other, up to `glue_max_objects`/`glue_max_bytes` (the routes never mix). A
    batch stops at the first object of the other route, so arrival order is kept; it always takes one."""
    pending = sorted((i for i in items if i.status == "pending"), key=lambda i: (i.arrived_ns, i.object_id))
    if not pending:
        return []
    first = pending[0]
    if first.group:
        return [i for i in pending if i.group == first.group]
    large = (first.size or 0) > alone_over_bytes
    limit_objects, limit_bytes = (glue_max_objects, glue_max_bytes) if large else (max_objects, max_bytes)
    batch: list[PendingObject] = []
    total = 0
    for item in pending:
        size = item.size or 0
        if item.group or (size > alone_over_bytes) != large:
            break  # keep arrival order: the next batch starts with it
        if batch and (len(batch) >= limit_objects or total + size > limit_bytes):
            break
        batch.append(item)
        total += size
    return batch


def _parsed(dataset: str, items: Sequence[Mapping[str, Any]]) -> list[PendingObject]:
    return [parse_model(PendingObject, i, f"pending item of {dataset}") for i in items]


def _next_candidates(rt: Runtime, dataset: str) -> list[PendingObject]:
    """The oldest pending items, as many as a batch of either route can take (plus one): a batch is made
    of the oldest, and an isolation group is at most a former batch. Never the whole backlog."""
    settings = rt.settings
    limit = max(settings.batch_max_objects, settings.glue_batch_max_objects) + 1
    return _parsed(dataset, rt.adapters.pending.oldest(dataset, limit))


def claim_batch(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """`ClaimBatch`: the run's objects as `$.batch`; a batch of one also at the top level (`$.bucket`...).

    A run started for one object (`lakehouse rerun`, `invoke`) is a batch of that object. A drain takes
    the items it claimed before (a resumed drain) or claims the next batch.
    """
    run = RunState.parse(event)
    state = dict(run.raw)
    if run.bucket and run.key:
        obj = BatchObject(object_id=run.run_id, **{k: state.get(k) for k in _OBJECT_FIELDS})
        return _with_batch(state, [obj], None)
    mine = _parsed(run.dataset, rt.adapters.pending.claimed(run.dataset, run.run_id))
    if not mine:
        chosen = select_batch(
            _next_candidates(rt, run.dataset),
            max_objects=rt.settings.batch_max_objects,
            max_bytes=rt.settings.batch_max_bytes,
            alone_over_bytes=rt.settings.lambda_route_max_bytes,
            glue_max_objects=rt.settings.glue_batch_max_objects,
            glue_max_bytes=rt.settings.glue_batch_max_bytes,
        )
        claimed: set[str] = set(
            rt.adapters.pending.claim(run.dataset, [i.object_id for i in chosen], run.run_id)
        )
        mine = [i for i in chosen if i.object_id in claimed]
    mine.sort(key=lambda i: (i.arrived_ns, i.object_id))
    objects = [BatchObject.model_validate(i.model_dump(include={"object_id", *_OBJECT_FIELDS})) for i in mine]
    for obj in objects:
        ledger_object(rt, run.dataset, obj, "RUNNING", batch_id=run.run_id, started_at=_now())
    return _with_batch(state, objects, mine[0].group if mine else None)


def _with_batch(state: dict[str, Any], objects: list[BatchObject], group: str | None) -> dict[str, Any]:
    batch = Batch(objects=objects, count=len(objects), bytes=sum(o.size or 0 for o in objects), group=group)
    out = {**state, "batch": batch.model_dump(mode="json")}
    if len(objects) == 1:
        # One object: the single-object states read it where they always have ($.bucket, $.key...).
        out.update(objects[0].model_dump(mode="json"))
    return out


# -- the Glue route's manifest -------------------------------------------------------------------------


def write_manifest(rt: Runtime, run: RunState, inspection: dict[str, Any]) -> str:
    """Write the manifest of a batch for the Glue route (`runs/<run_id>/manifest.json` in the lake) and
    return its URI: the job run gets only this URI, since StartJobRun's arguments are size-limited.

    Each object: where it is, its pinned version (version id, else ETag), its object id (rejects key),
    app id and transaction version. Written by `Inspect` once the route is known; deterministic, so a
    retried Inspect rewrites the same manifest."""
    from lakehouse.events import app_id_for

    app_ids: dict[str, str] = dict(inspection.get("app_ids") or {})
    objects = []
    for raw in run.objects():
        one = run.for_object(raw)
        app_id = app_ids.get(one.object_id) or (
            str(inspection["app_id"])
            if not run.is_batch
            else app_id_for(run.dataset, one.bucket, one.key, one.object_version)
        )
        objects.append(
            ManifestObject(
                object_id=one.object_id,
                bucket=one.bucket,
                key=one.key,
                **one.pins(),
                source_version=one.source_version,
                ingested_at=started_at(one.raw).isoformat(),
                app_id=app_id,
                txn_version=one.txn_version,
            )
        )
    manifest = GlueManifest(
        run_id=run.run_id, dataset=run.dataset, table_uri=str(inspection["table_uri"]), objects=objects
    )
    where = rt.layout.manifest(run.run_id)
    body = manifest.model_dump_json(indent=1).encode()
    rt.adapters.objects.put_bytes(where.bucket, where.key, body)
    return str(rt.adapters.objects.uri(where.bucket, where.key))


# -- FinishBatch / SplitBatch / the end of a drain ------------------------------------------------------


def finish_batch(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """`FinishBatch`: each object's final status in the ledger; its pending item removed."""
    run = RunState.parse(event)
    batch = run.batch
    commit = run.commit
    per_object = {o.object_id: o for o in (commit.objects or [])} if commit is not None else {}
    inspection = run.inspection
    # What the batch did as a whole, on each object's record (`lakehouse runs` shows it per object).
    shared = {
        "route": inspection.route if inspection else None,
        "checks": run.raw.get("checks"),
        "version_before": commit.version_before if commit else None,
        "version_after": commit.version_after if commit else None,
    }
    statuses: dict[str, str] = {}
    for obj in batch.objects:
        own = per_object.get(obj.object_id)
        duplicate = (own.status if own else commit.status if commit else "") == "duplicate"
        status: RunStatus = "DUPLICATE" if duplicate else "SUCCEEDED"
        fields: dict[str, Any] = {"batch_id": run.run_id, "finished_at": _now(), **shared}
        if own is not None:
            fields["commit"] = own.model_dump(mode="json")
        if obj.object_id != run.run_id:
            ledger_object(rt, run.dataset, obj, status, **fields)
        statuses[obj.object_id] = status
    _remove(rt, run, batch)
    return BatchOutcome(action="finished", statuses=statuses).model_dump(mode="json")


def _remove(rt: Runtime, run: RunState, batch: Batch) -> None:
    ids = [o.object_id for o in batch.objects if o.object_id != run.run_id]
    if ids:
        rt.adapters.pending.remove(run.dataset, ids)


def culprit(message: str, batch: Batch) -> str | None:
    """The object an error names: a batch's stages add `(object <id>)` to the error of the file that
    failed (lakehouse.stages.ingest._named). None when the error names none (e.g. a table check)."""
    named = [o.object_id for o in batch.objects if f"(object {o.object_id})" in message]
    return named[0] if len(named) == 1 else None


def split_groups(batch: Batch, bad: str | None) -> list[list[str]]:
    """The batch's objects in the groups they are retried in: the named object alone and the rest
    together, or (nothing named, e.g. a failed table check) two halves, until the bad one is alone."""
    ids = [o.object_id for o in batch.objects]
    if bad is not None and bad in ids:
        rest = [i for i in ids if i != bad]
        return [[bad], rest] if rest else [[bad]]
    half = (len(ids) + 1) // 2
    return [ids[:half], ids[half:]]


def split_batch(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """`SplitBatch`: a batch of several objects failed and was rolled back; requeue it in groups."""
    run = RunState.parse(event)
    batch = run.batch
    error = run.error
    message = f"{error.Error}: {error.Cause}" if error.Cause else str(error.Error or "")
    groups = split_groups(batch, culprit(message, batch))
    note = f"batch {run.run_id} failed ({message[:300]}); retried in a smaller batch"
    by_id = {o.object_id: o for o in batch.objects}
    versions = _versions_after_rollback(rt, run, batch)
    for n, group in enumerate(groups):
        rt.adapters.pending.requeue(run.dataset, group, f"{run.run_id}-{n}", note, versions)
        for object_id in group:
            ledger_object(rt, run.dataset, by_id[object_id], "PENDING", batch_id=None, note=note)
    return BatchOutcome(action="split", groups=groups).model_dump(mode="json")


def _versions_after_rollback(rt: Runtime, run: RunState, batch: Batch) -> dict[str, int]:
    """The app-transaction version each object is retried with. A rolled-back commit leaves its app
    transactions in the Delta log (RESTORE keeps them), so an object this drain committed is applied
    again with the next version, as `lakehouse rerun` does; any other object keeps its version."""
    from lakehouse.commit_log import SEARCH_DEPTH, find_commit, is_own_commit, txn_version
    from lakehouse.duckdb_engine.delta import open_table
    from lakehouse.events import app_id_for, object_version

    table = open_table(rt.table_uri(run.dataset), rt.storage_options)
    if table is None:
        return {}
    history = table.history(SEARCH_DEPTH)
    out: dict[str, int] = {}
    for obj in batch.objects:
        fields = obj.model_dump(mode="json")
        app_id = app_id_for(run.dataset, obj.bucket, obj.key, object_version(fields))
        applied = table.transaction_version(app_id)
        mine = applied is not None and is_own_commit(find_commit(history, app_id), run.run_id)
        if applied is not None and mine and applied >= txn_version(fields):
            out[obj.object_id] = applied + 1
    return out


def settle_drain(
    rt: Runtime, dataset: str, drain: str, status: RunStatus, starter: PipelineStarter | None
) -> dict[str, Any] | None:
    """The end of an execution: objects its drain still holds take its outcome, the lease it may still
    hold is released, and the next drain is kicked (objects that arrived meanwhile are not stranded)."""
    left = _parsed(dataset, rt.adapters.pending.claimed(dataset, drain))
    for item in left:
        current = rt.adapters.ledger.get(item.object_id) or {}
        final = str(current.get("status") or "")
        settled = cast(RunStatus, final) if final in _SETTLED else status
        ledger_object(rt, dataset, item, settled, batch_id=drain, finished_at=_now())
    if left:
        rt.adapters.pending.remove(dataset, [i.object_id for i in left])
    rt.adapters.leases.release(dataset, drain)
    return kick(rt, dataset, starter) if starter is not None else None


def manage_batch(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """`ClaimBatch` / `FinishBatch` / `SplitBatch` (the ManageBatch function)."""
    action = event.get("action") if isinstance(event, dict) else None
    stages = {"claim": claim_batch, "finish": finish_batch, "split": split_batch}
    if action not in stages:
        raise InvalidInputError(f"manage_batch: action must be claim, finish or split, got {action!r}")
    return stages[str(action)](rt, event)
