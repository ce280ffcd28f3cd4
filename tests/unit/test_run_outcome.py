"""RecordRunOutcome: the final status of a run, from its execution's end (lakehouse.stages.outcome)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lakehouse.errors import InvalidInputError
from lakehouse.stages.outcome import outcome_from_event, record_outcome
from lakehouse.state import RunOutcome, RunStatus, final_status

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "events" / "record_run_outcome.json").read_text())
RUN_ID = "orders-1a4e0fbe4e8ab9ddefc0009cded7b8be4cfa0ffe"


def _event(status: str, output: Any = None, **detail: Any) -> dict[str, Any]:
    event = copy.deepcopy(SAMPLE)
    event["detail"].update(status=status, output=output, **detail)
    return event


class DictLedger:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def get(self, run_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.records.get(run_id))

    def put(self, run_id: str, record: dict[str, Any]) -> None:
        self.records[run_id] = copy.deepcopy(record)


def _runtime(records: dict[str, dict[str, Any]] | None = None) -> Any:
    ledger = DictLedger()
    ledger.records.update(records or {})
    return SimpleNamespace(adapters=SimpleNamespace(ledger=ledger))


def _outcome(status: str, error: str | None = None, commit: str | None = None) -> RunOutcome:
    return RunOutcome.model_validate(
        {"run_id": RUN_ID, "execution_status": status, "error": error, "commit_status": commit}
    )


# -- the status ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "commit", "recorded", "expected"),
    [
        ("SUCCEEDED", None, "committed", "CHECKED", "SUCCEEDED"),
        ("SUCCEEDED", None, "duplicate", "DUPLICATE", "DUPLICATE"),
        ("SUCCEEDED", None, "duplicate", None, "DUPLICATE"),
        # EventBridge left the output out (over 248 KB): the commit stage's DUPLICATE stands.
        ("SUCCEEDED", None, None, "DUPLICATE", "DUPLICATE"),
        ("SUCCEEDED", None, None, "CHECKED", "SUCCEEDED"),
        ("FAILED", "IngestFailed", None, "QUARANTINED", "QUARANTINED"),
        # AlertAfterCommit's path ends in IngestFailed too, after good checks and without a quarantine.
        ("FAILED", "IngestFailed", None, "CHECKED", "FAILED"),
        ("FAILED", "LeaseUnavailable", None, "STARTED", "FAILED"),
        ("FAILED", "States.Runtime", None, "QUARANTINED", "FAILED"),
        ("TIMED_OUT", "States.Timeout", None, "COMMITTED", "FAILED"),
        ("ABORTED", None, None, "RUNNING", "FAILED"),
    ],
)
def test_final_status(
    status: str, error: str | None, commit: str | None, recorded: RunStatus | None, expected: str
) -> None:
    assert final_status(_outcome(status, error, commit), recorded) == expected


def test_a_running_execution_is_not_an_outcome() -> None:
    with pytest.raises(InvalidInputError, match="execution_status"):
        outcome_from_event(_event("RUNNING"))


# -- the EventBridge event ----------------------------------------------------------------------------


def test_the_sample_event_is_a_committed_success() -> None:
    outcome = outcome_from_event(SAMPLE)
    assert outcome.run_id == RUN_ID
    assert outcome.execution_status == "SUCCEEDED"
    assert outcome.commit_status == "committed"
    assert outcome.error is None
    assert outcome.execution_arn == SAMPLE["detail"]["executionArn"]


def test_a_duplicate_run_is_read_from_the_output_string() -> None:
    output = json.dumps({"run_id": RUN_ID, "commit": {"status": "duplicate", "duplicate_of": "orders-x"}})
    outcome = outcome_from_event(_event("SUCCEEDED", output))
    assert outcome.commit_status == "duplicate"
    assert final_status(outcome, "DUPLICATE") == "DUPLICATE"


@pytest.mark.parametrize("output", [None, "", "not json", json.dumps(["a"]), json.dumps({"commit": "x"})])
def test_an_output_without_a_commit_has_no_commit_status(output: Any) -> None:
    assert outcome_from_event(_event("SUCCEEDED", output)).commit_status is None


def test_a_failed_execution_carries_its_error_and_cause_and_no_output() -> None:
    outcome = outcome_from_event(
        _event("FAILED", None, error="IngestFailed", cause="The run was rolled back")
    )
    assert (outcome.execution_status, outcome.error, outcome.cause) == (
        "FAILED",
        "IngestFailed",
        "The run was rolled back",
    )
    assert outcome.commit_status is None


@pytest.mark.parametrize("status", ["TIMED_OUT", "ABORTED"])
def test_timed_out_and_aborted_executions_fail(status: str) -> None:
    outcome = outcome_from_event(_event(status, None, error=None, cause=None))
    assert outcome.execution_status == status
    assert final_status(outcome, "COMMITTED") == "FAILED"


def test_another_event_is_refused_by_name() -> None:
    with pytest.raises(InvalidInputError, match="Step Functions Execution Status Change"):
        outcome_from_event({**SAMPLE, "detail-type": "Object Created"})
    with pytest.raises(InvalidInputError, match="detail object"):
        outcome_from_event({**SAMPLE, "detail": None})


def test_an_execution_name_that_is_no_run_id_is_refused_before_any_write() -> None:
    with pytest.raises(InvalidInputError):
        outcome_from_event(_event("SUCCEEDED", None, name="../etc"))


# -- the ledger record --------------------------------------------------------------------------------


def test_record_merges_the_outcome_into_the_stages_record() -> None:
    rt = _runtime({RUN_ID: {"run_id": RUN_ID, "status": "CHECKED", "dataset": "orders", "commit": {"x": 1}}})
    record = record_outcome(rt, outcome_from_event(SAMPLE))
    assert record["status"] == "SUCCEEDED"
    assert record["execution_status"] == "SUCCEEDED"
    assert record["dataset"] == "orders"
    assert record["commit"] == {"x": 1}
    assert record["finished_at"]
    assert record["error"] is None
    assert rt.adapters.ledger.records[RUN_ID] == record


def test_a_quarantined_run_keeps_the_error_its_quarantine_recorded() -> None:
    stages = {"run_id": RUN_ID, "status": "QUARANTINED", "error": "SchemaMismatchError", "message": "bad"}
    rt = _runtime({RUN_ID: stages})
    event = _event("FAILED", None, error="IngestFailed", cause="The run was rolled back")
    record = record_outcome(rt, outcome_from_event(event))
    assert record["status"] == "QUARANTINED"
    assert record["error"] == {
        "error": "SchemaMismatchError",
        "message": "bad",
        "execution_error": "IngestFailed",
    }
    # EventBridge may deliver the event again: the same record.
    again = record_outcome(rt, outcome_from_event(event))
    assert {k: v for k, v in again.items() if not k.endswith("_at")} == {
        k: v for k, v in record.items() if not k.endswith("_at")
    }


def test_a_run_the_ledger_never_saw_still_gets_its_outcome() -> None:
    rt = _runtime()
    record = record_outcome(rt, _outcome("TIMED_OUT", "States.Timeout").model_dump())
    assert record["status"] == "FAILED"
    assert record["error"] == {"error": "States.Timeout", "message": None}
    assert rt.adapters.ledger.records[RUN_ID]["status"] == "FAILED"
