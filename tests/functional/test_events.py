"""events/: one realistic sample per function of template.yaml, consistent with each other."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.contracts.loader import ContractRegistry
from lakehouse.events import execution_name, parse_message
from lakehouse.sql.checks import athena_table, compile_checks, metrics_from_athena
from lakehouse.stages.runtime import RunState

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
RUN_ID = "orders-1a4e0fbe4e8ab9ddefc0009cded7b8be4cfa0ffe"
STAGE_EVENTS = [
    "manage_lease_acquire",
    "manage_lease_release",
    "inspect_object",
    "commit_object",
    "read_job_result",
    "register_table",
    "evaluate_checks",
    "rollback_table",
    "quarantine_object",
]


def load(name: str) -> Any:
    return json.loads((EVENTS / f"{name}.json").read_text())


def template_function_dirs() -> set[str]:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=Loader)
    return {
        Path(r["Properties"]["CodeUri"]).name
        for r in template["Resources"].values()
        if r.get("Type") == "AWS::Serverless::Function"
    }


def test_every_function_has_a_sample_event() -> None:
    names = {p.stem for p in EVENTS.glob("*.json")}
    for directory in template_function_dirs():
        assert any(n == directory or n.startswith(f"{directory}_") for n in names), directory


def test_every_sample_is_a_json_object() -> None:
    for path in EVENTS.glob("*.json"):
        assert isinstance(json.loads(path.read_text()), dict), path.name


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        # S3 notifications form-encode (space = '+'); EventBridge percent-encodes ('+' is a literal plus).
        ("on_object_created_s3", "orders/ingest_date%3D2026-11-26/orders+part+1.csv"),
        ("on_object_created_eventbridge", "orders/ingest_date%3D2026-11-26/orders%20part%201.csv"),
    ],
)
def test_object_created_samples_carry_the_key_encoded_as_their_source_does(name: str, encoded: str) -> None:
    text = (EVENTS / f"{name}.json").read_text()
    assert encoded in text
    assert "orders part 1.csv" not in text


def test_sqs_sample_bodies_are_eventbridge_events() -> None:
    batch = load("on_object_created_sqs")
    assert len(batch["Records"]) == 2
    for record in batch["Records"]:
        assert record["eventSource"] == "aws:sqs"
        body = json.loads(record["body"])
        assert body["source"] == "aws.s3"
        assert body["detail-type"] == "Object Created"
        assert "%3D" in body["detail"]["object"]["key"]
    assert len({r["messageId"] for r in batch["Records"]}) == 2


@pytest.mark.parametrize("name", STAGE_EVENTS)
def test_stage_samples_are_one_run_of_the_object_created_sample(name: str) -> None:
    state = RunState.parse(load(name))
    assert state.run_id == RUN_ID
    assert state.dataset == "orders"
    obj = parse_message(load("on_object_created_eventbridge"))[0]
    assert execution_name("orders", obj) == RUN_ID
    if "key" in state.raw:
        assert state.bucket == "landing"
        assert state.key == obj.key


def test_state_grows_along_the_machine() -> None:
    """Each sample holds what the states before it added (docs/ARCHITECTURE.md, state data)."""
    order = ["inspect_object", "commit_object", "register_table", "evaluate_checks", "rollback_table"]
    sections = [set(load(n)) for n in order]
    for before, after in itertools.pairwise(sections):
        assert before <= after
    assert {"lease"} <= sections[0]
    assert {"inspection"} <= sections[1]
    assert {"commit"} <= sections[2]
    assert {"catalog", "athena", "check_rows"} <= sections[3]
    assert {"checks", "error"} <= sections[4]
    assert load("read_job_result")["inspection"]["route"] == "glue"


def test_checks_sample_matches_the_orders_contract() -> None:
    contract = ContractRegistry.from_dir(ROOT / "datasets").get("orders")
    state = load("evaluate_checks")
    header = [c["VarCharValue"] for c in state["check_rows"]["Rows"][0]["Data"]]
    assert header == [c.name for c in contract.checks]
    assert len(metrics_from_athena(state["check_rows"])) == len(contract.checks)
    query = compile_checks(contract, athena_table("lakehouse"), run_id=RUN_ID, scope="batch")
    assert query is not None
    assert state["inspection"]["checks_query"] == query.athena()


def test_quarantine_sample_error_is_shaped_like_step_functions_gives_it() -> None:
    error = load("quarantine_object")["error"]
    assert set(error) == {"Error", "Cause"}
    cause = json.loads(error["Cause"])  # a Lambda error: the payload as a JSON string
    assert cause["errorType"] == error["Error"]
    assert "orders part 1.csv" in cause["errorMessage"]
    rollback_error = load("rollback_table")["error"]
    assert rollback_error["Error"] == "ChecksFailedError"
    assert isinstance(json.loads(rollback_error["Cause"]), list)


def test_lease_samples() -> None:
    """The lease tasks pass the whole state as "run" (Parameters: {"action": ..., "run.$": "$"})."""
    acquire, release = load("manage_lease_acquire"), load("manage_lease_release")
    assert acquire["action"] == "acquire"
    assert "lease" not in acquire["run"]  # the execution input: nothing acquired yet
    assert release["action"] == "release"
    assert release["run"]["lease"]["owner"] == RUN_ID
    assert release["run"]["checks"]["passed"] is True


def test_lease_samples_match_the_state_machine_parameters() -> None:
    definition = json.loads((ROOT / "statemachine" / "ingest.asl.json").read_text())
    for state, sample in (
        ("AcquireTableLease", "manage_lease_acquire"),
        ("ReleaseLease", "manage_lease_release"),
    ):
        parameters = definition["States"][state]["Parameters"]
        assert set(load(sample)) == {k.removesuffix(".$") for k in parameters}, state


def test_maintenance_samples() -> None:
    assert load("plan_maintenance") == {}  # the schedule's input (template: Input "{}")
    item = load("maintain_table")
    assert item["dataset"] == "orders"
    assert item["route"] == "lambda"
    # What the Map's ItemSelector gives each iteration (plus the lease AcquireTableLease added).
    definition = json.loads((ROOT / "statemachine" / "maintenance.asl.json").read_text())
    selector = definition["States"]["MaintainTables"]["ItemSelector"]
    assert set(item) == {k.removesuffix(".$") for k in selector} | {"lease"}
