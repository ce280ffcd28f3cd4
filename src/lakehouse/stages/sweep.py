"""The drain sweep: pending objects that no drain will take, taken (run by `PlanMaintenance`).

The end of every drain (`RecordRunOutcome` on the Step Functions status-change event) settles it and kicks
the next one. If that event is lost (EventBridge delivers at least once, but a function error that outlives
its retries, or a disabled rule, drops it), objects can sit in the pending set with no drain running:
claimed by a drain that ended, behind a lease that drain still holds, or pending with no kick to come.
The sweep, for each dataset:

1. asks how each drain the dataset's items or lease name ended (DescribeExecution in AWS, the local queue
   on a laptop); a drain that ended is settled as its end event would have: its final status recorded
   (`outcome.record_outcome`), then `drain.settle_drain` (objects it still holds take its outcome, its
   lease is released);
2. kicks the dataset's drain (`drain.kick`: a no-op without pending objects; a new drain when the lease
   is free; the holder restarted by name when a drain holds it).

A running drain is left alone. Every step is idempotent, so a sweep racing a late end event is harmless.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from lakehouse.errors import InvalidInputError, TransientError
from lakehouse.stages.drain import is_drain, kick, settle_drain
from lakehouse.stages.outcome import record_outcome
from lakehouse.stages.runtime import Runtime, parse_model
from lakehouse.stages.start import PipelineStarter, StepFunctionsMachine, default_starter
from lakehouse.state import INGEST_FAILED_ERROR, PendingObject, RunOutcome

logger = Logger(child=True)

_ENDED = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})  # Step Functions execution statuses
_FINAL = frozenset({"SUCCEEDED", "DUPLICATE", "QUARANTINED", "FAILED"})  # a run's final ledger statuses


class Executions(Protocol):
    """How an IngestStateMachine execution ended."""

    def ended(self, name: str) -> RunOutcome | None:
        """Its outcome if it ended; None while it runs (or if no such execution exists)."""


class StepFunctionsExecutions(StepFunctionsMachine):
    """DescribeExecution of `<state machine>:<name>`."""

    def ended(self, name: str) -> RunOutcome | None:
        from botocore.exceptions import ClientError

        from lakehouse.stages.outcome import outcome_from_event

        arn = f"{self.arn.replace(':stateMachine:', ':execution:')}:{name}"
        try:
            detail = self.client.describe_execution(executionArn=arn)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ExecutionDoesNotExist":
                return None
            if code in {"ThrottlingException", "ServiceUnavailable", "InternalServerError"}:
                raise TransientError(f"DescribeExecution {name}: {code}") from exc
            raise
        if detail.get("status") not in _ENDED:
            return None
        # The fields of the status-change event's detail are DescribeExecution's.
        event = {
            "detail-type": "Step Functions Execution Status Change",
            "detail": {
                k: detail.get(k) for k in ("name", "status", "output", "error", "cause", "executionArn")
            },
        }
        return outcome_from_event(event)


class LocalExecutions:
    """On a laptop an execution runs while it is in the local queue (`<home>/state/queue/`); the executor
    records how it ended in the run ledger before it leaves the queue. A drain in neither (its kick took
    the lease and has not queued it yet, maybe in another process) counts as running."""

    def __init__(self, rt: Runtime) -> None:
        from lakehouse.adapters.starter import LocalQueue

        self.rt = rt
        self.queue = LocalQueue(Path(rt.settings.home))

    def ended(self, name: str) -> RunOutcome | None:
        if any(q.name == name for q in self.queue.pending()):  # read now: another process may queue it
            return None
        status = str((self.rt.adapters.ledger.get(name) or {}).get("status") or "")
        if status not in _FINAL:
            return None
        ok = status in ("SUCCEEDED", "DUPLICATE")
        return RunOutcome(
            run_id=name,
            execution_status="SUCCEEDED" if ok else "FAILED",
            error=INGEST_FAILED_ERROR if status == "QUARANTINED" else None,
            commit_status="duplicate" if status == "DUPLICATE" else None,
        )


def default_executions(rt: Runtime) -> Executions:
    if rt.settings.backend == "aws":
        return StepFunctionsExecutions(rt.settings.state_machine_arn, rt.settings.region)
    return LocalExecutions(rt)


def _drains_named(rt: Runtime, dataset: str) -> tuple[list[str], bool]:
    """The drains the dataset's claimed items and lease name; whether any item is pending."""
    claimed = [
        parse_model(PendingObject, i, f"pending item of {dataset}")
        for i in rt.adapters.pending.claimed(dataset)
    ]
    drains = {i.drain_id for i in claimed if i.drain_id}
    lease = rt.adapters.leases.get(dataset)
    if lease is not None and is_drain(lease.owner):
        drains.add(lease.owner)
    return sorted(drains), bool(rt.adapters.pending.oldest(dataset, 1))


def sweep_dataset(
    rt: Runtime, dataset: str, executions: Executions, starter: PipelineStarter | None
) -> dict[str, Any]:
    """Settle the dataset's drains that ended without being settled, then kick its drain."""
    drains, pending = _drains_named(rt, dataset)
    settled: dict[str, str] = {}
    for drain in drains:
        outcome = executions.ended(drain)
        if outcome is None:
            continue  # it runs: its own end settles it
        status = record_outcome(rt, outcome)["status"]
        settle_drain(rt, dataset, drain, status, None)
        settled[drain] = status
    kicked = None
    if starter is not None and (pending or settled):
        started = kick(rt, dataset, starter)
        kicked = str(started["run_id"]) if started and started.get("started") else None
    if settled or kicked:
        logger.warning(
            "swept a dataset with no drain settling it",
            extra={"dataset": dataset, "settled": settled, "kicked": kicked},
        )
    return {"settled": settled, "kicked": kicked}


def sweep_request(event: Any) -> list[str] | None:
    """The datasets an event asks to sweep: its `datasets` list, else None (every dataset; a scheduled
    EventBridge event names none)."""
    datasets = event.get("datasets") if isinstance(event, dict) else None
    if datasets is None:
        return None
    if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
        raise InvalidInputError(f"sweep_drains: 'datasets' must be a list of dataset names, got {datasets!r}")
    return list(datasets)


def sweep_drains(
    rt: Runtime,
    datasets: Sequence[str] | None = None,
    *,
    executions: Executions | None = None,
    starter: PipelineStarter | None = None,
) -> dict[str, dict[str, Any]]:
    """`sweep_dataset` for each dataset (all by default); what it did, for the datasets it touched."""
    for name in datasets or []:
        rt.contract(name)  # ContractError naming an unknown dataset
    names = list(datasets or rt.contracts.names())
    if not names:
        return {}
    executions = executions or default_executions(rt)
    starter = starter or default_starter(rt)
    out: dict[str, dict[str, Any]] = {}
    for dataset in names:
        done = sweep_dataset(rt, dataset, executions, starter)
        if done["settled"] or done["kicked"]:
            out[dataset] = done
    if out:
        logger.info("drain sweep", extra={"swept": json.dumps(out)})
    return out
