"""The local RunRecorder records a run's final status through the `record_outcome` stage, as AWS does."""

from __future__ import annotations

import copy
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from lakehouse.access import ROLE_ENV
from lakehouse.local.iam import PolicyModel, Request, evaluate
from lakehouse.local.recorder import OUTCOME_ROLE, RunRecorder
from lakehouse.local.sfn import ExecutionResult, StateVisit

ROOT = Path(__file__).resolve().parents[2]
RUN_ID = "orders-1a4e0fbe4e8ab9ddefc0009cded7b8be4cfa0ffe"
FAILURE_PATH = ["AcquireTableLease", "Inspect", "Rollback", "Quarantine", "Alert", "ReleaseLeaseAfterFailure"]


class RoleLedger:
    """A ledger that remembers as which role each call was made."""

    def __init__(self, records: dict[str, dict[str, Any]]) -> None:
        self.records = copy.deepcopy(records)
        self.calls: list[tuple[str, str]] = []

    def get(self, run_id: str) -> dict[str, Any] | None:
        self.calls.append(("get", os.environ.get(ROLE_ENV, "")))
        return copy.deepcopy(self.records.get(run_id))

    def put(self, run_id: str, record: dict[str, Any]) -> None:
        self.calls.append(("put", os.environ.get(ROLE_ENV, "")))
        self.records[run_id] = copy.deepcopy(record)


def _result(status: str, error: str | None, visited: list[str], output: Any = None) -> ExecutionResult:
    start = datetime(2026, 11, 26, 10, 15, tzinfo=UTC)
    visits = [
        StateVisit(name, start + timedelta(seconds=i), start + timedelta(seconds=i + 1))
        for i, name in enumerate(visited)
    ]
    return ExecutionResult(
        execution_arn=f"arn:aws:states:us-east-1:000000000000:execution:IngestStateMachine:{RUN_ID}",
        status=status,
        output=output,
        error=error,
        cause="see the history" if error else None,
        history=[],
        states_visited=visits,
    )


def _record(ledger: RoleLedger, result: ExecutionResult, tmp_path: Path) -> Any:
    def no_table(dataset: str) -> str:
        raise FileNotFoundError(dataset)

    rt = SimpleNamespace(adapters=SimpleNamespace(ledger=ledger), table_uri=no_table, storage_options={})
    recorder = RunRecorder(rt, tmp_path, project=None, reports=False)  # type: ignore[arg-type]
    return recorder.record(result, RUN_ID, {"run_id": RUN_ID, "dataset": "orders"}, 1.5)


def test_a_failed_quarantine_is_not_recorded_as_quarantined(tmp_path: Path) -> None:
    """The Quarantine stage failed (its Catch goes on to Alert): the run visited Quarantine, but no copy
    and no QUARANTINED record exist. The old recorder said QUARANTINED from the path alone."""
    ledger = RoleLedger({RUN_ID: {"run_id": RUN_ID, "status": "ROLLED_BACK", "dataset": "orders"}})
    record = _record(ledger, _result("FAILED", "IngestFailed", FAILURE_PATH), tmp_path)
    assert record.status == "FAILED"
    assert ledger.records[RUN_ID]["status"] == "FAILED"
    assert ledger.records[RUN_ID]["path"] == FAILURE_PATH


def test_a_quarantined_run_is_recorded_with_its_local_extras(tmp_path: Path) -> None:
    ledger = RoleLedger({RUN_ID: {"run_id": RUN_ID, "status": "QUARANTINED", "error": "SchemaMismatchError"}})
    record = _record(ledger, _result("FAILED", "IngestFailed", FAILURE_PATH), tmp_path)
    assert record.status == "QUARANTINED"
    stored = ledger.records[RUN_ID]
    assert (stored["execution_status"], stored["duration_ms"]) == ("FAILED", 1500.0)
    assert [s["name"] for s in stored["states"]] == FAILURE_PATH
    assert stored["finished_at"]


def test_a_duplicate_success_and_the_outcome_role(tmp_path: Path) -> None:
    ledger = RoleLedger({RUN_ID: {"run_id": RUN_ID, "status": "DUPLICATE"}})
    output = {"run_id": RUN_ID, "commit": {"status": "duplicate", "duplicate_of": "orders-older"}}
    path = ["AcquireTableLease", "Inspect", "CommitWithLambda", "IsDuplicate", "ReleaseLease", "Done"]
    record = _record(ledger, _result("SUCCEEDED", None, path, output), tmp_path)
    assert record.status == "DUPLICATE"
    assert ledger.records[RUN_ID]["route"] == "lambda"
    # record_outcome reads and writes as RecordRunOutcomeFunction's role; the local extras as the executor.
    assert ledger.calls == [("get", OUTCOME_ROLE), ("put", OUTCOME_ROLE), ("put", "")]


def test_the_outcome_role_may_write_the_ledger_and_settle_the_drain_and_nothing_else() -> None:
    model = PolicyModel.load(ROOT)
    statements = model.role(OUTCOME_ROLE).allow_statements()
    ledger = model.resolver.value({"Fn::GetAtt": ["RunLedgerTable", "Arn"]})
    leases = model.resolver.value({"Fn::GetAtt": ["LeaseTable", "Arn"]})
    for action in ("dynamodb:GetItem", "dynamodb:PutItem"):
        assert evaluate(statements, Request(action, ledger)).allowed, action
    assert not evaluate(statements, Request("dynamodb:DeleteItem", ledger)).allowed
    # The end of an execution releases its lease and may take it for the next drain.
    for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"):
        assert evaluate(statements, Request(action, leases)).allowed, action
    pending = model.resolver.value({"Fn::GetAtt": ["PendingObjectsTable", "Arn"]})
    # Its drain's claimed items come from the claimed_by_drain index; the backlog is never read.
    assert evaluate(statements, Request("dynamodb:Query", f"{pending}/index/claimed_by_drain")).allowed
    assert not evaluate(statements, Request("dynamodb:Query", pending)).allowed
    assert not evaluate(statements, Request("dynamodb:PutItem", pending)).allowed
    assert not evaluate(statements, Request("s3:GetObject", "arn:aws:s3:::lake/tables/orders/x")).allowed
