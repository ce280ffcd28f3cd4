"""Local IAM enforcement: the checking wrappers, AWS's AccessDenied, the switch, and the KMS key."""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

import pytest

from lakehouse.adapters import local
from lakehouse.adapters.factory import build_adapters
from lakehouse.errors import AccessDeniedError
from lakehouse.local import enforce
from lakehouse.local.iam import ACCOUNT_ID, Principal
from lakehouse.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_PROJECT_ROOT", str(ROOT))
    monkeypatch.delenv("LAKEHOUSE_IAM", raising=False)
    monkeypatch.delenv("LAKEHOUSE_IAM_ROLE", raising=False)


def _public(cls: type) -> set[str]:
    return {n for n, _ in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}


def test_every_public_method_of_the_local_adapters_is_mapped() -> None:
    """A new adapter method must get its IAM action here, or it would bypass the checks."""
    objects = set(enforce.OBJECT_ACTIONS) | enforce.UNCHECKED_OBJECT_METHODS
    assert _public(local.LocalObjectStore) <= objects
    assert _public(local.LocalLeaseStore) <= set(enforce.EnforcingLeaseStore.ACTIONS)
    assert _public(local.LocalRunLedger) <= set(enforce.EnforcingRunLedger.ACTIONS)
    assert _public(local.LocalCatalog) <= {"get_table", "list_tables", "upsert_delta_table"}
    assert _public(local.LocalNotifier) <= {"alert", "publish"}


def test_a_denied_call_raises_aws_access_denied_and_changes_nothing(tmp_home: Path) -> None:
    adapters = build_adapters(Settings(LAKEHOUSE_BACKEND="local", LAKEHOUSE_HOME=tmp_home))
    adapters.objects.put_bytes("lake", "runs/r1/commit.json", b"{}")  # no role: not checked
    with enforce.as_role("ReadJobResultFunctionRole", "ReadJobResultFunction"):
        assert adapters.objects.read_bytes("lake", "runs/r1/commit.json") == b"{}"
        with pytest.raises(AccessDeniedError) as caught:
            adapters.objects.put_bytes("lake", "tables/orders/x.parquet", b"1")
    assert str(caught.value) == (
        "User: arn:aws:sts::000000000000:assumed-role/ReadJobResultFunctionRole/ReadJobResultFunction is not "
        'authorized to perform: s3:PutObject on resource: "arn:aws:s3:::lake/tables/orders/x.parquet" '
        "because no identity-based policy allows the s3:PutObject action"
    )
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    assert not (tmp_home / "buckets" / "lake" / "tables").exists()


def test_dynamodb_glue_sns_and_events_calls_are_checked(tmp_home: Path) -> None:
    adapters = build_adapters(Settings(LAKEHOUSE_BACKEND="local", LAKEHOUSE_HOME=tmp_home))
    with enforce.as_role("EvaluateChecksFunctionRole"):
        adapters.ledger.put("r1", {"status": "CHECKED"})  # FunctionBasePolicy: RecordRuns
        with pytest.raises(
            AccessDeniedError,
            match="dynamodb:PutItem on resource: arn:aws:dynamodb:us-east-1:000000000000:table/leases",
        ) as caught:
            adapters.leases.acquire("orders", "r1", 60)
        assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
        with pytest.raises(AccessDeniedError, match="glue:GetTable"):
            adapters.catalog.get_table("lakehouse", "orders")
        with pytest.raises(AccessDeniedError, match="dynamodb:Scan"):
            adapters.ledger.list()
    with enforce.as_role("IngestStateMachineRole"):
        adapters.notifier.alert("s", {"m": 1})
        adapters.notifier.publish("DatasetUpdated", {"d": 1})
    with (
        enforce.as_role("MaintenanceStateMachineRole"),
        pytest.raises(AccessDeniedError, match="events:PutEvents"),
    ):
        adapters.notifier.publish("DatasetUpdated", {"d": 1})


class _PinnedStore:
    """A store whose reads take a version pin (kwargs must reach it unchanged)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def exists(self, bucket: str, key: str) -> bool:
        return True

    def read_bytes(
        self, bucket: str, key: str, max_bytes: int | None = None, *, version_id: str | None = None
    ) -> bytes:
        self.calls.append({"bucket": bucket, "key": key, "version_id": version_id})
        return b"x"


def test_a_version_pin_needs_get_object_version_and_reaches_the_adapter() -> None:
    inner = _PinnedStore()
    store = enforce.EnforcingObjectStore(inner)
    with enforce.as_role("InspectObjectFunctionRole"):
        assert store.read_bytes("landing", "orders/a.csv", 10, version_id="v1") == b"x"
    with (
        enforce.as_role("ReadJobResultFunctionRole"),
        pytest.raises(AccessDeniedError, match="s3:GetObjectVersion"),
    ):
        store.read_bytes("lake", "runs/r/commit.json", version_id="v1")
    assert inner.calls == [{"bucket": "landing", "key": "orders/a.csv", "version_id": "v1"}]


def test_enforcement_can_be_switched_off(tmp_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_IAM", "off")
    adapters = build_adapters(Settings(LAKEHOUSE_BACKEND="local", LAKEHOUSE_HOME=tmp_home))
    with enforce.as_role("ReadJobResultFunctionRole"):
        adapters.objects.put_bytes("lake", "tables/orders/x.parquet", b"1")
    assert (tmp_home / "buckets" / "lake" / "tables" / "orders" / "x.parquet").read_bytes() == b"1"


def test_access_checkpoints_map_local_paths_to_s3_arns(tmp_home: Path) -> None:
    from lakehouse import access

    table = str(tmp_home / "buckets" / "lake" / "tables" / "orders")
    with enforce.as_role("InspectObjectFunctionRole"):
        access.require_table(table)  # ReadDeltaLog + ListBuckets
        with pytest.raises(
            AccessDeniedError, match='s3:PutObject on resource: "arn:aws:s3:::lake/tables/orders/'
        ):
            access.require_table(table, write=True)
        access.require("/tmp/not-in-a-bucket/x", "s3:DeleteObject")  # outside the object store: unchecked


def test_a_check_costs_microseconds() -> None:
    enforce.model()  # parsed once per process
    with enforce.as_role("CommitObjectFunctionRole"):
        started = time.perf_counter()
        for i in range(2000):
            enforce.check_s3(
                "CommitObjectFunctionRole", "s3:PutObject", "lake", f"tables/orders/part-{i}.parquet"
            )
        per_call = (time.perf_counter() - started) / 2000
    assert per_call < 0.001, per_call


# -- the data key: key policy + IAM for every principal that must use it ---------------------------

LAMBDA_AND_JOB_ROLES = [
    "OnObjectCreatedFunctionRole",
    "ManageLeaseFunctionRole",
    "InspectObjectFunctionRole",
    "CommitObjectFunctionRole",
    "ReadJobResultFunctionRole",
    "RegisterTableFunctionRole",
    "EvaluateChecksFunctionRole",
    "RollbackTableFunctionRole",
    "QuarantineObjectFunctionRole",
    "PlanMaintenanceFunctionRole",
    "MaintainTableFunctionRole",
    "GlueJobRole",
    "EmrJobRole",
    "IngestStateMachineRole",
    "MaintenanceStateMachineRole",
]
LOG_GROUP = f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:/aws/vendedlogs/states/lakehouse-local-ingest"

SERVICE_CASES = [
    # CloudWatch Logs encrypts log groups; its KMS requests carry the log group in the encryption context.
    *[
        ("logs.us-east-1.amazonaws.com", action, {"kms:EncryptionContext:aws:logs:arn": LOG_GROUP})
        for action in ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey")
    ],
    # EventBridge delivers to the encrypted queue and topic. SNS docs: aws:SourceAccount/aws:SourceArn
    # conditions in the key policy are not supported for this delivery, so the request carries neither.
    *[("events.amazonaws.com", action, {}) for action in ("kms:GenerateDataKey", "kms:Decrypt")],
    # CloudWatch alarms publish to the encrypted topic on behalf of this account.
    *[
        ("cloudwatch.amazonaws.com", action, {"aws:SourceAccount": ACCOUNT_ID})
        for action in ("kms:GenerateDataKey", "kms:Decrypt")
    ],
]


@pytest.mark.parametrize("action", ["kms:Decrypt", "kms:GenerateDataKey"])
@pytest.mark.parametrize("role", LAMBDA_AND_JOB_ROLES)
def test_data_key_allows_each_role(role: str, action: str) -> None:
    """Each role reads and writes KMS-encrypted buckets (or, for the state machines, the encrypted topic
    and Athena results): the key policy delegates to IAM and the role's IAM policy allows the action."""
    principal = Principal(arn=enforce.model().role(role).arn)
    assert enforce.kms_allows(principal, action, "DataKey", {})


@pytest.mark.parametrize(
    ("service", "action", "context"), SERVICE_CASES, ids=[f"{s}-{a}" for s, a, _ in SERVICE_CASES]
)
def test_data_key_allows_each_service(service: str, action: str, context: dict[str, str]) -> None:
    """Service principals are not IAM principals of the account: the key policy alone must allow them."""
    assert enforce.kms_allows(Principal(service=service), action, "DataKey", context)


def test_data_key_refuses_a_principal_it_does_not_name() -> None:
    assert not enforce.kms_allows(Principal(service="sqs.amazonaws.com"), "kms:Decrypt", "DataKey", {})
    stranger = f"arn:aws:iam::{ACCOUNT_ID}:role/Stranger"
    with pytest.raises(Exception, match="no role 'Stranger'"):
        enforce.kms_allows(Principal(arn=stranger), "kms:Decrypt", "DataKey", {})


def test_reading_a_missing_object_without_list_bucket_is_access_denied(
    tmp_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 returns 404 for a missing key only to callers allowed s3:ListBucket; others get 403."""
    adapters = build_adapters(Settings(LAKEHOUSE_BACKEND="local", LAKEHOUSE_HOME=tmp_home))
    with enforce.as_role("ReadJobResultFunctionRole"), pytest.raises(FileNotFoundError):
        adapters.objects.read_bytes("lake", "runs/missing/commit.json")  # ListLake: a plain 404
    # The same role without its ListLake statement.
    text = (ROOT / "template.yaml").read_text()
    listing = (
        "            - Sid: ListLake\n              Effect: Allow\n              Action: [s3:ListBucket]\n"
    )
    listing += "              Resource: !GetAtt LakeBucket.Arn\n      DeploymentPreference:\n"
    listing += "        Alarms: [!Ref ReadJobResultErrorsAlarm]"
    assert text.count(listing) == 1
    root = tmp_path / "project"
    root.mkdir()
    replacement = "      DeploymentPreference:\n        Alarms: [!Ref ReadJobResultErrorsAlarm]"
    (root / "template.yaml").write_text(text.replace(listing, replacement))
    monkeypatch.setenv("LAKEHOUSE_PROJECT_ROOT", str(root))
    denied = pytest.raises(AccessDeniedError, match='s3:ListBucket on resource: "arn:aws:s3:::lake"')
    with enforce.as_role("ReadJobResultFunctionRole"), denied:
        adapters.objects.read_bytes("lake", "runs/missing/commit.json")


def test_a_denied_service_integration_fails_with_the_step_functions_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakehouse.local.sfn import TaskFailed

    text = (ROOT / "template.yaml").read_text()
    alert = "              - Sid: Alert\n                Effect: Allow\n                Action: sns:Publish\n"
    alert += "                Resource: !Ref AlertTopic\n              - Sid: PublishDatasetUpdated"
    assert text.count(alert) == 1
    root = tmp_path / "project"
    root.mkdir()
    (root / "template.yaml").write_text(text.replace(alert, "              - Sid: PublishDatasetUpdated"))
    monkeypatch.setenv("LAKEHOUSE_PROJECT_ROOT", str(root))
    calls: list[str] = []
    publish = enforce.service_as("IngestStateMachine", "sns:publish", lambda key, params: calls.append(key))
    topic = "arn:aws:sns:us-east-1:000000000000:AlertTopic"
    with pytest.raises(TaskFailed) as caught:
        publish("sns:publish", {"TopicArn": topic, "Message": "{}"})
    assert caught.value.error == "SNS.AuthorizationErrorException"
    assert f"sns:Publish on resource: {topic}" in caught.value.cause
    assert calls == []


def test_unused_grants_report_lists_only_what_no_run_exercised(tmp_path: Path) -> None:
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location(
        "iam_unused_grants", ROOT / "scripts" / "iam_unused_grants.py"
    )
    assert spec is not None
    assert spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    record = tmp_path / "record.jsonl"
    row = {
        "role": "ManageLeaseFunctionRole",
        "statement": "ManageLeaseFunctionRole/ManageLeaseFunctionRolePolicy1#Leases",
        "action": "dynamodb:PutItem",
        "example": "dynamodb:PutItem arn:aws:dynamodb:us-east-1:000000000000:table/leases",
    }
    record.write_text(json.dumps(row) + "\n")
    result = script.report(enforce.model(), script.load_records([record]))
    leases = result["ManageLeaseFunctionRole"]
    assert [e["action"] for e in leases["exercised"]] == ["dynamodb:PutItem"]
    unused = {e["action"] for e in leases["unused"]}
    assert {"dynamodb:GetItem", "dynamodb:DeleteItem"} <= unused
    # AWS-side grants are listed apart, with their reason, not as candidates.
    glue_side = {e["action"]: e["why"] for e in result["GlueJobRole"]["aws_side"]}
    assert "cloudwatch:PutMetricData" in glue_side
    assert "cloudwatch:PutMetricData" not in {e["action"] for e in result["GlueJobRole"]["unused"]}


def test_the_local_start_execution_is_checked_through_access(tmp_home: Path) -> None:
    """The local starter lives with the adapters now (no import of lakehouse.local); a role without
    states:StartExecution is still refused, and nothing is queued."""
    from lakehouse.adapters.starter import LocalQueue, LocalStarter
    from lakehouse.stages.runtime import Runtime

    rt = Runtime.create(Settings(LAKEHOUSE_BACKEND="local", LAKEHOUSE_HOME=tmp_home))
    with (
        enforce.as_role("ReadJobResultFunctionRole", "ReadJobResultFunction"),
        pytest.raises(AccessDeniedError, match="states:StartExecution"),
    ):
        LocalStarter(rt).start("run-1", {"dataset": "orders"})
    assert LocalQueue(tmp_home).pending() == []
    assert LocalStarter(rt).start("run-1", {"dataset": "orders"})["started"] is True  # no role: unchecked
    assert [r.name for r in LocalQueue(tmp_home).pending()] == ["run-1"]


def test_inspect_may_write_only_the_glue_manifest_and_the_glue_job_may_read_it(tmp_home: Path) -> None:
    """The Glue route's manifest (docs/ARCHITECTURE.md, "The Glue route"): Inspect writes it, the job
    reads it; Inspect writes nothing else under runs/ (the job's result is the job's to write)."""
    from lakehouse.layout import commit_result_key, manifest_key

    adapters = build_adapters(Settings(LAKEHOUSE_BACKEND="local", LAKEHOUSE_HOME=tmp_home))
    with enforce.as_role("InspectObjectFunctionRole", "InspectObjectFunction"):
        adapters.objects.put_bytes("lake", manifest_key("orders-drain-1"), b"{}")
        with pytest.raises(AccessDeniedError, match="s3:PutObject"):
            adapters.objects.put_bytes("lake", commit_result_key("orders-drain-1"), b"{}")
    with enforce.as_role("GlueJobRole", "GlueJobRunnerSession"):
        assert adapters.objects.read_bytes("lake", manifest_key("orders-drain-1")) == b"{}"
