"""The run recorder: what one local execution did, merged into the run ledger and the HTML report.

The stages write their own parts of a run's ledger record as they go (STARTED, the commit, the
quarantine...). When an execution ends, `RunRecorder.record` first records its final status with the
`record_outcome` stage (`lakehouse.stages.outcome`, which `RecordRunOutcomeFunction` runs in AWS), as that
function's role, then adds what only the local runtime knows: the route, the path through the state machine
with per-state timings, the table version and the error that sent the run down the failure path. With
reports on, it also rewrites `<home>/reports/`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from lakehouse import tables
from lakehouse.local import enforce
from lakehouse.local.project import Project
from lakehouse.local.sfn import ExecutionResult
from lakehouse.stages.outcome import record_outcome
from lakehouse.stages.runtime import Runtime
from lakehouse.state import FAILED_STATUSES, ExecutionStatus, RunOutcome, RunStatus
from lakehouse.state import RunRecord as LedgerRecord

# The role `record_outcome` runs as, locally as in AWS (RecordRunOutcomeFunction's SAM role).
OUTCOME_ROLE = "RecordRunOutcomeFunctionRole"
EXECUTION_STATUSES: tuple[str, ...] = get_args(ExecutionStatus)


@dataclass
class RunRecord:
    """What one local execution did (also stored in the run ledger)."""

    run_id: str
    status: RunStatus  # SUCCEEDED | DUPLICATE | QUARANTINED | FAILED
    data: dict[str, Any]

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="milliseconds")


class RunRecorder:
    """Records each finished ingest execution in the run ledger (and the report, when `reports`)."""

    def __init__(self, rt: Runtime, home: Path, project: Project, *, reports: bool) -> None:
        self.rt = rt
        self.home = home
        self.project = project
        self.reports = reports

    def record(
        self, result: ExecutionResult, name: str, payload: dict[str, Any], elapsed_s: float
    ) -> RunRecord:
        """Record how the execution ended (the `record_outcome` stage, as `RecordRunOutcomeFunction` does
        in AWS), then merge the local extras: route, path, per-state timings, versions, the report."""
        state = final_state(result)
        with enforce.as_role(OUTCOME_ROLE):
            outcome = record_outcome(self.rt, outcome_of(result, name, state))
        status: RunStatus = outcome["status"]
        data: dict[str, Any] = {
            **outcome,
            **{k: v for k, v in payload.items() if outcome.get(k) in (None, "")},
            **self._extras(result, state, outcome, str(payload.get("dataset", ""))),
            "duration_ms": round(elapsed_s * 1000, 1),
        }
        if status in FAILED_STATUSES:
            data["error"] = _error_summary(_section(state, "error") or None, result)
        if self.reports:
            data["report"] = self._write_report(data)
        self.rt.adapters.ledger.put(name, LedgerRecord.model_validate(data).model_dump(mode="json"))
        return RunRecord(name, status, data)

    def _extras(
        self, result: ExecutionResult, state: dict[str, Any], existing: dict[str, Any], dataset: str
    ) -> dict[str, Any]:
        """What only the local runtime knows of a run: its path and timings, the sections of its final
        state, and the table's version now."""
        commit = _section(state, "commit")
        inspection = _section(state, "inspection")
        return {
            "route": _route(inspection, result.visited_names),
            "path": result.visited_names,
            "states": _state_timings(result),
            "inspection": {k: v for k, v in inspection.items() if k != "checks_query"}
            or existing.get("inspection"),
            "checks_query": inspection.get("checks_query"),
            "commit": commit or existing.get("commit"),
            **{
                key: state.get(key) or existing.get(key)
                for key in ("checks", "rollback", "quarantine", "rollback_error", "quarantine_error")
            },
            "table_version": self._table_version(dataset),
            "version_before": inspection.get("version_before", commit.get("version_before")),
            "version_after": commit.get("version_after"),
        }

    def _table_version(self, dataset: str) -> int | None:
        with contextlib.suppress(Exception):
            return tables.table_version(self.rt.table_uri(dataset), self.rt.storage_options)
        return None

    def _write_report(self, data: dict[str, Any]) -> str:
        from lakehouse.local.report import write_reports

        definition = json.loads(self.project.ingest_definition())
        return str(write_reports(self.home, data, definition, self.rt.adapters.ledger.list(limit=1000)))


def outcome_of(result: ExecutionResult, name: str, state: Mapping[str, Any]) -> RunOutcome:
    """The `record_outcome` input of a finished local execution (in AWS: its EventBridge event)."""
    status = result.status if result.status in EXECUTION_STATUSES else "FAILED"
    commit = _section(state, "commit")
    return RunOutcome.model_validate(
        {
            "run_id": name,
            "execution_status": status,
            "error": result.error,
            "cause": result.cause,
            "commit_status": commit.get("status")
            if commit.get("status") in ("committed", "duplicate")
            else None,
            "execution_arn": result.execution_arn,
        }
    )


def _section(state: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = state.get(name)
    return value if isinstance(value, dict) else {}


def _route(inspection: Mapping[str, Any], visited: list[str]) -> str | None:
    if "CommitWithLambda" in visited:
        return "lambda"
    route = inspection.get("route") or ("glue" if "TransformWithGlue" in visited else None)
    return None if route is None else str(route)


def _state_timings(result: ExecutionResult) -> list[dict[str, Any]]:
    return [
        {
            "name": v.name,
            "entered": _iso(v.entered),
            "exited": _iso(v.exited),
            "duration_ms": None if v.duration_s is None else round(v.duration_s * 1000, 1),
        }
        for v in result.states_visited
    ]


def final_state(result: ExecutionResult) -> dict[str, Any]:
    """The state data as the execution left it: the output of the last state that exited."""
    if isinstance(result.output, dict):
        return result.output
    for event in reversed(result.history):
        details = event.get("stateExitedEventDetails")
        if details and details.get("output"):
            with contextlib.suppress(ValueError, TypeError):
                value = json.loads(details["output"])
                if isinstance(value, dict):
                    return value
    return {}


def _error_summary(error: Mapping[str, Any] | None, result: ExecutionResult) -> dict[str, Any]:
    """The error that sent the run down the failure path, with the handler's message when there is one."""
    if not error:
        return {"error": result.error, "message": result.cause}
    cause: Any = error.get("Cause")
    with contextlib.suppress(TypeError, ValueError):
        cause = json.loads(cause)
    message = cause
    if error.get("Error") == "ChecksFailedError" and isinstance(cause, list):
        failed = [
            c for c in cause if isinstance(c, dict) and not c.get("passed") and c.get("severity") == "fail"
        ]
        message = "checks failed: " + ", ".join(
            f"{c.get('name')} (metric {c.get('metric')}, min {c.get('min')}, max {c.get('max')})"
            + (f": {c['note']}" if c.get("note") else "")
            for c in failed
        )
        return {"error": "ChecksFailedError", "message": message, "checks": cause}
    if isinstance(cause, dict):
        message = (
            cause.get("errorMessage") or cause.get("ErrorMessage") or cause.get("StateChangeReason") or cause
        )
    if isinstance(cause, dict) and cause.get("errorType") and error.get("Error") == "States.TaskFailed":
        return {"error": cause["errorType"], "message": message, "state_error": error.get("Error")}
    return {"error": error.get("Error"), "message": message}
