"""statemachine/ingest.asl.json executed by moto's interpreter (lakehouse.local.sfn).

Two kinds of cases:

- MockConfigFile cases (AWS Step Functions Local format, tests/functional/mock_config.json): every Task
  state is mocked, so each test pins one path through the real definition — the exact sequence of
  states, the final status and the error.
- In-process cases: the real Lambda handlers (functions/*/app.py) on the local backend, Athena routed to
  DuckDB over the Delta table, other services to small recording handlers.
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

import pytest

from lakehouse.local.sfn import ExecutionResult, LocalStateMachine

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = (ROOT / "statemachine" / "ingest.asl.json").read_text()
MOCK_CONFIG = json.loads((Path(__file__).with_name("mock_config.json")).read_text())
EVENTS = ROOT / "events"
MACHINE = "IngestStateMachine"
ACCOUNT = "123456789012"
REGION = "us-east-1"

FUNCTIONS = {
    "ManageLeaseFunctionArn": "manage_lease",
    "ManageBatchFunctionArn": "manage_batch",
    "InspectObjectFunctionArn": "inspect_object",
    "CommitObjectFunctionArn": "commit_object",
    "ReadJobResultFunctionArn": "read_job_result",
    "RegisterTableFunctionArn": "register_table",
    "EvaluateChecksFunctionArn": "evaluate_checks",
    "RollbackTableFunctionArn": "rollback_table",
    "QuarantineObjectFunctionArn": "quarantine_object",
}


def function_arn(directory: str) -> str:
    """What `!Ref <Function>.Alias` resolves to: the alias ARN (`:live`)."""
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:lakehouse-dev-{directory.replace('_', '-')}:live"


SUBSTITUTIONS = {
    **{name: function_arn(directory) for name, directory in FUNCTIONS.items()},
    "BronzeToSilverGlueJobName": "lakehouse-dev-bronze-to-silver",
    "AthenaWorkGroup": "lakehouse-dev",
    "GlueDatabase": "lakehouse",
    "EmrApplicationId": "00fabc12def34567",
    "EmrJobRoleArn": f"arn:aws:iam::{ACCOUNT}:role/lakehouse-dev-emr-job",
    "ArtifactsBucket": "artifacts",
    "LakeBucket": "lake",
    "AlertTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:lakehouse-dev-alerts",
    "EventBusName": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default",
}
SERVICE_KEYS = (
    "glue:startJobRun.sync",
    "athena:startQueryExecution.sync",
    "athena:getQueryResults",
    "emr-serverless:startJobRun.sync",
    "sns:publish",
    "events:putEvents",
)

HAPPY_LAMBDA = [
    "AcquireTableLease",
    "ClaimBatch",
    "HasObjects",
    "Inspect",
    "Route",
    "CommitWithLambda",
    "IsDuplicate",
    "RegisterTable",
    "HasChecks",
    "RunChecks",
    "GetCheckResults",
    "EvaluateChecks",
    "ChecksPassed",
    "HasDerived",
    "RefreshDerived",
    "RegisterDerived",
    "Publish",
    "FinishBatch",
    "ReleaseLease",
    "Done",
]
HAPPY_GLUE = [
    "AcquireTableLease",
    "ClaimBatch",
    "HasObjects",
    "Inspect",
    "Route",
    "TransformWithGlue",
    "ReadGlueResult",
    "IsDuplicate",
    "RegisterTable",
    "HasChecks",
    "RunChecks",
    "GetCheckResults",
    "EvaluateChecks",
    "ChecksPassed",
    "HasDerived",
    "Publish",
    "FinishBatch",
    "ReleaseLease",
    "Done",
]
FAILURE_TAIL = ["Rollback", "IsBatch", "Quarantine", "Alert", "ReleaseLeaseAfterFailure", "IngestFailed"]
CLAIM = ["AcquireTableLease", "ClaimBatch", "HasObjects"]


def run_input() -> dict[str, Any]:
    """The execution input on_object_created starts (the first keys of events/inspect_object.json)."""
    state = json.loads((EVENTS / "inspect_object.json").read_text())
    state.pop("lease")
    return dict(state)


def entered_inputs(result: ExecutionResult, state: str) -> list[dict[str, Any]]:
    """The state's input each time it was entered, from the execution history."""
    return [
        json.loads(e["stateEnteredEventDetails"]["input"])
        for e in result.history
        if "stateEnteredEventDetails" in e and e["stateEnteredEventDetails"]["name"] == state
    ]


def task_errors(result: ExecutionResult) -> list[str]:
    return [e["taskFailedEventDetails"]["error"] for e in result.history if e["type"] == "TaskFailed"]


def scheduled(result: ExecutionResult, resource_type: str) -> list[dict[str, Any]]:
    """Parameters of every scheduled service task of one resource type (e.g. ``sns``)."""
    return [
        json.loads(e["taskScheduledEventDetails"]["parameters"])
        for e in result.history
        if e["type"] == "TaskScheduled" and e["taskScheduledEventDetails"]["resourceType"] == resource_type
    ]


# -- MockConfigFile cases ---------------------------------------------------------------------------


@pytest.fixture
def unmocked_calls() -> list[str]:
    return []


@pytest.fixture
def mocked_machine(unmocked_calls: list[str]) -> Iterator[LocalStateMachine]:
    """The ingest machine with every route present but failing loudly if a mocked case reaches it."""

    def lambda_must_not_run(name: str) -> Callable[[dict[str, Any], Any], Any]:
        def handler(event: dict[str, Any], context: Any) -> Any:
            unmocked_calls.append(name)
            raise AssertionError(f"state machine test case reached the real {name} handler")

        return handler

    def service_must_not_run(key: str, params: dict[str, Any]) -> Any:
        unmocked_calls.append(key)
        raise AssertionError(f"state machine test case reached the {key} service handler")

    with LocalStateMachine(
        DEFINITION,
        name=MACHINE,
        substitutions=SUBSTITUTIONS,
        lambda_handlers={function_arn(d): lambda_must_not_run(d) for d in FUNCTIONS.values()},
        service_handlers=dict.fromkeys(SERVICE_KEYS, service_must_not_run),
        mock_config=MOCK_CONFIG,
        time_scale=0.0,
    ) as sm:
        yield sm


def run_case(sm: LocalStateMachine, case: str, unmocked: list[str]) -> ExecutionResult:
    result = sm.run(run_input(), execution_name=f"{case}-{uuid.uuid4().hex[:8]}", test_case=case)
    assert unmocked == [], f"{case}: states without a mocked response ran: {unmocked}"
    return result


def template_substitutions(logical_id: str) -> dict[str, Any]:
    """DefinitionSubstitutions of one state machine in template.yaml (CloudFormation tags kept as text)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return f"!{suffix} {loader.construct_scalar(node)}"
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_mapping(node)  # type: ignore[arg-type]

    Loader.add_multi_constructor("!", tag)
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=Loader)
    subs: dict[str, Any] = template["Resources"][logical_id]["Properties"]["DefinitionSubstitutions"]
    return subs


def test_substitutions_match_the_template() -> None:
    wired = template_substitutions("IngestStateMachine")
    assert set(wired) == set(SUBSTITUTIONS)
    for name, directory in FUNCTIONS.items():
        # Each *FunctionArn is the `live` alias of the function whose code is functions/<directory>.
        logical_id = "".join(part.title() for part in directory.split("_")) + "Function"
        assert wired[name] == f"!Ref {logical_id}.Alias", name


def test_substitutions_leave_nothing_unresolved() -> None:
    resolved = LocalStateMachine(DEFINITION, substitutions=SUBSTITUTIONS).definition
    assert "${" not in resolved
    # Every Lambda task resolves to one of the functions the template wires.
    resources = {s.get("Resource") for s in json.loads(resolved)["States"].values()}
    assert {function_arn(d) for d in FUNCTIONS.values()} <= resources


def test_mock_config_covers_every_state_named_in_its_test_cases() -> None:
    states = set(json.loads(DEFINITION)["States"])
    for case, mapping in MOCK_CONFIG["StateMachines"][MACHINE]["TestCases"].items():
        assert set(mapping) <= states, f"{case} mocks unknown states {set(mapping) - states}"
        for response in mapping.values():
            assert response in MOCK_CONFIG["MockedResponses"], f"{case}: no MockedResponses[{response!r}]"


def test_lambda_route_happy_path(mocked_machine: LocalStateMachine, unmocked_calls: list[str]) -> None:
    result = run_case(mocked_machine, "LambdaHappyPath", unmocked_calls)

    assert result.status == "SUCCEEDED", result
    assert result.visited_names == HAPPY_LAMBDA
    assert task_errors(result) == []
    out = result.output
    assert out["commit"]["status"] == "committed"
    assert out["checks"]["passed"] is True
    assert out["athena"] == {"query_execution_id": "c1a7e3f2-5b8d-4e6a-9f0c-2d4b6a8e1c3f"}
    assert out["check_rows"]["Rows"][0]["Data"][0] == {"VarCharValue": "has_rows"}
    assert out["derived"] == {"application_id": "00fabc12def34567", "job_run_id": "00fdef98abc76543"}
    assert "error" not in out
    # The Athena query is the one Inspect compiled, in the workgroup and database the template wires.
    [athena] = scheduled(result, "athena")[:1]
    assert athena["QueryString"] == out["inspection"]["checks_query"]
    assert athena["WorkGroup"] == "lakehouse-dev"
    assert athena["QueryExecutionContext"] == {"Catalog": "AwsDataCatalog", "Database": "lakehouse"}
    [emr] = scheduled(result, "emr-serverless")
    assert emr["Name"] == f"refresh-{out['run_id']}"
    assert emr["JobDriver"]["SparkSubmit"]["EntryPointArguments"][:2] == ["--dataset", "orders"]
    assert emr["ApplicationId"] == "00fabc12def34567"
    [event] = scheduled(result, "events")
    [entry] = event["Entries"]
    assert entry["DetailType"] == "DatasetUpdated"
    assert entry["Source"] == "lakehouse"
    # DatasetUpdated names the batch's object versions (a drain may commit many in one version).
    [obj] = entry["Detail"]["batch"]["objects"]
    assert obj["key"] == "orders/ingest_date=2026-11-26/orders part 1.csv"
    assert entry["Detail"]["table_uri"] == "s3://lake/tables/orders"
    assert entered_inputs(result, "ReleaseLease")[0]["lease"]["owner"] == out["run_id"]


def test_glue_route_happy_path(mocked_machine: LocalStateMachine, unmocked_calls: list[str]) -> None:
    result = run_case(mocked_machine, "GlueHappyPath", unmocked_calls)

    assert result.status == "SUCCEEDED", result
    assert result.visited_names == HAPPY_GLUE
    assert result.output["glue"] == {"job_run_id": "jr_0a1b2c3d", "job_run_state": "SUCCEEDED"}
    assert result.output["commit"]["engine"] == "spark"
    [glue] = scheduled(result, "glue")
    assert glue["JobName"] == "lakehouse-dev-bronze-to-silver"
    # The Glue job gets only the manifest Inspect wrote (StartJobRun's arguments are size-limited) and
    # the run id, never the objects' keys.
    assert glue["Arguments"] == {
        "--manifest_uri": result.output["inspection"]["manifest_uri"],
        "--run_id": result.output["run_id"],
    }
    assert glue["Arguments"]["--manifest_uri"] == f"s3://lake/runs/{result.output['run_id']}/manifest.json"


def test_lambda_throttling_is_retried(mocked_machine: LocalStateMachine, unmocked_calls: list[str]) -> None:
    result = run_case(mocked_machine, "InspectThrottled", unmocked_calls)

    assert result.status == "SUCCEEDED", result
    assert result.visited_names == HAPPY_LAMBDA
    assert task_errors(result) == ["Lambda.TooManyRequestsException"]


def test_duplicate_object_releases_the_lease_and_succeeds(
    mocked_machine: LocalStateMachine, unmocked_calls: list[str]
) -> None:
    result = run_case(mocked_machine, "DuplicateObject", unmocked_calls)

    assert result.status == "SUCCEEDED", result
    assert result.visited_names == [
        *CLAIM,
        "Inspect",
        "Route",
        "CommitWithLambda",
        "IsDuplicate",
        "FinishBatch",
        "ReleaseLease",
        "Done",
    ]
    assert result.output["commit"]["status"] == "duplicate"
    assert "checks" not in result.output
    assert scheduled(result, "events") == []  # no DatasetUpdated for a file that added nothing
    assert scheduled(result, "athena") == []


@pytest.mark.parametrize(
    ("case", "failing_state", "error"),
    [
        ("InspectContractViolation", "Inspect", "UnsupportedFormatError"),
        ("CommitContractViolation", "CommitWithLambda", "SchemaMismatchError"),
    ],
)
def test_contract_violation_is_rolled_back_quarantined_and_alerted(
    mocked_machine: LocalStateMachine, unmocked_calls: list[str], case: str, failing_state: str, error: str
) -> None:
    result = run_case(mocked_machine, case, unmocked_calls)

    assert result.status == "FAILED", result
    assert result.error == "IngestFailed"
    head = [*CLAIM, "Inspect"] + (["Route", "CommitWithLambda"] if failing_state != "Inspect" else [])
    assert result.visited_names == head + FAILURE_TAIL
    # Invalid input is never retried: exactly one failed attempt.
    assert task_errors(result) == [error]
    [rollback_input] = entered_inputs(result, "Rollback")
    assert rollback_input["error"]["Error"] == error
    cause = json.loads(rollback_input["error"]["Cause"])
    assert cause["errorType"] == error
    assert "orders part 1.csv" in cause["errorMessage"]
    [quarantine_input] = entered_inputs(result, "Quarantine")
    assert quarantine_input["error"]["Error"] == error
    assert quarantine_input["rollback"]["restored"] is False
    [alert] = scheduled(result, "sns")
    assert alert["TopicArn"] == SUBSTITUTIONS["AlertTopicArn"]
    assert alert["Subject"] == "lakehouse: ingest run failed"
    message = json.loads(alert["Message"])
    assert message["error"]["Error"] == error
    assert message["quarantine"]["reason_uri"].endswith(".reason.json")
    [release] = entered_inputs(result, "ReleaseLeaseAfterFailure")
    assert release["lease"]["owner"] == release["run_id"]
    assert scheduled(result, "events") == []


def test_unknown_route_takes_the_failure_path(
    mocked_machine: LocalStateMachine, unmocked_calls: list[str]
) -> None:
    result = run_case(mocked_machine, "UnknownRoute", unmocked_calls)

    assert result.status == "FAILED", result
    assert result.visited_names == [*CLAIM, "Inspect", "Route", "UnknownRoute", *FAILURE_TAIL]
    assert entered_inputs(result, "Rollback")[0]["error"]["Error"] == "InvalidInputError"


def test_glue_transient_failure_is_retried(
    mocked_machine: LocalStateMachine, unmocked_calls: list[str]
) -> None:
    result = run_case(mocked_machine, "GlueTransientFailure", unmocked_calls)

    assert result.status == "SUCCEEDED", result
    assert result.visited_names == HAPPY_GLUE
    assert task_errors(result) == ["Glue.ConcurrentRunsExceededException"]
    assert len(scheduled(result, "glue")) == 2  # the first attempt and its retry


def test_failed_checks_roll_back_quarantine_and_alert(
    mocked_machine: LocalStateMachine, unmocked_calls: list[str]
) -> None:
    result = run_case(mocked_machine, "ChecksFailed", unmocked_calls)

    assert result.status == "FAILED", result
    assert result.error == "IngestFailed"
    assert result.visited_names == [
        *CLAIM,
        "Inspect",
        "Route",
        "CommitWithLambda",
        "IsDuplicate",
        "RegisterTable",
        "HasChecks",
        "RunChecks",
        "GetCheckResults",
        "EvaluateChecks",
        "ChecksPassed",
        "RecordChecksFailed",
        *FAILURE_TAIL,
    ]
    assert task_errors(result) == []  # failed checks are a result, not a task error
    [rollback_input] = entered_inputs(result, "Rollback")
    assert rollback_input["error"]["Error"] == "ChecksFailedError"
    failed = [r["name"] for r in json.loads(rollback_input["error"]["Cause"]) if not r["passed"]]
    assert failed == ["orderkey_unique"]
    assert entered_inputs(result, "Quarantine")[0]["rollback"]["restored"] is True
    assert scheduled(result, "emr-serverless") == []
    assert scheduled(result, "events") == []
    assert len(scheduled(result, "sns")) == 1


def test_derived_refresh_failure_alerts_keeps_the_commit_and_releases_the_lease(
    mocked_machine: LocalStateMachine, unmocked_calls: list[str]
) -> None:
    """The checks passed, so the commit stands: no rollback, no quarantine; an alert, then Fail."""
    result = run_case(mocked_machine, "DerivedRefreshFailed", unmocked_calls)

    assert result.status == "FAILED", result
    assert result.error == "IngestFailed"
    assert result.visited_names == [
        *HAPPY_LAMBDA[: HAPPY_LAMBDA.index("RefreshDerived") + 1],
        "AlertAfterCommit",
        "ReleaseLeaseAfterFailure",
        "IngestFailed",
    ]
    # States.TaskFailed is not in RefreshDerived's Retry list: one attempt.
    assert task_errors(result) == ["States.TaskFailed"]
    assert "Rollback" not in result.visited_names
    assert "Quarantine" not in result.visited_names
    assert len(scheduled(result, "sns")) == 1
    assert scheduled(result, "events") == []


def test_a_drain_that_finds_nothing_pending_releases_the_lease_and_ends(
    mocked_machine: LocalStateMachine, unmocked_calls: list[str]
) -> None:
    result = run_case(mocked_machine, "DrainFindsNothing", unmocked_calls)

    assert result.status == "SUCCEEDED", result
    assert result.visited_names == [*CLAIM, "ReleaseLease", "Done"]


def test_a_batch_whose_checks_fail_is_rolled_back_and_split_not_quarantined(
    mocked_machine: LocalStateMachine, unmocked_calls: list[str]
) -> None:
    result = run_case(mocked_machine, "BatchChecksFailedIsSplit", unmocked_calls)

    assert result.status == "SUCCEEDED", result
    assert result.visited_names[-6:] == [
        "RecordChecksFailed",
        "Rollback",
        "IsBatch",
        "SplitBatch",
        "ReleaseLease",
        "Done",
    ]
    assert "Quarantine" not in result.visited_names
    assert result.output["batch_outcome"]["action"] == "split"
    assert scheduled(result, "sns") == []  # no alert: the objects are retried, the bad one alone


def test_lease_held_by_another_run_alerts_without_rollback_or_release(
    mocked_machine: LocalStateMachine, unmocked_calls: list[str]
) -> None:
    result = run_case(mocked_machine, "LeaseHeld", unmocked_calls)

    assert result.status == "FAILED", result
    assert result.error == "LeaseUnavailable"
    assert result.visited_names == ["AcquireTableLease", "AlertLeaseUnavailable", "LeaseUnavailable"]
    # Retried with backoff for the whole budget (MaxAttempts 30 -> 31 attempts), then caught.
    assert task_errors(result) == ["LeaseHeldError"] * 31
    [alert] = scheduled(result, "sns")
    assert alert["Subject"] == "lakehouse: table lease unavailable"
    assert json.loads(alert["Message"])["error"]["Error"] == "LeaseHeldError"
    # Nothing was acquired, so nothing may be rolled back or released (that would free another run's lease).
    assert not {"Rollback", "Quarantine", "ReleaseLease", "ReleaseLeaseAfterFailure"} & set(
        result.visited_names
    )


# -- real handlers, local backend -----------------------------------------------------------------------

HEADER = (
    "o_orderkey,o_custkey,o_orderstatus,o_totalprice,o_orderdate,"
    "o_orderpriority,o_clerk,o_shippriority,o_comment"
)
GOOD_ROWS = [
    '1,37,O,131251.81,1996-01-02,5-LOW,Clerk#000000951,0,"nstructions sleep furiously among "',
    '2,79,O,40183.29,1996-12-01,1-URGENT,Clerk#000000880,0," foxes. pending accounts at the pending"',
    '3,124,F,160882.76,1993-10-14,5-LOW,Clerk#000000955,0,"sly final accounts boost"',
]


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


class FakeServices:
    """Athena on DuckDB over the local Delta tables; EMR, SNS and EventBridge recorded."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.queries: dict[str, list[tuple[str, str]]] = {}
        self.alerts: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.emr_runs: list[dict[str, Any]] = []

    def athena(self, key: str, params: dict[str, Any]) -> dict[str, Any]:
        if key == "athena:startQueryExecution.sync":
            query_id = str(uuid.uuid4())
            self.queries[query_id] = self._run(
                params["QueryString"], params["QueryExecutionContext"]["Database"]
            )
            return {"QueryExecution": {"QueryExecutionId": query_id, "Status": {"State": "SUCCEEDED"}}}
        assert key == "athena:getQueryResults"
        rows = self.queries[params["QueryExecutionId"]]
        return {
            "ResultSet": {
                "Rows": [
                    {"Data": [{"VarCharValue": name} for name, _ in rows]},
                    {"Data": [{"VarCharValue": value} for _, value in rows]},
                ],
                "ResultSetMetadata": {"ColumnInfo": [{"Name": name, "Type": "double"} for name, _ in rows]},
            }
        }

    def _run(self, athena_sql: str, database: str) -> list[tuple[str, str]]:
        import duckdb
        from deltalake import DeltaTable

        from lakehouse.sql.dialects import athena_to_duckdb

        con = duckdb.connect()
        con.execute(f'CREATE SCHEMA "{database}"')
        tables = self.home / "buckets" / "lake" / "tables"
        for path in sorted(p for p in tables.iterdir() if (p / "_delta_log").is_dir()):
            dataset = DeltaTable(str(path)).to_pyarrow_dataset()
            con.register(f"__arrow_{path.name}", dataset)
            con.execute(f'CREATE VIEW "{database}"."{path.name}" AS SELECT * FROM "__arrow_{path.name}"')
        cursor = con.execute(athena_to_duckdb(athena_sql))
        names = [d[0] for d in cursor.description]
        values = cursor.fetchone()
        assert values is not None
        return [(n, str(float(v))) for n, v in zip(names, values, strict=True)]

    def emr(self, key: str, params: dict[str, Any]) -> dict[str, Any]:
        self.emr_runs.append(params)
        return {"ApplicationId": params["ApplicationId"], "JobRunId": f"00f{len(self.emr_runs):013d}"}

    def sns(self, key: str, params: dict[str, Any]) -> dict[str, Any]:
        self.alerts.append(params)
        return {"MessageId": str(uuid.uuid4())}

    def put_events(self, key: str, params: dict[str, Any]) -> dict[str, Any]:
        self.events.extend(params["Entries"])
        return {"Entries": [{"EventId": str(uuid.uuid4())}], "FailedEntryCount": 0}

    def glue(self, key: str, params: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("small files must not take the Glue route")


@pytest.fixture
def local_home(tmp_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATASETS_DIR", str(ROOT / "datasets"))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Lakehouse")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "lakehouse")
    for name in ("LANDING_BUCKET", "LAKE_BUCKET", "QUARANTINE_BUCKET", "LAMBDA_ROUTE_MAX_BYTES"):
        monkeypatch.delenv(name, raising=False)
    return tmp_home


def local_substitutions() -> dict[str, str]:
    """The DefinitionSubstitutions as the local executor resolves them (local names and ARNs)."""
    from lakehouse.local.project import Project

    project = Project.load(ROOT)
    keys = project.definition_substitution_keys(MACHINE)
    return {k: project.resolve(v, project.parameter_defaults()) for k, v in keys.items()}


@pytest.fixture
def real_machine(
    local_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LocalStateMachine, FakeServices]]:
    """The real handlers under local IAM enforcement: each Lambda task is invoked by the machine's role
    and runs as its function's role; each service task is checked against the machine's role."""
    from lakehouse.local.enforce import lambda_as, service_as

    monkeypatch.setenv("LAKEHOUSE_IAM", "on")
    monkeypatch.setenv("LAKEHOUSE_PROJECT_ROOT", str(ROOT))
    services = FakeServices(local_home)
    handlers = {
        "glue:startJobRun.sync": services.glue,
        "athena:startQueryExecution.sync": services.athena,
        "athena:getQueryResults": services.athena,
        "emr-serverless:startJobRun.sync": services.emr,
        "sns:publish": services.sns,
        "events:putEvents": services.put_events,
    }
    with LocalStateMachine(
        DEFINITION,
        name=MACHINE,
        substitutions=local_substitutions(),
        lambda_handlers={
            key.removesuffix("Arn"): lambda_as(MACHINE, key.removesuffix("Arn"), _load_handler(directory))
            for key, directory in FUNCTIONS.items()
        },
        service_handlers={key: service_as(MACHINE, key, handler) for key, handler in handlers.items()},
        time_scale=0.0,
    ) as sm:
        yield sm, services


def land(home: Path, key: str, rows: list[str]) -> dict[str, Any]:
    """Drop a CSV in the local landing bucket; return the run input on_object_created would start."""
    from lakehouse.events import ObjectCreated
    from lakehouse.events import run_input as make_input

    path = home / "buckets" / "landing" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ("\n".join([HEADER, *rows]) + "\n").encode()
    path.write_bytes(data)
    import hashlib

    etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
    obj = ObjectCreated(
        bucket="landing", key=key, size=len(data), etag=etag, event_time="2026-11-26T10:15:42Z"
    )
    return make_input("orders", obj)


def table_rows(home: Path) -> list[tuple[int, float]]:
    from deltalake import DeltaTable

    table = DeltaTable(str(home / "buckets" / "lake" / "tables" / "orders")).to_pyarrow_table(
        columns=["o_orderkey", "o_totalprice"]
    )
    return sorted(
        zip(table.column(0).to_pylist(), [float(v) for v in table.column(1).to_pylist()], strict=True)
    )


def test_real_handlers_lambda_happy_path(
    real_machine: tuple[LocalStateMachine, FakeServices], local_home: Path
) -> None:
    sm, services = real_machine
    state = land(local_home, "orders/ingest_date=2026-11-26/orders part 1.csv", GOOD_ROWS)

    result = sm.run(state, execution_name=state["run_id"])

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.visited_names == HAPPY_LAMBDA
    out = result.output
    assert out["commit"]["status"] == "committed"
    assert out["commit"]["rows_written"] == 3
    assert out["checks"]["passed"] is True, out["checks"]
    by_name = {r["name"]: r["metric"] for r in out["checks"]["results"]}
    assert by_name["has_rows"] == 3.0
    assert by_name["orderkey_unique"] == 1.0
    assert out["catalog"]["table"] == "orders"
    assert table_rows(local_home) == [(1, 131251.81), (2, 40183.29), (3, 160882.76)]
    assert [e["DetailType"] for e in services.events] == ["DatasetUpdated"]
    assert len(services.emr_runs) == 1
    assert services.alerts == []
    # The lease is free again: a second object for the same table can run at once.
    assert out["lease_release"]["released"] is True

    # The same object version again under another run (an event that slipped through deduplication):
    # a no-op commit, no checks, no publish.
    replay_id = f"{state['run_id'][:60]}-replay"
    again = sm.run({**state, "run_id": replay_id}, execution_name=replay_id)
    assert again.status == "SUCCEEDED", (again.error, again.cause)
    assert again.visited_names == [
        *CLAIM,
        "Inspect",
        "Route",
        "CommitWithLambda",
        "IsDuplicate",
        "FinishBatch",
        "ReleaseLease",
        "Done",
    ]
    assert again.output["commit"]["status"] == "duplicate"
    assert again.output["commit"]["duplicate_of"] == state["run_id"]
    assert len(services.events) == 1
    assert table_rows(local_home) == [(1, 131251.81), (2, 40183.29), (3, 160882.76)]


def test_real_handlers_failed_checks_restore_the_table_and_quarantine(
    real_machine: tuple[LocalStateMachine, FakeServices], local_home: Path
) -> None:
    sm, services = real_machine
    first = land(local_home, "orders/ingest_date=2026-11-26/orders part 1.csv", GOOD_ROWS)
    assert sm.run(first, execution_name=first["run_id"]).status == "SUCCEEDED"
    before = table_rows(local_home)

    # Order 4 passes the row rules (price >= 0) but breaks the price_sane check (<= 1,000,000 for 99.9%).
    bad_key = "orders/ingest_date=2026-11-27/orders part 2.csv"
    bad = land(local_home, bad_key, ['4,137,O,99999999.99,1995-10-11,5-LOW,Clerk#000000124,0,"sits"'])
    result = sm.run(bad, execution_name=bad["run_id"])

    assert result.status == "FAILED", result
    assert result.error == "IngestFailed"
    assert result.visited_names == [
        *CLAIM,
        "Inspect",
        "Route",
        "CommitWithLambda",
        "IsDuplicate",
        "RegisterTable",
        "HasChecks",
        "RunChecks",
        "GetCheckResults",
        "EvaluateChecks",
        "ChecksPassed",
        "RecordChecksFailed",
        *FAILURE_TAIL,
    ]
    [quarantine_input] = entered_inputs(result, "Quarantine")
    assert quarantine_input["error"]["Error"] == "ChecksFailedError"
    assert quarantine_input["rollback"]["restored"] is True
    assert [r["name"] for r in quarantine_input["checks"]["results"] if not r["passed"]] == ["price_sane"]
    # The table is exactly as before the run; the raw object is still in landing and copied aside.
    assert table_rows(local_home) == before
    assert (local_home / "buckets" / "landing" / bad_key).is_file()
    qdir = local_home / "buckets" / "quarantine" / "objects" / "orders" / bad["run_id"]
    assert (qdir / "orders part 2.csv").read_bytes() == (
        local_home / "buckets" / "landing" / bad_key
    ).read_bytes()
    reason = json.loads((qdir / "orders part 2.csv.reason.json").read_text())
    assert reason["error"] == "ChecksFailedError"
    assert reason["source"] == f"s3://landing/{bad_key}"
    assert [a["Subject"] for a in services.alerts] == ["lakehouse: ingest run failed"]
    assert [e["DetailType"] for e in services.events] == ["DatasetUpdated"]  # only the first run's
    assert entered_inputs(result, "IngestFailed")[0]["lease_release"]["released"] is True


def test_real_handlers_contract_violation_quarantines_without_touching_the_table(
    real_machine: tuple[LocalStateMachine, FakeServices], local_home: Path
) -> None:
    sm, services = real_machine
    key = "orders/ingest_date=2026-11-26/orders part 3.csv"
    state = land(local_home, key, [])
    # Not a CSV at all: Parquet magic bytes where the contract expects CSV (and the event names them).
    data = b"PAR1" + b"\x00" * 64 + b"PAR1"
    (local_home / "buckets" / "landing" / key).write_bytes(data)
    state.update(etag=hashlib.md5(data, usedforsecurity=False).hexdigest(), size=len(data))

    result = sm.run(state, execution_name=state["run_id"])

    assert result.status == "FAILED", result
    assert result.visited_names[:4] == [*CLAIM, "Inspect"]
    assert result.visited_names[-len(FAILURE_TAIL) :] == FAILURE_TAIL
    error = entered_inputs(result, "Quarantine")[0]["error"]
    assert error["Error"] in {"UnsupportedFormatError", "InvalidInputError"}
    assert "orders part 3.csv" in json.loads(error["Cause"])["errorMessage"]
    assert not (local_home / "buckets" / "lake" / "tables" / "orders" / "_delta_log").exists()
    qdir = local_home / "buckets" / "quarantine" / "objects" / "orders" / state["run_id"]
    assert (qdir / "orders part 3.csv").is_file()
    assert (local_home / "buckets" / "landing" / key).is_file()
    assert json.loads((qdir / "orders part 3.csv.reason.json").read_text())["error"] == error["Error"]
    assert len(services.alerts) == 1


def test_a_commit_retried_after_committing_resumes_and_runs_its_checks(local_home: Path) -> None:
    """The Lambda commits, then the invocation fails with a transient Lambda error; Step Functions
    retries it. The retry finds this run's own commit: the run resumes (checks fail → Rollback →
    Quarantine) instead of calling itself a duplicate and leaving the bad rows in the table."""
    from lakehouse.local.sfn import TaskFailed

    services = FakeServices(local_home)
    commit = _load_handler("commit_object")
    calls: list[str] = []

    def commit_then_time_out(event: dict[str, Any], context: Any) -> Any:
        result = commit(event, context)
        calls.append(result["status"])
        if len(calls) == 1:
            raise TaskFailed("Lambda.ServiceException", json.dumps({"errorMessage": "service error"}))
        return result

    handlers = {function_arn(d): _load_handler(d) for d in FUNCTIONS.values()}
    handlers[function_arn("commit_object")] = commit_then_time_out
    with LocalStateMachine(
        DEFINITION,
        name=MACHINE,
        substitutions=SUBSTITUTIONS,
        lambda_handlers=handlers,
        service_handlers={
            "glue:startJobRun.sync": services.glue,
            "athena:startQueryExecution.sync": services.athena,
            "athena:getQueryResults": services.athena,
            "emr-serverless:startJobRun.sync": services.emr,
            "sns:publish": services.sns,
            "events:putEvents": services.put_events,
        },
        time_scale=0.0,
    ) as sm:
        good = land(local_home, "orders/ingest_date=2026-11-26/orders part 1.csv", GOOD_ROWS)
        calls.append("setup")  # the first run's commit must not time out
        assert sm.run(good, execution_name=good["run_id"]).status == "SUCCEEDED"
        before = table_rows(local_home)
        calls.clear()

        bad_key = "orders/ingest_date=2026-11-27/orders part 2.csv"
        bad = land(local_home, bad_key, ['4,137,O,99999999.99,1995-10-11,5-LOW,Clerk#000000124,0,"sits"'])
        result = sm.run(bad, execution_name=bad["run_id"])

    assert calls == ["committed", "committed"]  # the commit, then the retry finding its own commit
    assert result.status == "FAILED", result
    assert "RecordChecksFailed" in result.visited_names
    assert result.visited_names[-len(FAILURE_TAIL) :] == FAILURE_TAIL
    [retried] = [e for e in entered_inputs(result, "Quarantine")]
    assert retried["commit"]["resumed"] is True
    assert retried["rollback"]["restored"] is True
    assert table_rows(local_home) == before


def test_real_handlers_object_overwritten_after_its_event_ingests_no_other_bytes(
    real_machine: tuple[LocalStateMachine, FakeServices], local_home: Path
) -> None:
    sm, services = real_machine
    first = land(local_home, "orders/ingest_date=2026-11-26/orders part 1.csv", GOOD_ROWS)
    assert sm.run(first, execution_name=first["run_id"]).status == "SUCCEEDED"
    before = table_rows(local_home)
    key = "orders/ingest_date=2026-11-27/orders part 2.csv"
    state = land(local_home, key, ['4,137,O,31084.79,1995-10-11,5-LOW,Clerk#000000124,0,"sits"'])
    # Overwritten in place (an unversioned object: a file dropped straight into the folder) before its
    # run reads it: the run must not ingest the new bytes under the old object's identity.
    land(local_home, key, ['5,137,O,31084.79,1995-10-11,5-LOW,Clerk#000000124,0,"other bytes"'])

    result = sm.run(state, execution_name=state["run_id"])

    assert result.status == "FAILED", result
    assert result.visited_names == [*CLAIM, "Inspect", *FAILURE_TAIL]
    error = entered_inputs(result, "Quarantine")[0]["error"]
    assert error["Error"] == "ObjectChangedError"
    message = json.loads(error["Cause"])["errorMessage"]
    assert f"s3://landing/{key}" in message
    assert state["etag"] in message
    assert "own event and run" in message
    assert table_rows(local_home) == before
    qdir = local_home / "buckets" / "quarantine" / "objects" / "orders" / state["run_id"]
    assert sorted(p.name for p in qdir.iterdir()) == ["orders part 2.csv.reason.json"]  # no other bytes
    reason = json.loads((qdir / "orders part 2.csv.reason.json").read_text())
    assert reason["error"] == "ObjectChangedError"
    assert reason["object"].startswith("not copied:")
    assert len(services.alerts) == 1


def _template_without(tmp_path: Path, old: str, new: str) -> Path:
    """A project root whose template.yaml has `old` replaced (what the IAM model reads)."""
    text = (ROOT / "template.yaml").read_text()
    assert text.count(old) == 1, old
    root = tmp_path / "project"
    root.mkdir()
    (root / "template.yaml").write_text(text.replace(old, new))
    return root


def test_real_handlers_a_missing_grant_fails_the_task_as_aws_would(
    real_machine: tuple[LocalStateMachine, FakeServices],
    local_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CommitObjectFunction's role without s3:PutObject on the tables: the commit is denied with AWS's
    AccessDenied message, the run is rolled back and quarantined, and the table is never created."""
    root = _template_without(
        tmp_path,
        "CommitDeltaTables\n              Effect: Allow\n              Action: [s3:GetObject, s3:PutObject]",
        "CommitDeltaTables\n              Effect: Allow\n              Action: [s3:GetObject]",
    )
    monkeypatch.setenv("LAKEHOUSE_PROJECT_ROOT", str(root))
    sm, services = real_machine
    state = land(local_home, "orders/ingest_date=2026-11-26/orders part 1.csv", GOOD_ROWS)

    result = sm.run(state, execution_name=state["run_id"])

    assert result.status == "FAILED", result
    assert result.visited_names[-len(FAILURE_TAIL) :] == FAILURE_TAIL
    error = entered_inputs(result, "Quarantine")[0]["error"]
    assert error["Error"] == "AccessDeniedError"
    message = json.loads(error["Cause"])["errorMessage"]
    assert message.startswith(
        "User: arn:aws:sts::000000000000:assumed-role/CommitObjectFunctionRole/CommitObjectFunction "
        'is not authorized to perform: s3:PutObject on resource: "arn:aws:s3:::lake/tables/orders/'
    ), message
    assert message.endswith("because no identity-based policy allows the s3:PutObject action")
    assert not (local_home / "buckets" / "lake" / "tables" / "orders" / "_delta_log").exists()
    assert [a["Subject"] for a in services.alerts] == ["lakehouse: ingest run failed"]


def test_real_handlers_the_machine_role_must_allow_invoking_each_function(
    real_machine: tuple[LocalStateMachine, FakeServices],
    local_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """IngestStateMachineRole without lambda:InvokeFunction on InspectObjectFunction's alias: Inspect fails
    with Lambda.AWSLambdaException (retried, then caught), as Step Functions reports it."""
    root = _template_without(
        tmp_path,
        "- !Ref InspectObjectFunction.Alias\n                  - !Ref CommitObjectFunction.Alias",
        "- !Ref CommitObjectFunction.Alias",
    )
    monkeypatch.setenv("LAKEHOUSE_PROJECT_ROOT", str(root))
    sm, _services = real_machine
    state = land(local_home, "orders/ingest_date=2026-11-26/orders part 1.csv", GOOD_ROWS)

    result = sm.run(state, execution_name=state["run_id"])

    assert result.status == "FAILED", result
    error = entered_inputs(result, "Rollback")[0]["error"]
    assert error["Error"] == "Lambda.AWSLambdaException"
    alias = "arn:aws:lambda:us-east-1:000000000000:function:InspectObjectFunction:live"
    assert f"lambda:InvokeFunction on resource: {alias}" in error["Cause"]
    failures = [e for e in result.history if "lambdaFunctionFailedEventDetails" in e]
    assert len(failures) == 7  # the first attempt and the 6 retries the ASL gives Lambda.AWSLambdaException
