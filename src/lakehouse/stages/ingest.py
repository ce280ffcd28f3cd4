"""One function per state of IngestStateMachine; the Lambda handlers and the local runtime call these.

deltalake and duckdb are imported inside the stages that need them: the functions deployed without
the engine layer (lease, checks, quarantine, Glue result) import this module too.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from aws_lambda_powertools import Logger

from lakehouse.errors import InvalidInputError, ObjectChangedError
from lakehouse.events import app_id_for
from lakehouse.formats import SAMPLE_BYTES, Detected, detect
from lakehouse.ports import ObjectInfo
from lakehouse.sql.checks import (
    athena_table,
    checks_in_scope,
    compile_checks,
    evaluate,
    metrics_from_athena,
    missing_references,
)
from lakehouse.sql.compiler import RunMeta
from lakehouse.stages.runtime import RunState, Runtime, parse_model, started_at
from lakehouse.state import (
    AthenaRows,
    BatchObject,
    CatalogEntry,
    CheckOutcome,
    ChecksOutcome,
    CommitResult,
    DerivedCatalog,
    DerivedEntry,
    Inspection,
    Lease,
    LeaseRelease,
    ObjectCommit,
    QuarantineOutcome,
    RollbackOutcome,
    RunRecord,
    RunStatus,
    commit_status,
)
from lakehouse.workdirs import run_workdir

logger = Logger(child=True)
_T = TypeVar("_T")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _ledger(rt: Runtime, run: RunState, status: RunStatus, **fields: Any) -> None:
    """Merge fields into the run's ledger record. Best effort: a ledger hiccup must not fail a run."""
    try:
        record = rt.adapters.ledger.get(run.run_id) or {
            "run_id": run.run_id,
            "dataset": run.dataset,
            "bucket": run.bucket,
            "key": run.key,
        }
        record.update(fields, status=status, updated_at=_now())
        rt.adapters.ledger.put(run.run_id, RunRecord.model_validate(record).model_dump(mode="json"))
    except Exception:
        logger.exception("could not update the run ledger", extra={"run_id": run.run_id})
    if run.object_id != run.run_id:
        # A drain's batch of one: the object's own record follows the drain's.
        from lakehouse.stages.drain import ledger_object

        obj = BatchObject.model_validate({"object_id": run.object_id, "bucket": run.bucket, "key": run.key})
        ledger_object(rt, run.dataset, obj, status, batch_id=run.run_id, **fields)


def manage_lease(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """`AcquireTableLease` / `ReleaseLease`: one writer per table, from commit through checks."""
    run = RunState.parse(event)
    action = event.get("action")
    if action == "acquire":
        lease = rt.adapters.leases.acquire(run.dataset, run.run_id, rt.settings.lease_ttl_seconds)
        _ledger(rt, run, "RUNNING", started_at=_now())
        out = Lease(table=lease.table, owner=lease.owner, expires_at=lease.expires_at)
        return out.model_dump(mode="json")
    if action == "release":
        # The next drain is kicked when the execution ends (settle_drain), not here: this function
        # cannot start executions of the machine that invokes it (a cycle in template.yaml).
        released = rt.adapters.leases.release(run.dataset, run.run_id)
        return LeaseRelease(table=run.dataset, owner=run.run_id, released=released).model_dump(mode="json")
    raise InvalidInputError(f"manage_lease: action must be 'acquire' or 'release', got {action!r}")


def inspect_object(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """`Inspect`: what the file is (each file of a batch), which contract applies, which route it takes."""
    run = RunState.parse(event)
    if not run.is_batch:
        return _with_manifest(rt, run, _inspect_one(rt, run))
    # The table, its checks and the derived refresh are the batch's: worked out for the first object only.
    objects = [run.for_object(o) for o in run.objects()]
    first = _named(lambda one: _inspect_one(rt, one), objects[0])
    inspections = [first, *(_named(lambda one: _object_facts(rt, one), o) for o in objects[1:])]
    first.update(
        size_bytes=sum(int(i["size_bytes"]) for i in inspections),
        compression=None,
        # ClaimBatch batches objects above the Lambda route only with each other (the Glue route).
        route="glue" if any(i["route"] == "glue" for i in inspections) else "lambda",
        app_ids={str(o["object_id"]): i["app_id"] for o, i in zip(run.objects(), inspections, strict=True)},
    )
    return Inspection.model_validate(_with_manifest(rt, run, first)).model_dump(mode="json")


def _with_manifest(rt: Runtime, run: RunState, inspection: dict[str, Any]) -> dict[str, Any]:
    """The Glue route reads its objects from a manifest (one object or a batch: one code path)."""
    if inspection["route"] == "glue":
        from lakehouse.stages.drain import write_manifest

        inspection["manifest_uri"] = write_manifest(rt, run, inspection)
    return inspection


def _named(stage: Callable[[RunState], _T], run: RunState) -> _T:
    """Run a stage for one object of a batch; its error names the object, so the batch can split it out."""
    try:
        return stage(run)
    except Exception as exc:
        if f"(object {run.object_id})" in str(exc):
            raise
        try:
            named = type(exc)(f"{exc} (object {run.object_id})")
        except Exception:
            raise exc from None
        raise named from exc


def _object_facts(rt: Runtime, run: RunState) -> dict[str, Any]:
    """What a batch needs of each object after the first: its format checked, its size, its app id."""
    detected, info = _detect_object(rt, run)
    app_id = app_id_for(run.dataset, run.bucket, run.key, run.object_version or info.etag)
    return {"size_bytes": detected.size_bytes, "app_id": app_id, "route": _route(rt, info)}


def _route(rt: Runtime, info: ObjectInfo) -> str:
    return "lambda" if info.size <= rt.settings.lambda_route_max_bytes else "glue"


def _detect_object(rt: Runtime, run: RunState) -> tuple[Detected, ObjectInfo]:
    """The object version's format and size, checked against its dataset's contract."""
    contract = rt.contract(run.dataset)
    if not run.key.startswith(contract.landing_prefix):
        raise InvalidInputError(
            f"s3://{run.bucket}/{run.key}: key is outside the landing prefix {contract.landing_prefix!r} "
            f"of dataset {run.dataset!r}"
        )
    objects = rt.adapters.objects
    try:
        # Pinned to the event's version (or ETag): an overwrite since the event is ObjectChangedError.
        info = objects.head(run.bucket, run.key, **run.pins())
    except FileNotFoundError as exc:
        raise InvalidInputError(
            f"s3://{run.bucket}/{run.key}: the object no longer exists "
            "(deleted or overwritten before its run started); nothing to ingest"
        ) from exc
    head = objects.read_bytes(run.bucket, run.key, SAMPLE_BYTES, **run.pins())
    # The head holds the whole of a small file; for a large one the engine's reader checks the footer.
    tail = head[-4:] if info.size <= len(head) else None
    detected = detect(head, tail, info.size, f"s3://{run.bucket}/{run.key}")
    if detected.kind != contract.format.type:
        raise InvalidInputError(
            f"s3://{run.bucket}/{run.key}: dataset {run.dataset!r} expects {contract.format.type}, "
            f"the file is {detected.kind}"
        )
    return detected, info


def _inspect_one(rt: Runtime, run: RunState) -> dict[str, Any]:
    from lakehouse.duckdb_engine.delta import open_table  # deltalake: Inspect runs with the engine layer

    contract = rt.contract(run.dataset)
    detected, info = _detect_object(rt, run)
    table_uri = rt.table_uri(run.dataset)
    table = open_table(table_uri, rt.storage_options)
    # Batch-scoped checks only: table-scoped ones run on the maintenance schedule (stages/maintenance.py).
    batch_checks = checks_in_scope(contract, "batch")
    references = {c.reference.dataset for c in batch_checks if c.reference is not None}
    available = {run.dataset} | {d for d in references if open_table(rt.table_uri(d), rt.storage_options)}
    database = athena_table(rt.settings.glue_database)
    checks = compile_checks(contract, database, run_id=run.run_id, available=available, scope="batch")
    return Inspection(
        format=detected.kind,
        compression=detected.compression,
        size_bytes=detected.size_bytes,
        route=_route(rt, info),
        table_uri=table_uri,
        app_id=app_id_for(run.dataset, run.bucket, run.key, run.object_version or info.etag),
        version_before=table.version() if table is not None else -1,
        has_checks=checks is not None,
        checks_query=checks.athena() if checks else None,
        missing_references=missing_references(contract, available, "batch"),
        has_derived=bool(contract.derived) and _derived_due(rt, [m.name for m in contract.derived]),
        derived_models=[m.name for m in contract.derived],
    ).model_dump(mode="json")


def _derived_due(rt: Runtime, models: list[str]) -> bool:
    """Whether this run refreshes the derived tables: at most once per `DERIVED_REFRESH_MIN_INTERVAL_S`.

    A refresh recomputes each model from its sources' current versions, so one that is skipped here is
    caught up by the next run's refresh (docs/ARCHITECTURE.md, "Pending set and drains")."""
    from lakehouse.duckdb_engine.delta import open_table

    interval = rt.settings.derived_refresh_min_interval_s
    if interval <= 0:
        return True
    now_ms = datetime.now(UTC).timestamp() * 1000
    for model in models:
        table = open_table(rt.derived_uri(model), rt.storage_options)
        if table is None:
            return True
        last = table.history(1)
        if not last or now_ms - float(last[0].get("timestamp") or 0) >= interval * 1000:
            return True
    return False


def commit_object(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """`CommitWithLambda`: DuckDB + delta-rs, exactly once; rejected rows go to quarantine."""
    from lakehouse.duckdb_engine.ingest import ingest_file  # duckdb + deltalake: the engine layer

    run = RunState.parse(event)
    if run.is_batch:
        return _commit_batch(rt, run)
    with run_workdir(run.run_id) as work:  # removed after; a crashed run's is swept by the next one
        local, meta = _source(rt, run, work)
        result = ingest_file(
            local,
            rt.contract(run.dataset),
            # The runtime's own URI (not the state's): the same state replays on any backend.
            rt.table_uri(run.dataset),
            meta,
            app_id=_app_id(run),
            txn_version=run.txn_version,
            work_dir=work / "work",
            source_name=meta.source_uri,
            **_engine_options(rt),
        )
        fields = result.as_dict()
        rejects_path = fields.pop("rejects_path")
        out = CommitResult.model_validate(fields)
        out.rejects_uri = _store_rejects(rt, run, rejects_path)
        dumped = out.model_dump(mode="json")
        _ledger(rt, run, commit_status(out.status), commit=dumped)
        return dumped


def _source(rt: Runtime, run: RunState, work: Path) -> tuple[Path, RunMeta]:
    """The run's object version, downloaded pinned into `work`, and the metadata its rows carry."""
    local = rt.adapters.objects.download(
        run.bucket, run.key, work / PurePosixPath(run.key).name, **run.pins()
    )
    meta = RunMeta(
        source_uri=f"s3://{run.bucket}/{run.key}",
        source_version=run.source_version,
        ingested_at=started_at(run.raw),
        run_id=run.run_id,
    )
    return local, meta


def _engine_options(rt: Runtime) -> dict[str, Any]:
    """The DuckDB engine's settings and the lake's storage options."""
    return {
        "storage_options": rt.storage_options,
        "memory_limit": rt.settings.duckdb_memory_limit,
        "threads": rt.settings.duckdb_threads,
    }


def _store_rejects(rt: Runtime, run: RunState, rejects_path: str | None) -> str | None:
    """The object's rejected rows, next to the lake under its object id."""
    if not rejects_path:
        return None
    where = rt.layout.rejects(run.dataset, run.object_id)
    rt.adapters.objects.put_file(where.bucket, where.key, Path(rejects_path))
    return rt.adapters.objects.uri(where.bucket, where.key)


def _commit_batch(rt: Runtime, run: RunState) -> dict[str, Any]:
    """`CommitWithLambda` for a batch: every object's own flow, then one commit for all of them."""
    from lakehouse.duckdb_engine.batch import BatchSession, commit_staged
    from lakehouse.ingest_core import batch_commit_result

    contract = rt.contract(run.dataset)
    table_uri = rt.table_uri(run.dataset)
    with run_workdir(run.run_id) as work:
        with BatchSession(table_uri, work_dir=work / "session", **_engine_options(rt)) as session:
            stage = partial(_stage_one, rt, batch_work=work, session=session)
            staged = [_named(stage, run.for_object(o)) for o in run.objects()]
        landed = commit_staged(
            [s for _, s in staged],
            contract,
            table_uri,
            run.run_id,
            storage_options=rt.storage_options,
            work_dir=work / "commit",
        )
    out = batch_commit_result([obj for obj, _ in staged], [s.result for _, s in staged], landed)
    dumped = out.model_dump(mode="json")
    _ledger(rt, run, commit_status(out.status), commit=dumped)
    return dumped


def _stage_one(rt: Runtime, run: RunState, *, batch_work: Path, session: Any) -> tuple[ObjectCommit, Any]:
    from lakehouse.duckdb_engine.batch import stage_file
    from lakehouse.ingest_core import object_commit

    work = batch_work / run.object_id
    work.mkdir(parents=True, exist_ok=True)
    local, meta = _source(rt, run, work)
    staged = stage_file(
        local,
        rt.contract(run.dataset),
        rt.table_uri(run.dataset),
        meta,
        # Per object (`$.inspection.app_id` is the first object's in a batch).
        app_id=app_id_for(run.dataset, run.bucket, run.key, run.object_version),
        txn_version=run.txn_version,
        work_dir=work / "work",
        source_name=meta.source_uri,
        session=session,
        **_engine_options(rt),
    )
    rejects_uri = _store_rejects(rt, run, staged.result.rejects_path)
    return object_commit(run.object_id, staged.result, rejects_uri), staged


def _app_id(run: RunState) -> str:
    """The run's app transaction id: Inspect's, else derived the same way from the object version.

    A malformed `$.inspection` is logged, not raised: Rollback must still find this run's commit."""
    try:
        inspection = run.inspection
    except InvalidInputError:
        logger.exception("ignoring a malformed $.inspection", extra={"run_id": run.run_id})
        inspection = None
    if inspection is not None:
        return inspection.app_id
    return app_id_for(run.dataset, run.bucket, run.key, run.object_version)


def _app_ids(run: RunState) -> list[str]:
    """The app transaction ids of the run's objects (a batch's commit carries them all)."""
    if not run.is_batch:
        return [_app_id(run)]
    return [
        app_id_for(run.dataset, str(o.get("bucket")), str(o.get("key")), _version_of(o))
        for o in run.objects()
    ]


def _version_of(obj: dict[str, Any]) -> str:
    from lakehouse.events import object_version

    return object_version(obj)


def read_job_result(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """`ReadGlueResult`: the commit result the Glue job wrote next to the lake."""
    run = RunState.parse(event)
    where = rt.layout.commit_result(run.run_id)
    try:
        data = rt.adapters.objects.read_bytes(where.bucket, where.key)
    except FileNotFoundError as exc:
        raise InvalidInputError(f"the Glue job left no result at {where.key}") from exc
    try:
        parsed = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{where.s3_uri}: the Glue job's result is not JSON: {exc}") from exc
    # Validated, and passed on as the job wrote it (no defaults added).
    result = parse_model(CommitResult, parsed, where.s3_uri).model_dump(mode="json", exclude_unset=True)
    _ledger(rt, run, commit_status(result["status"]), commit=result)
    return result


def register_table(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """`RegisterTable` / `SyncCatalog` / `RegisterDerived`: catalog entries (table_type=DELTA) with the
    tables' schemas; the dataset's table, or with `models` its derived (gold) tables."""
    from lakehouse import tables

    state = event.get("run", event)
    dataset = str(state.get("dataset") or "")
    if not dataset:
        raise InvalidInputError("register_table: input lacks 'dataset'")
    database = rt.settings.glue_database
    if "models" in event:
        registered: list[DerivedEntry] = []
        for model in event.get("models") or []:
            uri = rt.derived_uri(str(model))
            if tables.table_version(uri, rt.storage_options) is None:
                # The refresh wrote nothing for this model (yet): nothing to describe.
                registered.append(DerivedEntry(table=str(model), created=False, missing=True))
                continue
            outcome = rt.adapters.catalog.upsert_delta_table(
                database,
                str(model),
                uri,
                tables.columns(uri, rt.storage_options),
                tables.partition_columns(uri, rt.storage_options),
            )
            registered.append(DerivedEntry(table=str(model), **outcome))
        return DerivedCatalog(database=database, tables=registered).model_dump(mode="json")
    uri = rt.table_uri(dataset)
    columns = tables.columns(uri, rt.storage_options)
    partitions = tables.partition_columns(uri, rt.storage_options)
    outcome = rt.adapters.catalog.upsert_delta_table(database, dataset, uri, columns, partitions)
    return CatalogEntry(database=database, table=dataset, **outcome).model_dump(mode="json")


def evaluate_checks(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """`EvaluateChecks`: compare the Athena metrics with the contract's thresholds."""
    run = RunState.parse(event)
    contract = rt.contract(run.dataset)
    rows = run.section("check_rows")
    # `athena:getQueryResults` output: trimmed by the ResultSelector, or whole (`ResultSet`).
    result_set = parse_model(AthenaRows, rows.get("ResultSet", rows), "state $.check_rows")
    metrics = metrics_from_athena(result_set.model_dump(mode="json"))
    inspection = run.inspection
    checks = checks_in_scope(contract, "batch")  # what Inspect compiled, in its order
    results = evaluate(checks, metrics, inspection.missing_references if inspection else None)
    passed = all(r.passed or r.severity == "warn" for r in results)
    out = ChecksOutcome(
        passed=passed,
        results=[CheckOutcome.model_validate(r.as_dict()) for r in results],
        failed=[r.name for r in results if not r.passed and r.severity == "fail"],
        warnings=[r.name for r in results if not r.passed and r.severity == "warn"],
    ).model_dump(mode="json")
    _ledger(rt, run, "CHECKED" if passed else "CHECKS_FAILED", checks=out)
    return out


def rollback_table(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """`Rollback`: undo this run's own commit, if (and only if) this run committed.

    The Delta log, not the state, says whether and where this run's commit landed: a Glue job may have
    committed and failed before reporting, a crashed run resumes without its earlier state, and an
    app transaction committed by *another* run (a duplicate) must never be undone here.
    """
    from lakehouse import tables
    from lakehouse.commit_log import SEARCH_DEPTH, find_commit, is_own_commit
    from lakehouse.duckdb_engine.delta import open_table

    run = RunState.parse(event)
    uri = rt.table_uri(run.dataset)
    table = open_table(uri, rt.storage_options)
    if table is None:
        return RollbackOutcome(restored=False, reason="no table").model_dump(mode="json", exclude_unset=True)
    history = table.history(SEARCH_DEPTH)
    ref = None
    for app_id in _app_ids(run):
        applied = table.transaction_version(app_id)
        found = find_commit(history, app_id) if applied is not None and applied >= run.txn_version else None
        if is_own_commit(found, run.run_id):
            ref = found
            break
    if ref is None:
        return RollbackOutcome(
            restored=False, reason="this run committed nothing", version=table.version()
        ).model_dump(mode="json", exclude_unset=True)
    reason = f"rollback of run {run.run_id}"
    if ref.version == 0:
        # This run's commit created the table: "before" is no table at all, so it is emptied instead.
        result = tables.empty(
            uri, expected_current=ref.version, storage_options=rt.storage_options, reason=reason
        )
    else:
        result = tables.rollback(
            uri,
            ref.version - 1,
            expected_current=ref.version,
            storage_options=rt.storage_options,
            reason=reason,
        )
    out = RollbackOutcome.model_validate(result).model_dump(mode="json", exclude_unset=True)
    _ledger(rt, run, "ROLLED_BACK", rollback=out)
    return out


def _quarantine_copy(rt: Runtime, run: RunState, dest_key: str) -> str:
    """Copy exactly the run's object version aside; never other bytes (a newer version has its own run)."""
    objects = rt.adapters.objects
    if not (run.bucket and run.key):
        return "not copied: the run names no object"
    try:
        objects.copy(run.bucket, run.key, rt.settings.quarantine_bucket, dest_key, **run.pins())
    except ObjectChangedError as exc:
        return f"not copied: {exc}"
    except FileNotFoundError:
        return "not copied: the object no longer exists"
    return "copied"


def quarantine_object(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """`Quarantine`: copy the raw object aside with a machine-readable reason. The original stays."""
    run = RunState.parse(event)
    error = run.error
    cause: Any = error.Cause
    if isinstance(cause, str):
        with contextlib.suppress(json.JSONDecodeError):
            cause = json.loads(cause)
    name = PurePosixPath(run.key).name or "object"
    target = rt.layout.quarantined_object(run.dataset, run.object_id, name)
    reason_at = rt.layout.quarantine_reason(run.dataset, run.object_id, name)
    reason = {
        "run_id": run.run_id,
        "object_id": run.object_id,
        "dataset": run.dataset,
        "source": f"s3://{run.bucket}/{run.key}",
        "source_version": run.source_version,
        "error": error.Error,
        "message": cause.get("errorMessage") if isinstance(cause, dict) else cause,
        "cause": cause,
        "checks": run.raw.get("checks"),
        "commit": run.raw.get("commit"),
        "rollback": run.raw.get("rollback"),
        "quarantined_at": _now(),
    }
    objects = rt.adapters.objects
    reason["object"] = _quarantine_copy(rt, run, target.key)
    objects.put_bytes(reason_at.bucket, reason_at.key, json.dumps(reason, indent=2, default=str).encode())
    _ledger(rt, run, "QUARANTINED", error=reason["error"], message=reason["message"])
    return QuarantineOutcome(
        object_uri=objects.uri(target.bucket, target.key),
        reason_uri=objects.uri(reason_at.bucket, reason_at.key),
        error=error.Error,
        message=reason["message"],
    ).model_dump(mode="json")
