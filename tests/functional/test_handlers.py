"""Each Lambda handler (functions/*/app.py) on its sample event (events/*.json).

AWS-backed settings exactly as template.yaml sets them (LAKEHOUSE_BACKEND=aws): Step Functions, DynamoDB
and S3 in moto (`mock_aws`, in-process) where no Delta table is involved; where delta-rs reads or writes
S3 (inspect, commit, register, rollback) every service is moto's *server* in its own process
(tests/conftest.py), since delta-rs talks HTTP to S3 and hangs against an in-process server.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lakehouse.errors import InvalidInputError, LeaseHeldError
from lakehouse.local.sfn import LocalLambdaContext

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
REGION = "us-east-1"
KEY1 = "orders/ingest_date=2026-11-26/orders part 1.csv"
KEY2 = "orders/ingest_date=2026-11-26/orders part 2.csv"
RUN_ID = "orders-1a4e0fbe4e8ab9ddefc0009cded7b8be4cfa0ffe"
CSV_HEADER = (
    "o_orderkey,o_custkey,o_orderstatus,o_totalprice,o_orderdate,"
    "o_orderpriority,o_clerk,o_shippriority,o_comment\n"
)
PART1 = CSV_HEADER + (
    '1,37,O,131251.81,1996-01-02,5-LOW,Clerk#000000951,0,"nstructions sleep furiously among "\n'
    '2,79,O,40183.29,1996-12-01,1-URGENT,Clerk#000000880,0," foxes. pending accounts"\n'
    '3,124,F,160882.76,1993-10-14,5-LOW,Clerk#000000955,0,"sly final accounts boost"\n'
)
PART2 = CSV_HEADER + '4,137,O,31084.79,1995-10-11,5-LOW,Clerk#000000124,0,"sits. slyly regular warthogs"\n'


def event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (EVENTS / (name if name.endswith(".json") else f"{name}.json")).read_text()
    )
    return data


def handler(directory: str) -> Callable[[dict[str, Any], Any], Any]:
    module_name = f"lakehouse_fn_{directory}"
    module: ModuleType | None = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, ROOT / "functions" / directory / "app.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    fn: Callable[[dict[str, Any], Any], Any] = module.handler
    return fn


def invoke(directory: str, payload: dict[str, Any]) -> Any:
    context = LocalLambdaContext(
        function_name=f"lakehouse-dev-{directory}",
        invoked_function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:lakehouse-dev-{directory}:live",
    )
    return handler(directory)(payload, context)


def rebucket(state: dict[str, Any], buckets: dict[str, str]) -> dict[str, Any]:
    """The sample state with the test's bucket names (the samples use landing/lake/quarantine)."""
    text = json.dumps(state)
    text = text.replace('"bucket": "landing"', f'"bucket": "{buckets["landing"]}"')
    text = text.replace("s3://lake/", f"s3://{buckets['lake']}/")
    data: dict[str, Any] = json.loads(text)
    return data


@pytest.fixture(autouse=True)
def template_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Globals environment of template.yaml, with contracts from the repository, and a fresh runtime."""
    from lakehouse.stages import runtime

    monkeypatch.setattr(runtime, "_RUNTIMES", {})
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "LAKEHOUSE_HOME",
    ):
        monkeypatch.delenv(name, raising=False)
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "LAKEHOUSE_BACKEND": "aws",
        "LANDING_BUCKET": "landing",
        "LAKE_BUCKET": "lake",
        "QUARANTINE_BUCKET": "quarantine",
        "ARTIFACTS_BUCKET": "artifacts",
        "LEASE_TABLE": "lakehouse-dev-leases",
        "RUN_LEDGER_TABLE": "lakehouse-dev-runs",
        "PENDING_TABLE": "lakehouse-dev-pending",
        "GLUE_DATABASE": "lakehouse",
        "LAMBDA_ROUTE_MAX_BYTES": "536870912",
        "LEASE_TTL_SECONDS": "10800",
        "DATASETS_DIR": str(ROOT / "datasets"),  # /opt/datasets (the shared layer) in AWS
        "POWERTOOLS_SERVICE_NAME": "lakehouse",
        "POWERTOOLS_METRICS_NAMESPACE": "Lakehouse",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "LOG_LEVEL": "INFO",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def create_tables(dynamodb: Any, lease_table: str, ledger_table: str) -> None:
    """The lease and run-ledger tables as the template declares them."""
    dynamodb.create_table(
        TableName=lease_table,
        AttributeDefinitions=[{"AttributeName": "table_name", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "table_name", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.create_table(
        TableName=ledger_table,
        AttributeDefinitions=[{"AttributeName": "run_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "run_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    if "lakehouse-dev-pending" in dynamodb.list_tables()["TableNames"]:
        return
    dynamodb.create_table(TableName="lakehouse-dev-pending", **template_table("PendingObjectsTable"))


def template_table(logical_id: str) -> dict[str, Any]:
    """The key schema and indexes of a DynamoDB table as template.yaml declares them (so the tests use
    the indexes the code queries, and a change to either shows here)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=Loader)
    props = template["Resources"][logical_id]["Properties"]
    keys = ("AttributeDefinitions", "KeySchema", "LocalSecondaryIndexes", "BillingMode")
    return {k: props[k] for k in keys if k in props}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto in-process: buckets, lease/ledger tables and the ingest state machine."""
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in ("landing", "lake", "quarantine", "artifacts"):
            s3.create_bucket(Bucket=bucket)
        create_tables(
            boto3.client("dynamodb", region_name=REGION), "lakehouse-dev-leases", "lakehouse-dev-runs"
        )
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.create_state_machine(
            name="lakehouse-dev-ingest",
            definition=json.dumps({"StartAt": "Noop", "States": {"Noop": {"Type": "Pass", "End": True}}}),
            roleArn="arn:aws:iam::123456789012:role/lakehouse-dev-ingest",
        )["stateMachineArn"]
        monkeypatch.setenv("STATE_MACHINE_ARN", arn)
        yield {
            "s3": s3,
            "sfn": sfn,
            "state_machine_arn": arn,
            "dynamodb": boto3.client("dynamodb", region_name=REGION),
        }


def executions(aws: dict[str, Any]) -> list[dict[str, Any]]:
    listed = aws["sfn"].list_executions(stateMachineArn=aws["state_machine_arn"])["executions"]
    return [aws["sfn"].describe_execution(executionArn=e["executionArn"]) for e in listed]


# -- on_object_created -------------------------------------------------------------------------------


def test_sqs_batch_partial_failure_lists_only_the_bad_message(aws: dict[str, Any]) -> None:
    batch = event("on_object_created_sqs.json")
    good, bad = batch["Records"]
    bad["body"] = "this is not JSON: a poison message"

    response = invoke("on_object_created", batch)

    assert response == {"batchItemFailures": [{"itemIdentifier": bad["messageId"]}]}
    # The good object is pending, and its dataset's drain was started (lease first, then the execution).
    [item] = pending(aws)
    assert item["object_id"] == RUN_ID
    assert item["key"] == KEY1  # decoded exactly once
    assert item["bucket"] == "landing"
    assert item["dataset"] == "orders"
    assert item["version_id"] == "Lh5zR0pV7mQk3YcN8tWbX2dFgJ1sE9uA"
    [execution] = executions(aws)
    drain = json.loads(execution["input"])
    assert drain == {"run_id": execution["name"], "dataset": "orders"}
    assert "-drain-" in execution["name"]
    lease = aws["dynamodb"].get_item(TableName="lakehouse-dev-leases", Key={"table_name": {"S": "orders"}})
    assert lease["Item"]["owner"]["S"] == execution["name"]
    # The run ledger records the object as pending and the drain as started.
    item = aws["dynamodb"].get_item(TableName="lakehouse-dev-runs", Key={"run_id": {"S": RUN_ID}})["Item"]
    assert item["status"]["S"] == "PENDING"
    started = aws["dynamodb"].get_item(
        TableName="lakehouse-dev-runs", Key={"run_id": {"S": execution["name"]}}
    )
    assert started["Item"]["status"]["S"] == "STARTED"
    assert json.loads(good["body"])["detail"]["object"]["key"] != KEY1  # it was URL-encoded


def pending(aws: dict[str, Any]) -> list[dict[str, Any]]:
    items = aws["dynamodb"].scan(TableName="lakehouse-dev-pending")["Items"]
    return sorted((json.loads(i["item"]["S"]) for i in items), key=lambda i: i["key"])


def test_whole_sqs_batch_queues_every_object_and_starts_one_drain(aws: dict[str, Any]) -> None:
    response = invoke("on_object_created", event("on_object_created_sqs.json"))

    assert response == {"batchItemFailures": []}
    by_key = {i["key"]: i["object_id"] for i in pending(aws)}
    assert set(by_key) == {KEY1, KEY2}
    assert by_key[KEY1] == RUN_ID
    # One drain per table: the second object found the lease held and did not start another.
    [execution] = executions(aws)
    assert json.loads(execution["input"])["dataset"] == "orders"


def test_the_same_event_twice_queues_the_object_once(aws: dict[str, Any]) -> None:
    batch = event("on_object_created_sqs.json")
    batch["Records"] = batch["Records"][:1]

    assert invoke("on_object_created", batch) == {"batchItemFailures": []}
    assert invoke("on_object_created", batch) == {"batchItemFailures": []}
    # The other two shapes of the same object map to the same pending item too.
    eventbridge = invoke("on_object_created", event("on_object_created_eventbridge.json"))
    s3 = invoke("on_object_created", event("on_object_created_s3.json"))

    assert [i["object_id"] for i in pending(aws)] == [RUN_ID]
    assert [(r["run_id"], r["queued"]) for r in eventbridge["runs"]] == [(RUN_ID, False)]
    assert [(r["run_id"], r["queued"]) for r in s3["runs"]] == [(RUN_ID, False)]
    # Re-kicking finds the drain holding the lease and starts it under its own name: still one execution.
    [execution] = executions(aws)
    assert s3["runs"][0]["drain"] == execution["name"]


def test_object_outside_any_dataset_is_skipped_not_failed(aws: dict[str, Any]) -> None:
    message = event("on_object_created_eventbridge.json")
    message["detail"]["object"]["key"] = "unknown_dataset/file.csv"

    assert invoke("on_object_created", message) == {"runs": [None]}
    assert executions(aws) == []


def test_s3_test_event_in_sqs_is_acknowledged(aws: dict[str, Any]) -> None:
    batch = event("on_object_created_sqs.json")
    batch["Records"] = batch["Records"][:1]
    batch["Records"][0]["body"] = json.dumps(
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "landing"}
    )

    assert invoke("on_object_created", batch) == {"batchItemFailures": []}
    assert executions(aws) == []


# -- manage_lease, quarantine, evaluate_checks, read_job_result (no Delta table: moto in-process) -----------


def test_manage_lease_acquire_conflict_release(aws: dict[str, Any]) -> None:
    lease = invoke("manage_lease", event("manage_lease_acquire.json"))
    assert lease["table"] == "orders"
    assert lease["owner"] == RUN_ID

    acquire = event("manage_lease_acquire.json")
    other = {**acquire, "run": {**acquire["run"], "run_id": "orders-someone-else"}}
    with pytest.raises(LeaseHeldError, match=RUN_ID):
        invoke("manage_lease", other)

    assert invoke("manage_lease", event("manage_lease_release.json")) == {
        "table": "orders",
        "owner": RUN_ID,
        "released": True,
    }
    assert invoke("manage_lease", other)["owner"] == "orders-someone-else"  # free again
    # Releasing a lease one does not hold changes nothing.
    assert invoke("manage_lease", event("manage_lease_release.json"))["released"] is False
    item = aws["dynamodb"].get_item(TableName="lakehouse-dev-leases", Key={"table_name": {"S": "orders"}})[
        "Item"
    ]
    assert item["owner"]["S"] == "orders-someone-else"


def test_quarantine_copies_the_object_and_a_reason(aws: dict[str, Any]) -> None:
    aws["s3"].put_bucket_versioning(Bucket="landing", VersioningConfiguration={"Status": "Enabled"})
    put = aws["s3"].put_object(Bucket="landing", Key=KEY1, Body=PART1.encode())
    state = {
        **event("quarantine_object.json"),
        "version_id": put["VersionId"],
        "etag": put["ETag"].strip('"'),
    }
    # Overwritten after its event: the quarantine still copies exactly the run's version.
    aws["s3"].put_object(Bucket="landing", Key=KEY1, Body=PART2.encode())

    out = invoke("quarantine_object", state)

    prefix = f"objects/orders/{RUN_ID}/orders part 1.csv"
    assert out["object_uri"] == f"s3://quarantine/{prefix}"
    assert out["reason_uri"] == f"s3://quarantine/{prefix}.reason.json"
    assert out["error"] == "SchemaMismatchError"
    copied = aws["s3"].get_object(Bucket="quarantine", Key=prefix)["Body"].read()
    assert copied == PART1.encode()
    reason = json.loads(aws["s3"].get_object(Bucket="quarantine", Key=f"{prefix}.reason.json")["Body"].read())
    assert reason["error"] == "SchemaMismatchError"
    assert reason["message"].endswith("expected decimal(15,2), got 'n/a'")  # parsed out of the Lambda Cause
    assert reason["cause"]["errorType"] == "SchemaMismatchError"
    assert reason["source"] == f"s3://landing/{KEY1}"
    assert reason["source_version"] == put["VersionId"]
    assert reason["object"] == "copied"
    assert reason["run_id"] == RUN_ID
    # Nothing is lost: the raw object stays where it landed.
    landed = aws["s3"].get_object(Bucket="landing", Key=KEY1, VersionId=put["VersionId"])
    assert landed["Body"].read() == PART1.encode()


def test_quarantine_of_an_overwritten_object_copies_no_other_bytes(aws: dict[str, Any]) -> None:
    put = aws["s3"].put_object(Bucket="landing", Key=KEY1, Body=PART1.encode())  # an unversioned bucket
    state = {**event("quarantine_object.json"), "version_id": None, "etag": put["ETag"].strip('"')}
    aws["s3"].put_object(Bucket="landing", Key=KEY1, Body=PART2.encode())

    invoke("quarantine_object", state)

    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket="quarantine").get("Contents", [])]
    assert keys == [f"objects/orders/{RUN_ID}/orders part 1.csv.reason.json"]
    reason = json.loads(aws["s3"].get_object(Bucket="quarantine", Key=keys[0])["Body"].read())
    assert reason["object"].startswith("not copied:")
    assert put["ETag"].strip('"') in reason["object"]


def test_quarantine_of_a_vanished_object_still_writes_the_reason(aws: dict[str, Any]) -> None:
    out = invoke("quarantine_object", event("quarantine_object.json"))

    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket="quarantine").get("Contents", [])]
    assert keys == [f"objects/orders/{RUN_ID}/orders part 1.csv.reason.json"]
    assert out["error"] == "SchemaMismatchError"


def _ledger_item(aws: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    item = aws["dynamodb"].get_item(TableName="lakehouse-dev-runs", Key={"run_id": {"S": RUN_ID}})["Item"]
    return item, json.loads(item["record"]["S"])


def test_record_run_outcome_records_the_final_status_of_the_sample_execution(aws: dict[str, Any]) -> None:
    invoke("manage_lease", event("manage_lease_acquire.json"))  # the stages' record: RUNNING
    assert _ledger_item(aws)[0]["status"]["S"] == "RUNNING"

    out = invoke("record_run_outcome", event("record_run_outcome.json"))

    item, record = _ledger_item(aws)
    assert item["status"]["S"] == out["status"] == "SUCCEEDED"
    assert record["execution_status"] == "SUCCEEDED"
    assert record["execution_arn"] == event("record_run_outcome.json")["detail"]["executionArn"]
    assert record["dataset"] == "orders"  # what the stages recorded stays
    assert record["started_at"]
    assert record["finished_at"]
    assert record["error"] is None


def test_record_run_outcome_of_a_quarantined_execution(aws: dict[str, Any]) -> None:
    invoke("quarantine_object", event("quarantine_object.json"))  # records QUARANTINED, the handler's error
    failed = event("record_run_outcome.json")
    failed["detail"].update(
        status="FAILED",
        output=None,
        outputDetails=None,
        error="IngestFailed",
        cause="The run was rolled back and the object quarantined",
    )

    invoke("record_run_outcome", failed)

    item, record = _ledger_item(aws)
    assert item["status"]["S"] == "QUARANTINED"
    assert record["execution_status"] == "FAILED"
    assert record["error"]["error"] == "SchemaMismatchError"
    assert record["error"]["execution_error"] == "IngestFailed"


def test_record_run_outcome_refuses_another_event(aws: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match="Step Functions Execution Status Change"):
        invoke("record_run_outcome", event("on_object_created_eventbridge.json"))
    assert "Item" not in aws["dynamodb"].get_item(
        TableName="lakehouse-dev-runs", Key={"run_id": {"S": RUN_ID}}
    )


def _with_metrics(state: dict[str, Any], values: list[str]) -> dict[str, Any]:
    rows = state["check_rows"]["Rows"]
    state["check_rows"]["Rows"] = [rows[0], {"Data": [{"VarCharValue": v} for v in values]}]
    return state


def test_evaluate_checks_pass(aws: dict[str, Any]) -> None:
    out = invoke("evaluate_checks", event("evaluate_checks.json"))

    assert out["passed"] is True
    assert out["failed"] == []
    assert [r["name"] for r in out["results"]] == [
        "has_rows",
        "orderkey_unique",
        "custkey_complete",
        "status_known",
        "price_sane",
        "no_future_orders",
    ]
    assert out["results"][0]["metric"] == 3.0


def test_evaluate_checks_fail(aws: dict[str, Any]) -> None:
    state = _with_metrics(
        event("evaluate_checks.json"), ["3.0", "0.6666666666666666", "1.0", "1.0", "1.0", "0.0"]
    )

    out = invoke("evaluate_checks", state)

    assert out["passed"] is False
    assert out["failed"] == ["orderkey_unique"]
    item = aws["dynamodb"].get_item(TableName="lakehouse-dev-runs", Key={"run_id": {"S": RUN_ID}})["Item"]
    assert item["status"]["S"] == "CHECKS_FAILED"


def test_evaluate_checks_warning_does_not_fail(aws: dict[str, Any]) -> None:
    state = _with_metrics(event("evaluate_checks.json"), ["3.0", "1.0", "1.0", "1.0", "1.0", "2.0"])

    out = invoke("evaluate_checks", state)

    assert out["passed"] is True
    assert out["warnings"] == ["no_future_orders"]


def test_evaluate_checks_null_metric_fails(aws: dict[str, Any]) -> None:
    state = event("evaluate_checks.json")
    state["check_rows"]["Rows"][1]["Data"][2] = {}  # Athena omits VarCharValue for NULL

    out = invoke("evaluate_checks", state)

    assert out["passed"] is False
    assert out["failed"] == ["custkey_complete"]


def test_read_job_result(aws: dict[str, Any]) -> None:
    result = {"status": "committed", "rows_written": 25000000, "version_before": 3, "version_after": 4}
    aws["s3"].put_object(Bucket="lake", Key=f"runs/{RUN_ID}/commit.json", Body=json.dumps(result).encode())

    assert invoke("read_job_result", event("read_job_result.json")) == result


def test_read_job_result_missing_is_invalid_input(aws: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match=f"runs/{RUN_ID}/commit.json"):
        invoke("read_job_result", event("read_job_result.json"))


def test_read_job_result_with_a_malformed_result_is_invalid_input(aws: dict[str, Any]) -> None:
    result = {"status": "ok", "rows_written": 3}  # not "committed" | "duplicate": IsDuplicate would guess
    aws["s3"].put_object(Bucket="lake", Key=f"runs/{RUN_ID}/commit.json", Body=json.dumps(result).encode())

    with pytest.raises(InvalidInputError, match=rf"runs/{RUN_ID}/commit.json: status: Input should be"):
        invoke("read_job_result", event("read_job_result.json"))


def test_evaluate_checks_with_a_malformed_inspection_names_the_field(aws: dict[str, Any]) -> None:
    state = event("evaluate_checks.json")
    state["inspection"] = {**state["inspection"], "missing_references": ["orders"]}  # a list, not a map

    with pytest.raises(InvalidInputError, match=r"state \$inspection: missing_references: "):
        invoke("evaluate_checks", state)


# -- Delta handlers against moto's server (S3, Glue, DynamoDB) -----------------------------------------


@pytest.fixture
def server(s3_env: Any, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Every AWS call goes to moto's server; fresh buckets, tables and Glue database per test."""
    suffix = uuid.uuid4().hex[:10]
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL_GLUE", moto_server)
    monkeypatch.setenv("LEASE_TABLE", f"leases-{suffix}")
    monkeypatch.setenv("RUN_LEDGER_TABLE", f"runs-{suffix}")
    monkeypatch.setenv("GLUE_DATABASE", f"lakehouse_{suffix}")
    create_tables(
        boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_server),
        f"leases-{suffix}",
        f"runs-{suffix}",
    )
    s3 = s3_env.client()
    etags = {
        key: s3.put_object(Bucket=s3_env.buckets["landing"], Key=key, Body=body.encode())["ETag"].strip('"')
        for key, body in ((KEY1, PART1), (KEY2, PART2))
    }
    return {
        "etags": etags,
        "s3": s3,
        "buckets": s3_env.buckets,
        "glue": boto3.client("glue", region_name=REGION, endpoint_url=moto_server),
        "database": f"lakehouse_{suffix}",
    }


def run_state(server: dict[str, Any], sample: str, key: str = KEY1) -> dict[str, Any]:
    state = rebucket(event(sample), server["buckets"])
    # The landing bucket here is unversioned: reads are pinned to the ETag the object really has.
    state.update(version_id=None, etag=server["etags"][key])
    if key != KEY1:
        state.update(key=key, run_id=f"orders-{uuid.uuid4().hex}", sequencer="")
    return state


def table_rows(server: dict[str, Any]) -> list[int]:
    from deltalake import DeltaTable

    from lakehouse.stages.runtime import get_runtime

    rt = get_runtime()
    table = DeltaTable(f"s3://{server['buckets']['lake']}/tables/orders", storage_options=rt.storage_options)
    return sorted(table.to_pyarrow_table(columns=["o_orderkey"]).column(0).to_pylist())


def test_inspect_routes_by_size(server: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    state = run_state(server, "inspect_object")

    small = invoke("inspect_object", state)
    assert small["route"] == "lambda"
    assert small["format"] == "csv"
    assert small["size_bytes"] == len(PART1)
    assert small["table_uri"] == f"s3://{server['buckets']['lake']}/tables/orders"
    assert small["version_before"] == -1
    assert small["has_checks"] is True
    assert f'"{server["database"]}"."orders"' in small["checks_query"]

    # The threshold is inclusive: exactly LAMBDA_ROUTE_MAX_BYTES still goes to Lambda, one byte less does not.
    monkeypatch.setenv("LAMBDA_ROUTE_MAX_BYTES", str(len(PART1)))
    assert invoke("inspect_object", state)["route"] == "lambda"
    monkeypatch.setenv("LAMBDA_ROUTE_MAX_BYTES", str(len(PART1) - 1))
    assert invoke("inspect_object", state)["route"] == "glue"


def test_inspect_rejects_a_key_outside_the_landing_prefix(server: dict[str, Any]) -> None:
    state = run_state(server, "inspect_object")
    state["dataset"] = "lineitem"
    with pytest.raises(InvalidInputError, match="landing prefix"):
        invoke("inspect_object", state)


def test_commit_register_and_rollback(server: dict[str, Any]) -> None:
    # First object: inspect, commit, register.
    state = run_state(server, "commit_object")
    state["inspection"] = invoke("inspect_object", state)
    commit = invoke("commit_object", state)
    assert commit["status"] == "committed"
    assert commit["rows_written"] == 3
    assert commit["version_after"] == 1
    assert table_rows(server) == [1, 2, 3]

    # The same run again (a retried task): it finds its own commit and resumes, adding nothing.
    again = invoke("commit_object", state)
    assert again["status"] == "committed"
    assert again["resumed"] is True
    assert (again["version_before"], again["version_after"]) == (0, 1)
    assert table_rows(server) == [1, 2, 3]

    # Another run of the same object version (a re-delivered event): a duplicate, naming the first run.
    other = {**state, "run_id": state["run_id"] + "-again"}
    duplicate = invoke("commit_object", other)
    assert duplicate["status"] == "duplicate"
    assert duplicate["duplicate_of"] == state["run_id"]
    assert table_rows(server) == [1, 2, 3]

    registered = invoke("register_table", {**state, "commit": commit})
    assert registered == {
        "database": server["database"],
        "table": "orders",
        "created": True,
        "schema_changed": False,
    }
    table = server["glue"].get_table(DatabaseName=server["database"], Name="orders")["Table"]
    assert table["Parameters"]["table_type"] == "DELTA"
    assert table["StorageDescriptor"]["Location"] == f"s3://{server['buckets']['lake']}/tables/orders"
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]][:3] == [
        "o_orderkey",
        "o_custkey",
        "o_orderstatus",
    ]
    assert invoke("register_table", {**state, "commit": commit})["created"] is False

    # Second object commits, then its checks fail: Rollback restores the first object's version.
    second = run_state(server, "commit_object", key=KEY2)
    second["inspection"] = invoke("inspect_object", second)
    assert second["inspection"]["version_before"] == 1
    second["commit"] = invoke("commit_object", second)
    assert second["commit"]["status"] == "committed"
    assert table_rows(server) == [1, 2, 3, 4]
    rollback_state = {**rebucket(event("rollback_table"), server["buckets"]), **second}

    restored = invoke("rollback_table", rollback_state)

    assert restored["restored"] is True
    assert restored["restored_to"] == 1
    assert table_rows(server) == [1, 2, 3]
    # Retried by Step Functions: idempotent.
    assert invoke("rollback_table", rollback_state)["restored"] is False
    assert table_rows(server) == [1, 2, 3]


def test_rollback_of_a_run_that_committed_nothing_is_a_no_op(server: dict[str, Any]) -> None:
    state = run_state(server, "commit_object")
    state["inspection"] = invoke("inspect_object", state)
    invoke("commit_object", state)
    # Another object failed in Inspect/Commit: its app transaction never landed.
    other = run_state(server, "rollback_table", key=KEY2)
    other["inspection"] = invoke("inspect_object", other)
    other.pop("commit")

    out = invoke("rollback_table", other)

    assert out["restored"] is False
    assert table_rows(server) == [1, 2, 3]


# -- plan_maintenance / maintain_table on the local backend ----------------------------------------------


def test_plan_and_maintain_locally(tmp_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LANDING_BUCKET", "LAKE_BUCKET", "QUARANTINE_BUCKET"):
        monkeypatch.setenv(name, name.split("_")[0].lower())
    assert invoke("plan_maintenance", event("plan_maintenance.json")) == {"tables": []}

    landing = tmp_home / "buckets" / "landing"
    for key, body in ((KEY1, PART1), (KEY2, PART2)):
        (landing / key).parent.mkdir(parents=True, exist_ok=True)
        (landing / key).write_text(body)
        # A file written straight into the folder: an unversioned object, pinned by its ETag.
        etag = hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()
        state = {**event("commit_object.json"), "key": key, "run_id": f"orders-{uuid.uuid4().hex}"}
        state.update(version_id=None, etag=etag)
        state["inspection"] = invoke("inspect_object", state)
        assert invoke("commit_object", state)["status"] == "committed"

    plan = invoke("plan_maintenance", event("plan_maintenance.json"))
    [table] = plan["tables"]
    assert table["dataset"] == "orders"
    assert table["route"] == "lambda"
    assert table["table_uri"] == str(tmp_home / "buckets" / "lake" / "tables" / "orders")

    maintained = invoke("maintain_table", event("maintain_table.json"))
    assert maintained["version_after"] >= maintained["version_before"]
    assert maintained["checkpoint_version"] >= maintained["version_before"]
    assert list(
        (tmp_home / "buckets" / "lake" / "tables" / "orders" / "_delta_log").glob("*.checkpoint.parquet")
    )
