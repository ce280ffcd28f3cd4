"""statemachine/maintenance.asl.json executed by moto's interpreter (lakehouse.local.sfn).

MockConfigFile cases pin the paths (Map over tables, one table failing does not stop the others, the
execution fails at the end); one case runs the real handlers on the local backend over two Delta tables.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from lakehouse.local.sfn import ExecutionResult, LocalStateMachine

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = (ROOT / "statemachine" / "maintenance.asl.json").read_text()
MOCK_CONFIG = json.loads((Path(__file__).with_name("mock_config.json")).read_text())
MACHINE = "MaintenanceStateMachine"
ACCOUNT = "123456789012"
REGION = "us-east-1"

FUNCTIONS = {
    "PlanMaintenanceFunctionArn": "plan_maintenance",
    "ManageLeaseFunctionArn": "manage_lease",
    "MaintainTableFunctionArn": "maintain_table",
    "RegisterTableFunctionArn": "register_table",
}
SERVICE_KEYS = (
    "emr-serverless:startJobRun.sync",
    "sns:publish",
    "athena:startQueryExecution.sync",
    "athena:getQueryResults",
)


def function_arn(directory: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:lakehouse-dev-{directory.replace('_', '-')}:live"


SUBSTITUTIONS = {
    **{name: function_arn(directory) for name, directory in FUNCTIONS.items()},
    "EmrApplicationId": "00fabc12def34567",
    "EmrJobRoleArn": f"arn:aws:iam::{ACCOUNT}:role/lakehouse-dev-emr-job",
    "ArtifactsBucket": "artifacts",
    "LakeBucket": "lake",
    "AlertTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:lakehouse-dev-alerts",
    "AthenaWorkGroup": "lakehouse-dev",
    "GlueDatabase": "lakehouse",
}
# One table's pass through the Map, by route.
LAMBDA_TABLE = [
    "AcquireTableLease",
    "RouteMaintenance",
    "MaintainWithLambda",
    "SyncCatalog",
    "ReleaseLease",
    "PlanTableChecks",
    "HasTableChecks",
    "RecordSuccess",
]
EMR_TABLE = [
    "AcquireTableLease",
    "RouteMaintenance",
    "MaintainWithEmr",
    "SyncCatalog",
    "ReleaseLease",
    "PlanTableChecks",
    "HasTableChecks",
    "RecordSuccess",
]
# After a table's maintenance, its table-scoped checks fail (nothing to roll back: reported, alerted).
CHECKS_FAILED = ["RunTableChecks", "GetTableCheckResults", "EvaluateTableChecks", "TableChecksPassed"]
CHECKS_FAILED_LAMBDA_TABLE = [*LAMBDA_TABLE[:-1], *CHECKS_FAILED, "RecordChecksFailed"]
CHECKS_FAILED_EMR_TABLE = [*EMR_TABLE[:-1], *CHECKS_FAILED, "RecordChecksFailed"]
FAILED_LAMBDA_TABLE = [
    "AcquireTableLease",
    "RouteMaintenance",
    "MaintainWithLambda",
    "ReleaseLeaseAfterFailure",
    "RecordFailure",
]


def task_errors(result: ExecutionResult) -> list[str]:
    return [e["taskFailedEventDetails"]["error"] for e in result.history if e["type"] == "TaskFailed"]


def lambda_inputs(result: ExecutionResult, function: str) -> list[dict[str, Any]]:
    """The payloads sent to one Lambda function, in the order they were scheduled."""
    out = []
    for e in result.history:
        details = e.get("lambdaFunctionScheduledEventDetails")
        if details and details["resource"] == function_arn(function):
            out.append(json.loads(details["input"]))
    return out


def lease_calls(result: ExecutionResult, action: str) -> list[str]:
    """Datasets of manage_lease calls with `action` (the payload is the state, flat or under "run")."""
    calls = [p for p in lambda_inputs(result, "manage_lease") if p["action"] == action]
    return sorted(str(p.get("run", p)["dataset"]) for p in calls)


def outer_states(result: ExecutionResult) -> list[str]:
    inner = set(
        LAMBDA_TABLE
        + EMR_TABLE
        + FAILED_LAMBDA_TABLE
        + CHECKS_FAILED_LAMBDA_TABLE
        + ["MaintainWithEmr", "RecordLeaseUnavailable"]
    )
    return [n for n in result.visited_names if n not in inner]


def maintenance_input() -> dict[str, Any]:
    """The scheduled rule's input (template: `Input: "{}"`)."""
    data: dict[str, Any] = json.loads((ROOT / "events" / "plan_maintenance.json").read_text())
    return data


@pytest.fixture
def unmocked_calls() -> list[str]:
    return []


@pytest.fixture
def mocked_machine(unmocked_calls: list[str]) -> Iterator[LocalStateMachine]:
    def must_not_run(name: str) -> Callable[..., Any]:
        def handler(*_args: Any) -> Any:
            unmocked_calls.append(name)
            raise AssertionError(f"test case reached the real {name}")

        return handler

    with LocalStateMachine(
        DEFINITION,
        name=MACHINE,
        substitutions=SUBSTITUTIONS,
        lambda_handlers={function_arn(d): must_not_run(d) for d in FUNCTIONS.values()},
        service_handlers={key: must_not_run(key) for key in SERVICE_KEYS},
        mock_config=MOCK_CONFIG,
        time_scale=0.0,
    ) as sm:
        yield sm


def run_case(sm: LocalStateMachine, case: str, unmocked: list[str]) -> ExecutionResult:
    result = sm.run(maintenance_input(), execution_name=f"{case}-{uuid.uuid4().hex[:8]}", test_case=case)
    assert unmocked == [], f"{case}: states without a mocked response ran: {unmocked}"
    return result


def test_substitutions_leave_nothing_unresolved() -> None:
    assert "${" not in LocalStateMachine(DEFINITION, substitutions=SUBSTITUTIONS).definition


def test_two_tables_are_maintained(mocked_machine: LocalStateMachine, unmocked_calls: list[str]) -> None:
    result = run_case(mocked_machine, "TwoTablesHappyPath", unmocked_calls)

    assert result.status == "SUCCEEDED", result
    assert outer_states(result) == [
        "PlanMaintenance",
        "MaintainTables",
        "CollectStatuses",
        "SummarizeMaintenance",
        "AnyTableFailed",
        "MaintenanceSucceeded",
    ]
    # Iterations may interleave: compare the multiset of inner states.
    inner = Counter(n for n in result.visited_names if n not in outer_states(result))
    assert inner == Counter(LAMBDA_TABLE + EMR_TABLE)
    assert result.output["any_failed"] is False
    assert sorted((r["dataset"], r["status"]) for r in result.output["results"]) == [
        ("lineitem", "succeeded"),
        ("orders", "succeeded"),
    ]
    assert task_errors(result) == []
    # Each table takes and gives back its own lease.
    assert lease_calls(result, "acquire") == lease_calls(result, "release") == ["lineitem", "orders"]
    # The small table went to Lambda, the large one to EMR Serverless with its table URI.
    maintained = [p for p in lambda_inputs(result, "maintain_table") if "action" not in p]
    assert [p["dataset"] for p in maintained] == ["orders"]
    planned = [p for p in lambda_inputs(result, "maintain_table") if p.get("action") == "plan_checks"]
    assert sorted(p["dataset"] for p in planned) == ["lineitem", "orders"]
    emr = [
        json.loads(e["taskScheduledEventDetails"]["parameters"])
        for e in result.history
        if e["type"] == "TaskScheduled" and e["taskScheduledEventDetails"]["resourceType"] == "emr-serverless"
    ]
    assert len(emr) == 1
    assert "s3://lake/tables/lineitem" in emr[0]["JobDriver"]["SparkSubmit"]["EntryPointArguments"]
    assert sorted(p["dataset"] for p in lambda_inputs(result, "register_table")) == ["lineitem", "orders"]


def test_one_table_failing_does_not_stop_the_others(
    mocked_machine: LocalStateMachine, unmocked_calls: list[str]
) -> None:
    result = run_case(mocked_machine, "OneTableFails", unmocked_calls)

    assert result.status == "FAILED", result
    assert result.error == "MaintenanceFailed"
    assert outer_states(result) == [
        "PlanMaintenance",
        "MaintainTables",
        "CollectStatuses",
        "SummarizeMaintenance",
        "AnyTableFailed",
        "AlertMaintenanceFailed",
        "MaintenanceFailed",
    ]
    inner = Counter(n for n in result.visited_names if n not in outer_states(result))
    assert inner == Counter(FAILED_LAMBDA_TABLE + EMR_TABLE)
    assert task_errors(result) == ["CommitFailedError"]
    # Both leases released: the failed table's on its failure path, the other's on success.
    assert lease_calls(result, "release") == ["lineitem", "orders"]
    # The alert names the failed table and its error.
    [alert] = [
        json.loads(e["taskScheduledEventDetails"]["parameters"])
        for e in result.history
        if e["type"] == "TaskScheduled" and e["taskScheduledEventDetails"]["resourceType"] == "sns"
    ]
    assert alert["Subject"] == "lakehouse: maintenance failed"
    message = json.loads(alert["Message"])
    statuses = {r["dataset"]: r for r in message["results"]}
    assert statuses["lineitem"]["status"] == "succeeded"
    assert statuses["orders"]["status"] == "failed"
    assert statuses["orders"]["error"]["Error"] == "CommitFailedError"


def test_failed_table_checks_fail_the_tables_and_alert_with_their_metrics(
    mocked_machine: LocalStateMachine, unmocked_calls: list[str]
) -> None:
    result = run_case(mocked_machine, "TableChecksFail", unmocked_calls)

    assert result.status == "FAILED", result
    assert result.error == "MaintenanceFailed"
    inner = Counter(n for n in result.visited_names if n not in outer_states(result))
    assert inner == Counter(CHECKS_FAILED_LAMBDA_TABLE + CHECKS_FAILED_EMR_TABLE)
    # The checks ran after the lease was given back: maintenance of the table itself succeeded.
    assert lease_calls(result, "release") == ["lineitem", "orders"]
    query = [
        json.loads(e["taskScheduledEventDetails"]["parameters"])
        for e in result.history
        if e["type"] == "TaskScheduled" and e["taskScheduledEventDetails"]["resourceType"] == "athena"
    ]
    assert {q.get("WorkGroup") for q in query if "QueryString" in q} == {"lakehouse-dev"}
    evaluated = [p for p in lambda_inputs(result, "maintain_table") if p.get("action") == "evaluate_checks"]
    assert all(p["table_checks"]["checks"] == ["at_most_15"] for p in evaluated)
    assert all(p["check_rows"]["Rows"][1]["Data"][0]["VarCharValue"] == "20.0" for p in evaluated)
    [alert] = [
        json.loads(e["taskScheduledEventDetails"]["parameters"])
        for e in result.history
        if e["type"] == "TaskScheduled" and e["taskScheduledEventDetails"]["resourceType"] == "sns"
    ]
    message = json.loads(alert["Message"])
    for item in message["results"]:
        assert item["status"] == "failed"
        assert item["error"]["Error"] == "ChecksFailedError"
        [check] = item["checks"]["results"]
        assert (check["name"], check["metric"], check["max"], check["passed"]) == (
            "at_most_15",
            20.0,
            15.0,
            False,
        )


def test_nothing_to_maintain_succeeds(mocked_machine: LocalStateMachine, unmocked_calls: list[str]) -> None:
    result = run_case(mocked_machine, "NothingToMaintain", unmocked_calls)

    assert result.status == "SUCCEEDED", (result.error, result.cause, result.visited_names)
    assert result.visited_names == [
        "PlanMaintenance",
        "MaintainTables",
        "CollectStatuses",
        "SummarizeMaintenance",
        "AnyTableFailed",
        "MaintenanceSucceeded",
    ]


# -- real handlers, local backend -----------------------------------------------------------------------


def _load_handler(directory: str) -> Callable[[dict[str, Any], Any], Any]:
    module_name = f"lakehouse_fn_{directory}"
    module: ModuleType | None = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, ROOT / "functions" / directory / "app.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    handler: Callable[[dict[str, Any], Any], Any] = module.handler
    return handler


def _ingest(home: Path, dataset: str, key: str, source: Path) -> None:
    """Commit a file with the real stages (as IngestStateMachine would), for the maintenance to work on."""
    from lakehouse.stages import ingest
    from lakehouse.stages.runtime import get_runtime

    dest = home / "buckets" / "landing" / key
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    rt = get_runtime()
    state: dict[str, Any] = {
        "run_id": f"{dataset}-{uuid.uuid4().hex}",
        "dataset": dataset,
        "bucket": "landing",
        "key": key,
    }
    state["inspection"] = ingest.inspect_object(rt, state)
    assert ingest.commit_object(rt, state)["status"] == "committed"


def test_real_handlers_maintain_two_tables(tmp_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATASETS_DIR", str(ROOT / "datasets"))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    for name in ("LANDING_BUCKET", "LAKE_BUCKET", "QUARANTINE_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    vectors = ROOT / "tests" / "vectors"
    for i in range(3):  # several small commits: something to compact
        _ingest(tmp_home, "orders", f"orders/part-{i}.csv", vectors / "tpch_orders_merge" / "input.csv")
    _ingest(tmp_home, "lineitem", "lineitem/part-0.csv", vectors / "tpch_lineitem_append" / "input.csv")
    alerts: list[dict[str, Any]] = []

    def emr(key: str, params: dict[str, Any]) -> Any:
        raise AssertionError("small tables are maintained in Lambda")

    # Under local IAM enforcement: the machine's role invokes each function, which runs as its own role.
    from lakehouse.local.enforce import lambda_as, service_as
    from lakehouse.local.project import Project

    monkeypatch.setenv("LAKEHOUSE_IAM", "on")
    monkeypatch.setenv("LAKEHOUSE_PROJECT_ROOT", str(ROOT))
    project = Project.load(ROOT)
    local_subs = {
        k: project.resolve(v, project.parameter_defaults())
        for k, v in project.definition_substitution_keys(MACHINE).items()
    }

    def athena(key: str, params: dict[str, Any]) -> Any:
        raise AssertionError("the shipped datasets declare no table-scoped checks")

    services = {
        "emr-serverless:startJobRun.sync": emr,
        "sns:publish": lambda _k, p: alerts.append(p),
        "athena:startQueryExecution.sync": athena,
        "athena:getQueryResults": athena,
    }
    with LocalStateMachine(
        DEFINITION,
        name=MACHINE,
        substitutions=local_subs,
        lambda_handlers={
            key.removesuffix("Arn"): lambda_as(MACHINE, key.removesuffix("Arn"), _load_handler(d))
            for key, d in FUNCTIONS.items()
        },
        service_handlers={key: service_as(MACHINE, key, h) for key, h in services.items()},
        time_scale=0.0,
    ) as sm:
        result = sm.run(maintenance_input())

    assert result.status == "SUCCEEDED", (result.error, result.cause, result.visited_names)
    assert alerts == []
    assert sorted((r["dataset"], r["status"]) for r in result.output["results"]) == [
        ("lineitem", "succeeded"),
        ("orders", "succeeded"),
    ]
    assert Counter(n for n in result.visited_names if n in LAMBDA_TABLE) == Counter(LAMBDA_TABLE * 2)
    # Leases are free again and the catalog knows both tables.
    leases = tmp_home / "state" / "leases"
    assert not leases.exists() or not any(p.suffix == ".json" for p in leases.iterdir())
    from lakehouse.stages.runtime import get_runtime

    rt = get_runtime()
    assert set(rt.adapters.catalog.list_tables(rt.settings.glue_database)) == {"lineitem", "orders"}
    # maintain_table ran on each: a checkpoint now sits in both logs.
    for dataset in ("orders", "lineitem"):
        log = tmp_home / "buckets" / "lake" / "tables" / dataset / "_delta_log"
        assert list(log.glob("*.checkpoint.parquet")), dataset
