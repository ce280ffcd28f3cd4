"""BackfillLandingFunction over moto (S3, DynamoDB, Step Functions in-process), and the drain sweep.

The backfill lists the landing bucket a page at a time, pins each key's current version, and enqueues it
through the same code path as on_object_created, so an object already pending or processed is not queued
again. The sweep (PlanMaintenance) settles a drain whose end event was lost and kicks a drain for objects
that no drain would otherwise take.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import test_handlers
from test_handlers import event, executions, invoke, pending

from lakehouse.errors import ContractError, InvalidInputError
from lakehouse.events import ObjectCreated, execution_name

ORDERS = [f"orders/ingest_date=2026-11-26/part {n}.csv" for n in range(3)]
LINEITEM = [f"lineitem/lineitem_{n}.csv" for n in range(2)]
UNKNOWN = "nobody/claims_this.csv"

# The fixtures of the handler tests: moto's S3, DynamoDB and Step Functions, the template's environment.
aws = test_handlers.aws
template_env = test_handlers.template_env


class Clock:
    """A Lambda context whose remaining time is what the test says."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms
        self.function_name = "lakehouse-dev-backfill_landing"
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:backfill:live"
        self.aws_request_id = "req"
        self.memory_limit_in_mb = 512
        self.function_version = "1"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def backfill(payload: dict[str, Any], remaining_ms: int | None = None) -> dict[str, Any]:
    from test_handlers import handler

    if remaining_ms is None:
        result: dict[str, Any] = invoke("backfill_landing", payload)
        return result
    out: dict[str, Any] = handler("backfill_landing")(payload, Clock(remaining_ms))
    return out


def land(aws: dict[str, Any], keys: list[str]) -> dict[str, str]:
    """Put each key in the (versioned) landing bucket; key -> its version id."""
    s3 = aws["s3"]
    s3.put_bucket_versioning(Bucket="landing", VersioningConfiguration={"Status": "Enabled"})
    versions = {}
    for key in keys:
        versions[key] = s3.put_object(Bucket="landing", Key=key, Body=f"bytes of {key}\n".encode())[
            "VersionId"
        ]
    return versions


def object_id(aws: dict[str, Any], dataset: str, key: str) -> str:
    head = aws["s3"].head_object(Bucket="landing", Key=key)
    obj = ObjectCreated(bucket="landing", key=key, version_id=head["VersionId"], etag=head["ETag"].strip('"'))
    return execution_name(dataset, obj)


def test_the_sample_event_is_a_valid_request(aws: dict[str, Any]) -> None:
    land(aws, [*ORDERS, *LINEITEM])
    result = backfill(event("backfill_landing.json"))
    assert (result["queued"], result["done"], result["continuation_token"]) == (2, True, None)


def test_backfill_queues_both_datasets_and_reports_unknown_keys(aws: dict[str, Any]) -> None:
    land(aws, [*ORDERS, *LINEITEM, UNKNOWN, "orders/"])  # "orders/": a folder marker

    result = backfill({})

    assert result["done"] is True
    assert result["continuation_token"] is None
    assert (result["listed"], result["queued"], result["already"]) == (7, 5, 0)
    assert (result["unknown"], result["unknown_keys"], result["skipped"]) == (1, [UNKNOWN], 1)
    # Each object is pending under the id an object-created event of that version gets.
    items = {i["key"]: i for i in pending(aws)}
    assert set(items) == {*ORDERS, *LINEITEM}
    for key, item in items.items():
        dataset = "orders" if key.startswith("orders/") else "lineitem"
        assert item["dataset"] == dataset
        assert item["object_id"] == object_id(aws, dataset, key)
        assert item["version_id"] == aws["s3"].head_object(Bucket="landing", Key=key)["VersionId"]
    # One drain per dataset, started after its lease was taken.
    drains = {json.loads(e["input"])["dataset"]: e["name"] for e in executions(aws)}
    assert drains == result["drains"]
    assert set(drains) == {"orders", "lineitem"}


def test_max_keys_pages_and_the_continuation_token_round_trips(aws: dict[str, Any]) -> None:
    keys = [*ORDERS, *LINEITEM, UNKNOWN]
    land(aws, keys)
    request: dict[str, Any] = {"max_keys": 2}
    results = []
    for _ in range(10):
        # 5 s left: below the safety margin after one page, so each invocation does one page.
        result = backfill(request, remaining_ms=5_000)
        results.append(result)
        if result["continuation_token"] is None:
            break
        request = {"max_keys": 2, "continuation_token": result["continuation_token"]}

    assert [r["pages"] for r in results] == [1, 1, 1]
    assert [r["listed"] for r in results] == [2, 2, 2]
    assert [r["done"] for r in results] == [False, False, True]
    assert results[0]["continuation_token"] == sorted(keys)[1]  # S3 StartAfter: the last key done
    assert sum(r["queued"] for r in results) == 5
    assert sum(r["unknown"] for r in results) == 1
    assert sorted(i["key"] for i in pending(aws)) == sorted([*ORDERS, *LINEITEM])
    # With time to spare one invocation pages on to the end (and queues nothing twice).
    again = backfill({"max_keys": 2})
    assert (again["pages"], again["queued"], again["already"], again["done"]) == (3, 0, 5, True)


def test_a_dataset_request_takes_only_its_objects(aws: dict[str, Any]) -> None:
    land(aws, [*ORDERS, *LINEITEM, UNKNOWN])

    result = backfill({"dataset": "lineitem"})

    assert (result["prefix"], result["queued"], result["unknown"]) == ("lineitem/", 2, 0)
    assert sorted(i["key"] for i in pending(aws)) == LINEITEM


def test_objects_pending_or_ingested_live_are_not_queued_again(aws: dict[str, Any]) -> None:
    versions = land(aws, ORDERS)
    # ORDERS[0] arrived live: its event queued it (pending).
    live = event("on_object_created_eventbridge.json")
    live["detail"]["object"].update(key=ORDERS[0].replace("=", "%3D").replace(" ", "%20"))
    live["detail"]["object"]["version-id"] = versions[ORDERS[0]]
    [run] = invoke("on_object_created", live)["runs"]
    assert run["queued"] is True
    # ORDERS[1] was ingested live long ago: its record in the run ledger says so, nothing is pending.
    done = object_id(aws, "orders", ORDERS[1])
    runtime().adapters.ledger.put(done, {"run_id": done, "dataset": "orders", "status": "SUCCEEDED"})

    result = backfill({"prefix": "orders/"})

    assert (result["queued"], result["already"]) == (1, 2)
    items = {i["key"]: i["object_id"] for i in pending(aws)}
    assert items == {ORDERS[0]: run["run_id"], ORDERS[2]: object_id(aws, "orders", ORDERS[2])}
    assert len(executions(aws)) == 1  # the live arrival's drain holds the lease: no second drain


def test_a_new_version_of_a_key_is_a_new_object(aws: dict[str, Any]) -> None:
    land(aws, ORDERS[:1])
    backfill({})
    aws["s3"].put_object(Bucket="landing", Key=ORDERS[0], Body=b"other bytes\n")

    result = backfill({})

    assert (result["queued"], result["already"]) == (1, 0)
    assert len(pending(aws)) == 2


@pytest.mark.parametrize(
    ("payload", "error", "names"),
    [
        ({"max_keys": 0}, InvalidInputError, "max_keys"),
        ({"max_keys": 5000}, InvalidInputError, "max_keys"),
        ({"prefx": "orders/"}, InvalidInputError, "prefx"),
        ({"dataset": "no_such_dataset"}, ContractError, "no_such_dataset"),
        ({"dataset": "orders", "prefix": "lineitem/"}, InvalidInputError, "lineitem/"),
    ],
)
def test_a_bad_request_is_refused_by_name(
    aws: dict[str, Any], payload: dict[str, Any], error: type[Exception], names: str
) -> None:
    land(aws, ORDERS)
    with pytest.raises(error, match=names):
        backfill(payload)
    assert pending(aws) == []


# -- the drain sweep (SweepDrainsFunction, scheduled) ----------------------------------------------------


def lease_owner(aws: dict[str, Any], table: str) -> str | None:
    item = aws["dynamodb"].get_item(TableName="lakehouse-dev-leases", Key={"table_name": {"S": table}})
    return item["Item"]["owner"]["S"] if "Item" in item else None


def runtime() -> Any:
    from lakehouse.stages.runtime import get_runtime

    return get_runtime()


def test_the_sweep_settles_a_drain_whose_end_event_was_lost_and_kicks_the_next(aws: dict[str, Any]) -> None:
    from lakehouse.stages.drain import claim_batch
    from lakehouse.stages.sweep import sweep_drains

    land(aws, ORDERS)
    first = backfill({"prefix": ORDERS[0]})  # one object queued, its drain started
    drain = first["drains"]["orders"]
    claim_batch(runtime(), {"run_id": drain, "dataset": "orders"})  # the drain claimed it ...
    aws["sfn"].stop_execution(executionArn=executions(aws)[0]["executionArn"], error="States.Timeout")
    # ... and ended (aborted) without its end being settled: RecordRunOutcome never ran. Meanwhile two
    # more objects arrived; their kicks found the lease held by the drain (which restarts it by name).
    later = backfill({"prefix": "orders/ingest_date=2026-11-26/part "})
    assert later["queued"] == 2
    assert lease_owner(aws, "orders") == drain
    assert len(executions(aws)) == 1

    swept = invoke("sweep_drains", event("sweep_drains.json"))["swept"]

    assert list(swept) == ["orders"]
    assert swept["orders"]["settled"] == {drain: "FAILED"}
    new = swept["orders"]["kicked"]
    assert new
    assert new != drain
    assert lease_owner(aws, "orders") == new
    # The claimed object took its drain's outcome and left the pending set; the others wait for `new`.
    assert runtime().adapters.ledger.get(drain)["status"] == "FAILED"
    assert sorted(i["key"] for i in pending(aws)) == ORDERS[1:]
    assert {e["name"]: e["status"] for e in executions(aws)} == {drain: "ABORTED", new: "RUNNING"}
    # A second sweep finds the new drain running: nothing to do.
    assert sweep_drains(runtime()) == {}


def test_the_sweep_kicks_a_drain_for_objects_pending_behind_a_free_lease(aws: dict[str, Any]) -> None:
    from lakehouse.stages.sweep import sweep_drains

    land(aws, LINEITEM)
    backfill({})
    [execution] = executions(aws)
    aws["sfn"].stop_execution(executionArn=execution["executionArn"])
    # The drain released its lease (its ReleaseLease state) but never claimed: nothing would kick again.
    aws["dynamodb"].delete_item(TableName="lakehouse-dev-leases", Key={"table_name": {"S": "lineitem"}})

    swept = sweep_drains(runtime(), ["lineitem", "orders"])

    assert list(swept) == ["lineitem"]
    assert swept["lineitem"]["settled"] == {}  # no item or lease names the old drain
    assert lease_owner(aws, "lineitem") == swept["lineitem"]["kicked"]
    assert len(pending(aws)) == 2  # still pending: the new drain takes them


@pytest.mark.parametrize(
    ("payload", "error", "names"),
    [
        ({"datasets": "orders"}, InvalidInputError, "datasets"),
        ({"datasets": ["no_such_dataset"]}, ContractError, "no_such_dataset"),
    ],
)
def test_a_bad_sweep_request_is_refused_by_name(
    aws: dict[str, Any], payload: dict[str, Any], error: type[Exception], names: str
) -> None:
    with pytest.raises(error, match=names):
        invoke("sweep_drains", payload)
