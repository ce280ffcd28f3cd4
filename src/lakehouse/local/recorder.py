"""The run recorder: what one local execution did, merged into the run ledger and the HTML report.

The stages write their own parts of a run's ledger record as they go (STARTED, the commit, the
quarantine...); at the end of an execution `RunRecorder.record` adds the outcome: the final status, the
route, the path through the state machine with per-state timings, the table version and the error that
sent the run down the failure path. With reports on, it also rewrites `<home>/reports/`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse import tables
from lakehouse.local.project import Project
from lakehouse.local.sfn import ExecutionResult
from lakehouse.stages.runtime import Runtime
from lakehouse.state import FAILED_STATUSES, RunStatus
from lakehouse.state import RunRecord as LedgerRecord


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
        """Merge what the execution did into the run ledger (the stages have written their parts)."""
        state = final_state(result)
        visited = result.visited_names
        commit: dict[str, Any] = state["commit"] if isinstance(state.get("commit"), dict) else {}
        inspection: dict[str, Any] = state["inspection"] if isinstance(state.get("inspection"), dict) else {}
        status: RunStatus
        if result.succeeded:
            status = "DUPLICATE" if commit.get("status") == "duplicate" else "SUCCEEDED"
        else:
            status = "QUARANTINED" if "Quarantine" in visited else "FAILED"
        route = inspection.get("route") or ("glue" if "TransformWithGlue" in visited else None)
        if "CommitWithLambda" in visited:
            route = "lambda"
        dataset = str(payload.get("dataset", ""))
        version_now = None
        with contextlib.suppress(Exception):
            version_now = tables.table_version(self.rt.table_uri(dataset), self.rt.storage_options)
        error = state.get("error") if isinstance(state.get("error"), dict) else None
        ledger = self.rt.adapters.ledger
        existing = ledger.get(name) or {}
        states = [
            {
                "name": v.name,
                "entered": _iso(v.entered),
                "exited": _iso(v.exited),
                "duration_ms": None if v.duration_s is None else round(v.duration_s * 1000, 1),
            }
            for v in result.states_visited
        ]
        data: dict[str, Any] = {
            **existing,
            **{k: v for k, v in payload.items() if k not in existing},
            "run_id": name,
            "status": status,
            "execution_status": result.status,
            "execution_arn": result.execution_arn,
            "route": route,
            "path": visited,
            "states": states,
            "duration_ms": round(elapsed_s * 1000, 1),
            "inspection": {k: v for k, v in inspection.items() if k != "checks_query"}
            or existing.get("inspection"),
            "checks_query": inspection.get("checks_query"),
            "commit": commit or existing.get("commit"),
            "checks": state.get("checks") or existing.get("checks"),
            "rollback": state.get("rollback") or existing.get("rollback"),
            "quarantine": state.get("quarantine") or existing.get("quarantine"),
            "table_version": version_now,
            "version_before": inspection.get("version_before", commit.get("version_before")),
            "version_after": commit.get("version_after"),
            "error": _error_summary(error, result) if status in FAILED_STATUSES else None,
            "finished_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "updated_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        if self.reports:
            data["report"] = self._write_report(data)
        ledger.put(name, LedgerRecord.model_validate(data).model_dump(mode="json"))
        return RunRecord(name, status, data)

    def _write_report(self, data: dict[str, Any]) -> str:
        from lakehouse.local.report import write_reports

        definition = json.loads(self.project.ingest_definition())
        return str(write_reports(self.home, data, definition, self.rt.adapters.ledger.list(limit=1000)))


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
