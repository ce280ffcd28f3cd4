"""`on_object_created`: object-created events into the pending set, and the drain that takes them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from lakehouse.errors import ContractError, InvalidInputError, TransientError
from lakehouse.events import ObjectCreated
from lakehouse.stages.runtime import Runtime, parse_model
from lakehouse.state import RERUNNABLE, RunInput, RunRecord

logger = Logger(child=True)


class PipelineStarter(Protocol):
    """Starts IngestStateMachine: Step Functions in AWS, the local executor on a laptop."""

    def start(self, name: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Start (or find) the execution `name`; a duplicate is not an error."""


class StepFunctionsMachine:
    """One state machine's ARN and a Step Functions client made on first use."""

    def __init__(self, state_machine_arn: str, region: str, client: Any = None) -> None:
        self.arn = state_machine_arn
        self.region = region
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("stepfunctions", region_name=self.region)
        return self._client


class StepFunctionsStarter(StepFunctionsMachine):
    """StartExecution with the deterministic name: the same object never runs twice."""

    def __init__(self, state_machine_arn: str, region: str, client: Any = None) -> None:
        if not state_machine_arn:
            raise ContractError("STATE_MACHINE_ARN is not set")
        super().__init__(state_machine_arn, region, client)

    def start(self, name: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            response = self.client.start_execution(
                stateMachineArn=self.arn, name=name, input=json.dumps(payload)
            )
            return {"execution_arn": response["executionArn"], "started": True}
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ExecutionAlreadyExists":
                # Same name: this object was already taken; StartExecution is our idempotency key.
                return {
                    "execution_arn": f"{self.arn.replace(':stateMachine:', ':execution:')}:{name}",
                    "started": False,
                }
            if code in {"ThrottlingException", "ServiceUnavailable", "InternalServerError"}:
                raise TransientError(f"StartExecution {name}: {code}") from exc
            raise


def start_run(rt: Runtime, obj: ObjectCreated, starter: PipelineStarter) -> dict[str, Any] | None:
    """Start the run for one object; None for objects no dataset claims (logged, not retried)."""
    if obj.bucket != rt.settings.landing_bucket:
        logger.warning("ignoring an object outside the landing bucket", extra={"bucket": obj.bucket})
        return None
    try:
        contract = rt.contracts.for_key(obj.key)
    except ContractError:
        logger.warning("no dataset contract claims this key", extra={"key": obj.key})
        return None
    if obj.key.endswith("/"):
        return None  # a "folder" marker, not a file
    from lakehouse.stages.drain import enqueue, kick

    object_id, queued = enqueue(rt, contract.name, obj)
    drain = kick(rt, contract.name, starter, known_pending=queued)
    logger.info("object queued" if queued else "duplicate event", extra={"run_id": object_id})
    return {
        "run_id": object_id,
        "dataset": contract.name,
        "key": obj.key,
        "queued": queued,
        "drain": drain["run_id"] if drain else None,
        "started": bool(drain and drain.get("started")),
    }


def default_starter(rt: Runtime) -> PipelineStarter:
    """Step Functions in AWS; the local queue (lakehouse.adapters.starter) on a laptop."""
    if rt.settings.backend == "aws":
        return StepFunctionsStarter(rt.settings.state_machine_arn, rt.settings.region)
    from lakehouse.adapters.starter import LocalStarter

    starter: PipelineStarter = LocalStarter(rt)
    return starter


def _record_start(rt: Runtime, name: str, payload: dict[str, Any], started: dict[str, Any]) -> None:
    try:
        record = RunRecord.model_validate({**payload, "status": "STARTED", **started})
        rt.adapters.ledger.put(name, record.model_dump(mode="json"))
    except Exception:
        logger.exception("could not write the run ledger")


_RUN_INPUT_FIELDS = ("dataset", "bucket", "key", "version_id", "etag", "size", "sequencer", "event_time")


def rerun(rt: Runtime, run_id: str, starter: PipelineStarter, *, force: bool = False) -> dict[str, Any]:
    """Ingest the object version of an earlier run once more (after a rollback or a quarantine).

    A plain duplicate event still adds nothing: the object version's app transaction is in the table.
    A rerun commits the same app id with the next transaction version, so it applies exactly once more,
    under its own deterministic run id (a second `rerun` of the same state is a no-op).
    """
    from lakehouse.commit_log import FIRST_TXN_VERSION
    from lakehouse.duckdb_engine.delta import open_table
    from lakehouse.events import app_id_for, object_version, rerun_name

    record = rt.adapters.ledger.get(run_id)
    if record is None:
        raise InvalidInputError(f"no run {run_id!r} in the run ledger")
    status = str(record.get("status") or "")
    if status not in RERUNNABLE and not force:
        raise InvalidInputError(
            f"run {run_id} ended {status or 'without a status'}: its rows are in the table, so a rerun "
            "would add them twice (pass force to rerun anyway)"
        )
    payload = {k: record.get(k) for k in _RUN_INPUT_FIELDS}
    if not payload["dataset"] or not payload["bucket"] or not payload["key"]:
        raise InvalidInputError(f"run {run_id} has no object (dataset, bucket, key) in the ledger")
    dataset = str(payload["dataset"])
    app_id = app_id_for(dataset, str(payload["bucket"]), str(payload["key"]), object_version(payload))
    table = open_table(rt.table_uri(dataset), rt.storage_options)
    applied = table.transaction_version(app_id) if table is not None else None
    if table is not None and applied is not None and not force:
        _refuse_if_live(rt, table, app_id, run_id)
    version = applied + 1 if applied is not None else FIRST_TXN_VERSION
    name = rerun_name(dataset, run_id, version)
    payload.update(run_id=name, txn_version=version, rerun_of=run_id)
    payload = parse_model(RunInput, payload, f"rerun of {run_id}").model_dump(mode="json")
    started = starter.start(name, payload)
    if started.get("started"):
        _record_start(rt, name, payload, started)
    return {"run_id": name, "rerun_of": run_id, "txn_version": version, **started}


def _refuse_if_live(rt: Runtime, table: Any, app_id: str, run_id: str) -> None:
    """Refuse when the object's latest application is a run whose rows are still in the table."""
    from lakehouse.commit_log import SEARCH_DEPTH, find_commit

    ref = find_commit(table.history(SEARCH_DEPTH), app_id)
    if ref is None or ref.run_id is None or ref.run_id == run_id:
        return
    latest = rt.adapters.ledger.get(ref.run_id) or {}
    if str(latest.get("status") or "") not in RERUNNABLE:
        raise InvalidInputError(
            f"the object of run {run_id} was ingested again by run {ref.run_id} "
            f"({latest.get('status') or 'status unknown'}); a rerun would add its rows twice"
        )
