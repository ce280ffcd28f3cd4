"""`RecordRunOutcome`: the one owner of a run's final status in the run ledger, in AWS and locally.

In AWS an EventBridge rule sends every "Step Functions Execution Status Change" of IngestStateMachine
that ends an execution (SUCCEEDED, FAILED, TIMED_OUT, ABORTED) to `functions/record_run_outcome`; locally
`lakehouse.local.recorder.RunRecorder` calls `record_outcome` when an execution ends, then adds its local
extras (route, path, per-state timings, report). The stages record the statuses a run passes through
(STARTED ... QUARANTINED); this stage records how it ended (lakehouse.state.final_status).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from lakehouse.errors import InvalidInputError
from lakehouse.stages.runtime import Runtime, parse_model
from lakehouse.state import FAILED_STATUSES, RUN_STATUSES, RunOutcome, RunRecord, RunStatus, final_status

STATUS_CHANGE = "Step Functions Execution Status Change"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _commit_status(output: Any) -> Any:
    """`$.commit.status` of an execution's output (a JSON string, or null: failed, or over 248 KB)."""
    if isinstance(output, str):
        with contextlib.suppress(ValueError):
            output = json.loads(output)
    commit = output.get("commit") if isinstance(output, dict) else None
    return commit.get("status") if isinstance(commit, dict) else None


def outcome_from_event(event: Mapping[str, Any]) -> RunOutcome:
    """The `RunOutcome` of an EventBridge "Step Functions Execution Status Change" event.

    `detail` is what DescribeExecution returns: `name` (the execution name, our run id), `status`,
    `output` (a JSON string; null when the execution failed or the output was too large to include),
    `error` and `cause` (when it failed).
    """
    if event.get("detail-type") != STATUS_CHANGE or not isinstance(event.get("detail"), dict):
        raise InvalidInputError(
            f"record_run_outcome: expected an EventBridge {STATUS_CHANGE!r} event with a detail object, "
            f"got detail-type {event.get('detail-type')!r}"
        )
    detail: dict[str, Any] = event["detail"]
    value = {
        "run_id": detail.get("name"),
        "execution_status": detail.get("status"),
        "error": detail.get("error"),
        "cause": detail.get("cause"),
        "commit_status": _commit_status(detail.get("output")),
        "execution_arn": detail.get("executionArn"),
    }
    return parse_model(RunOutcome, value, "record_run_outcome: detail")


def _error_summary(outcome: RunOutcome, existing: Mapping[str, Any]) -> dict[str, Any]:
    """The error of a failed run: the one the `Quarantine` stage recorded (the handler's error class and
    message), else the execution's own error and cause."""
    recorded = existing.get("error")
    if isinstance(recorded, str) and recorded:
        return {"error": recorded, "message": existing.get("message"), "execution_error": outcome.error}
    if isinstance(recorded, dict) and recorded.get("error"):
        return dict(recorded)
    return {"error": outcome.error or outcome.execution_status, "message": outcome.cause}


def record_outcome(rt: Runtime, event: Any) -> dict[str, Any]:
    """Merge how the run's execution ended into its ledger record (a `RunOutcome`, or its dump) and
    return the record. Idempotent: EventBridge may deliver an event twice."""
    outcome = event if isinstance(event, RunOutcome) else parse_model(RunOutcome, event, "record_outcome")
    ledger = rt.adapters.ledger
    existing = ledger.get(outcome.run_id) or {"run_id": outcome.run_id}
    recorded = existing.get("status")
    status = final_status(outcome, cast(RunStatus, recorded) if recorded in RUN_STATUSES else None)
    now = _now()
    record = {
        **existing,
        "status": status,
        "execution_status": outcome.execution_status,
        "error": _error_summary(outcome, existing) if status in FAILED_STATUSES else None,
        "finished_at": now,
        "updated_at": now,
    }
    if outcome.execution_arn:
        record["execution_arn"] = outcome.execution_arn
    dumped = RunRecord.model_validate(record).model_dump(mode="json")
    ledger.put(outcome.run_id, dumped)
    return dumped


def end_execution(rt: Runtime, event: Mapping[str, Any]) -> dict[str, Any]:
    """`RecordRunOutcome` in AWS: the run's final status, then what every execution's end does
    (`lakehouse.stages.drain.settle_drain`: objects its drain still holds, its lease, the next drain)."""
    from lakehouse.stages.drain import settle_drain
    from lakehouse.stages.start import default_starter

    record = record_outcome(rt, outcome_from_event(event))
    dataset = str(record.get("dataset") or "")
    if dataset:
        nxt = settle_drain(rt, dataset, str(record["run_id"]), record["status"], default_starter(rt))
        record["next_drain"] = nxt["run_id"] if nxt else None
    return record
