"""Offline proofs about template.yaml and statemachine/*.asl.json (docs/ARCHITECTURE.md,
"Facts this design relies on").

cfn-lint does not read DefinitionUri files and no linter knows what a state machine's role must allow,
so these tests check what the linters cannot:

- every ``${...}`` in an ASL file has a DefinitionSubstitutions entry and vice versa, and each entry
  points at a resource of the template;
- each state machine role allows exactly the actions its tasks need (and logging/tracing), on the
  resources those tasks name - nothing more, nothing less;
- every Lambda environment variable that names a resource names one that exists, of the right type;
- the functions in the template, in functions/ and in docs/ARCHITECTURE.md are the same set;
- every Task retries transient errors with full jitter, never retries a bad-input error, has a Catch;
- after a table lease is acquired, every path to the end of the run passes a ReleaseLease state.

The checkers are plain functions so that ``TestCheckersCanFail`` can feed them broken inputs and show
that each one reports the breakage (none of these tests is a tautology).

Runs in the project venv: PyYAML only (cfn-lint's loader is not needed).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
VALIDATE_SH = ROOT / "scripts" / "validate.sh"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:]+)\}")

# --------------------------------------------------------------------------- loading


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short-form tags into their long form."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else ("Condition" if suffix == "Condition" else f"Fn::{suffix}")
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)


TPL = load_template()
RESOURCES: dict[str, Any] = TPL["Resources"]
PARAMETERS: dict[str, Any] = TPL.get("Parameters", {})
GLOBAL_FUNCTION: dict[str, Any] = TPL.get("Globals", {}).get("Function", {})


def resources_of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in RESOURCES.items() if res["Type"] == kind}


FUNCTIONS = resources_of_type("AWS::Serverless::Function")
STATE_MACHINES = resources_of_type("AWS::Serverless::StateMachine")


def asl_of(machine: str) -> dict[str, Any]:
    uri = STATE_MACHINES[machine]["Properties"]["DefinitionUri"]
    return json.loads((ROOT / uri).read_text())


def role_of(machine: str) -> dict[str, Any]:
    role = STATE_MACHINES[machine]["Properties"]["Role"]
    assert "Fn::GetAtt" in role, f"{machine}: Role must be a role of this template (!GetAtt X.Arn)"
    return RESOURCES[role["Fn::GetAtt"][0]]


# --------------------------------------------------------------------------- intrinsic helpers


def referenced_names(value: Any) -> set[str]:
    """Logical ids and parameters an intrinsic value refers to (Ref, GetAtt, Sub variables)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref":
                found.add(str(inner).split(".")[0])
            elif key == "Fn::GetAtt":
                found.add(str(inner[0]))
            elif key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0]
                local = set(inner[1]) if isinstance(inner, list) and len(inner) > 1 else set()
                for var in PLACEHOLDER.findall(text):
                    base = var.split(".")[0]
                    if not base.startswith("AWS::") and base not in local:
                        found.add(base)
                if isinstance(inner, list) and len(inner) > 1:
                    found |= referenced_names(inner[1])
            else:
                found |= referenced_names(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= referenced_names(inner)
    return found


def names_exist(names: set[str]) -> set[str]:
    """The names that are neither resources nor parameters (pseudo-parameters are fine)."""
    return {n for n in names if n not in RESOURCES and n not in PARAMETERS and not n.startswith("AWS::")}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --------------------------------------------------------------------------- ASL walking


def iter_states(states: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, including those inside Map ItemProcessor / Iterator and Parallel branches."""
    for name, state in states.items():
        yield prefix + name, state
        inner = state.get("ItemProcessor") or state.get("Iterator")
        if inner:
            yield from iter_states(inner["States"], f"{prefix}{name}/")
        for i, branch in enumerate(state.get("Branches", [])):
            yield from iter_states(branch["States"], f"{prefix}{name}[{i}]/")


def tasks(asl: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(n, s) for n, s in iter_states(asl["States"]) if s["Type"] == "Task"]


def successors(state: dict[str, Any]) -> list[str]:
    nxt = [state["Next"]] if "Next" in state else []
    nxt += [c["Next"] for c in state.get("Choices", [])]
    if "Default" in state:
        nxt.append(state["Default"])
    nxt += [c["Next"] for c in state.get("Catch", [])]
    return nxt


def is_terminal(state: dict[str, Any]) -> bool:
    return state["Type"] in ("Succeed", "Fail") or bool(state.get("End"))


def lease_action(state: dict[str, Any]) -> str | None:
    if state.get("Type") != "Task" or "ManageLeaseFunction" not in str(state.get("Resource", "")):
        return None
    return (state.get("Parameters") or {}).get("action")


def lease_leaks(states: dict[str, Any]) -> list[list[str]]:
    """Paths from a successful lease acquisition to an end that pass no release state."""
    leaks: list[list[str]] = []
    for name, state in states.items():
        if lease_action(state) != "acquire":
            continue
        stack: list[list[str]] = [[state["Next"]]]  # the success edge only: a failed acquire holds nothing
        seen: set[str] = set()
        while stack:
            path = stack.pop()
            current = path[-1]
            if current in seen:
                continue
            seen.add(current)
            cur = states[current]
            if lease_action(cur) == "release":
                continue
            if is_terminal(cur):
                leaks.append([name, *path])
                continue
            stack.extend([*path, s] for s in successors(cur))
    for state in states.values():  # nested state machines have their own leases
        inner = state.get("ItemProcessor") or state.get("Iterator")
        if inner:
            leaks += lease_leaks(inner["States"])
    return leaks


# --------------------------------------------------------------------------- what each task needs

LOGGING_ACTIONS = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
TRACING_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
}
ATHENA_DATA_ACTIONS = {
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:GetPartitions",
    "s3:GetObject",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "s3:ListBucketMultipartUploads",
}
KMS_ACTIONS = {"kms:Decrypt", "kms:GenerateDataKey"}

# Task resource -> (actions it needs, logical ids the granting statements must name).
SERVICE_TASKS: dict[str, tuple[set[str], set[str]]] = {
    "arn:aws:states:::glue:startJobRun.sync": (
        {"glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"},
        {"BronzeToSilverGlueJob"},
    ),
    "arn:aws:states:::athena:startQueryExecution.sync": (
        {"athena:StartQueryExecution", "athena:GetQueryExecution", "athena:StopQueryExecution"}
        | ATHENA_DATA_ACTIONS
        | KMS_ACTIONS,
        {"AthenaWorkGroup", "GlueDatabase", "LakeBucket", "AthenaResultsBucket", "DataKey"},
    ),
    "arn:aws:states:::athena:getQueryResults": (
        {"athena:GetQueryResults", "s3:GetObject", "s3:ListBucket"} | KMS_ACTIONS,
        {"AthenaWorkGroup", "AthenaResultsBucket", "DataKey"},
    ),
    "arn:aws:states:::emr-serverless:startJobRun.sync": (
        {
            "emr-serverless:StartJobRun",
            "emr-serverless:GetJobRun",
            "emr-serverless:CancelJobRun",
            "events:PutTargets",
            "events:PutRule",
            "events:DescribeRule",
            "iam:PassRole",
        },
        {"EmrApplication", "EmrJobRole"},
    ),
    "arn:aws:states:::sns:publish": ({"sns:Publish"} | KMS_ACTIONS, {"AlertTopic", "DataKey"}),
    "arn:aws:states:::events:putEvents": ({"events:PutEvents"}, set()),
}
NON_TRANSIENT = {
    "InvalidInputError",
    "SchemaMismatchError",
    "RowRuleViolationError",
    "UnsupportedFormatError",
    "ContractError",
    "ChecksFailedError",
    "States.ALL",
    "States.TaskFailed",
    "States.Timeout",
}
LAMBDA_TRANSIENT = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "TransientError",
    "CommitConflictError",
}


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for policy in role["Properties"].get("Policies", []):
        out += policy["PolicyDocument"]["Statement"]
    assert not role["Properties"].get("ManagedPolicyArns"), "state machine roles use inline policies only"
    return out


def granted_actions(role: dict[str, Any]) -> set[str]:
    return {a for st in statements(role) if st["Effect"] == "Allow" for a in as_list(st["Action"])}


def required(machine: str, asl: dict[str, Any]) -> tuple[set[str], set[str], set[str]]:
    """(actions, Lambda functions invoked, logical ids the other statements must name)."""
    subs = STATE_MACHINES[machine]["Properties"].get("DefinitionSubstitutions", {})
    actions: set[str] = set()
    functions: set[str] = set()
    names: set[str] = set()
    for name, task in tasks(asl):
        resource = task["Resource"]
        match = PLACEHOLDER.fullmatch(resource)
        if match:  # direct Lambda ARN through a substitution
            value = subs.get(match.group(1))
            assert value is not None, f"{name}: {resource} has no substitution"
            assert "Ref" in value, f"{name}: {resource} must be a !Ref, got {value}"
            assert str(value["Ref"]).endswith(".Alias"), f"{name}: invoke the `live` alias, got {value}"
            functions.add(value["Ref"].split(".")[0])
            actions.add("lambda:InvokeFunction")
        elif resource in SERVICE_TASKS:
            acts, ids = SERVICE_TASKS[resource]
            actions |= acts
            names |= ids
        else:
            raise AssertionError(
                f"{name}: no IAM mapping for task resource {resource!r} - add it to SERVICE_TASKS"
            )
    props = STATE_MACHINES[machine]["Properties"]
    if props.get("Logging", {}).get("Level", "OFF") != "OFF":
        actions |= LOGGING_ACTIONS
    if props.get("Tracing", {}).get("Enabled"):
        actions |= TRACING_ACTIONS
    return actions, functions, names


def role_problems(machine: str, asl: dict[str, Any], role: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    need, functions, names = required(machine, asl)
    granted = granted_actions(role)
    if missing := need - granted:
        problems.append(f"missing actions: {sorted(missing)}")
    if extra := granted - need:
        problems.append(f"actions no task needs: {sorted(extra)}")
    wildcard_ok = LOGGING_ACTIONS | TRACING_ACTIONS
    invoked: set[str] = set()
    for st in statements(role):
        if st["Effect"] != "Allow":
            continue
        acts = set(as_list(st["Action"]))
        if any("*" in a for a in acts):
            problems.append(f"wildcard action in {st.get('Sid')}")
        if "*" in as_list(st["Resource"]) and not acts <= wildcard_ok:
            problems.append(
                f"Resource '*' for scoped actions in {st.get('Sid')}: {sorted(acts - wildcard_ok)}"
            )
        if "lambda:InvokeFunction" in acts:
            for res in as_list(st["Resource"]):
                ref = str(res.get("Ref", "")) if isinstance(res, dict) else ""
                if not ref.endswith(".Alias"):
                    problems.append(f"lambda:InvokeFunction on something other than a function alias: {res}")
                invoked.add(ref.split(".")[0])
        if (
            "iam:PassRole" in acts
            and st.get("Condition", {}).get("StringEquals", {}).get("iam:PassedToService")
            != "emr-serverless.amazonaws.com"
        ):
            problems.append("iam:PassRole must be limited to emr-serverless.amazonaws.com")
        if acts & {"events:PutTargets", "events:PutRule", "events:DescribeRule"} and (
            "StepFunctionsGetEventsForEMRServerlessJobRule" not in json.dumps(st["Resource"])
        ):
            problems.append("events:PutRule/PutTargets/DescribeRule only on the managed .sync rule")
    if invoked != functions:
        problems.append(
            f"invoke permission {sorted(invoked)} != functions the tasks call {sorted(functions)}"
        )
    named = referenced_names([st["Resource"] for st in statements(role)])
    if missing_names := names - named:
        problems.append(f"no statement names {sorted(missing_names)}")
    return problems


# --------------------------------------------------------------------------- ARCHITECTURE.md table


def architecture_functions() -> dict[str, tuple[str, bool]]:
    """Logical id -> (directory, uses the engine layer), from the Lambda functions table."""
    rows: dict[str, tuple[str, bool]] = {}
    pattern = re.compile(r"^\|\s*`(\w+Function)`\s*\|\s*`(\w+)`\s*\|[^|]*\|\s*([^|]+?)\s*\|\s*$")
    for line in ARCHITECTURE.read_text().splitlines():
        if m := pattern.match(line.replace("\\|", "/")):  # escaped pipes inside a cell
            rows[m.group(1)] = (m.group(2), "engine" in m.group(3))
    return rows


def function_layers(fn: dict[str, Any]) -> list[str]:
    refs = GLOBAL_FUNCTION.get("Layers", []) + fn["Properties"].get("Layers", [])
    return [r["Ref"] for r in refs]


def function_env(fn: dict[str, Any]) -> dict[str, Any]:
    env = dict(GLOBAL_FUNCTION.get("Environment", {}).get("Variables", {}))
    env.update(fn["Properties"].get("Environment", {}).get("Variables", {}))
    return env


# =========================================================================== tests


@pytest.mark.parametrize("machine", sorted(STATE_MACHINES))
def test_substitutions_match_placeholders(machine: str) -> None:
    props = STATE_MACHINES[machine]["Properties"]
    text = (ROOT / props["DefinitionUri"]).read_text()
    used = set(PLACEHOLDER.findall(text))
    declared = set(props.get("DefinitionSubstitutions", {}))
    assert used - declared == set(), f"placeholders without a substitution: {sorted(used - declared)}"
    assert declared - used == set(), f"substitutions the definition never uses: {sorted(declared - used)}"


@pytest.mark.parametrize("machine", sorted(STATE_MACHINES))
def test_substitutions_point_at_resources(machine: str) -> None:
    for key, value in STATE_MACHINES[machine]["Properties"]["DefinitionSubstitutions"].items():
        names = referenced_names(value)
        assert names_exist(names) == set(), f"{key} refers to unknown {sorted(names_exist(names))}"


@pytest.mark.parametrize("machine", sorted(STATE_MACHINES))
def test_state_machine_role_allows_exactly_what_tasks_call(machine: str) -> None:
    assert role_problems(machine, asl_of(machine), role_of(machine)) == []


@pytest.mark.parametrize("machine", sorted(STATE_MACHINES))
def test_state_machines_are_standard_logged_traced(machine: str) -> None:
    props = STATE_MACHINES[machine]["Properties"]
    assert props["Type"] == "STANDARD"
    assert props["Logging"]["Level"] == "ALL"
    assert props["Tracing"]["Enabled"] is True
    group = props["Logging"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    assert "KmsKeyId" in RESOURCES[group]["Properties"]
    assert "RetentionInDays" in RESOURCES[group]["Properties"]


def test_maintenance_runs_on_a_schedule_parameter() -> None:
    events = STATE_MACHINES["MaintenanceStateMachine"]["Properties"]["Events"]
    schedules = [e for e in events.values() if e["Type"] in ("Schedule", "ScheduleV2")]
    assert schedules
    assert schedules[0]["Properties"]["Schedule"] == {"Ref": "MaintenanceSchedule"}


@pytest.mark.parametrize("machine", sorted(STATE_MACHINES))
def test_every_task_retries_transient_errors_with_full_jitter(machine: str) -> None:
    for name, task in tasks(asl_of(machine)):
        retriers = task.get("Retry", [])
        assert retriers, f"{name} has no Retry"
        for r in retriers:
            assert r.get("JitterStrategy") == "FULL", f"{name}: {r['ErrorEquals']} without full jitter"
            assert r.get("BackoffRate", 1) >= 2, f"{name}: backoff"
            assert r.get("MaxDelaySeconds"), f"{name}: no MaxDelaySeconds"
            assert not set(r["ErrorEquals"]) & NON_TRANSIENT, f"{name} retries a non-transient error"
        if PLACEHOLDER.fullmatch(task["Resource"]):
            covered = {e for r in retriers for e in r["ErrorEquals"]}
            assert covered >= LAMBDA_TRANSIENT, f"{name} misses {sorted(LAMBDA_TRANSIENT - covered)}"


@pytest.mark.parametrize("machine", sorted(STATE_MACHINES))
def test_every_task_has_a_catch_all(machine: str) -> None:
    for name, task in tasks(asl_of(machine)):
        errors = [e for c in task.get("Catch", []) for e in c["ErrorEquals"]]
        assert "States.ALL" in errors, f"{name} has no Catch [States.ALL]"
        for c in task["Catch"]:
            assert c.get("ResultPath") not in (None, "$"), f"{name}: a Catch must keep the state"


@pytest.mark.parametrize("machine", sorted(STATE_MACHINES))
def test_lease_is_released_on_every_path(machine: str) -> None:
    asl = asl_of(machine)
    acquires = [n for n, s in iter_states(asl["States"]) if lease_action(s) == "acquire"]
    assert acquires, "the machine never takes a table lease"
    assert lease_leaks(asl["States"]) == []


def test_ingest_failure_path_rolls_back_quarantines_alerts_then_releases() -> None:
    states = asl_of("IngestStateMachine")["States"]
    # A batch of several objects is split and retried; one object is quarantined.
    assert states["Rollback"]["Next"] == "IsBatch"
    assert states["IsBatch"]["Default"] == "Quarantine"
    assert [c["Next"] for c in states["IsBatch"]["Choices"]] == ["SplitBatch"]
    assert states["SplitBatch"]["Next"] == "ReleaseLease"
    assert [c["Next"] for c in states["SplitBatch"]["Catch"]] == ["Quarantine"]
    assert states["Quarantine"]["Next"] == "Alert"
    assert states["Alert"]["Next"] == "ReleaseLeaseAfterFailure"
    assert states[states["ReleaseLeaseAfterFailure"]["Next"]]["Type"] == "Fail"
    # Every post-commit task's Catch leads into the failure path with the error kept in $.error.
    for name in (
        "Inspect",
        "CommitWithLambda",
        "TransformWithGlue",
        "ReadGlueResult",
        "RegisterTable",
        "RunChecks",
        "GetCheckResults",
        "EvaluateChecks",
    ):
        assert states[name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Rollback"}
        ], name
    # After the checks passed the commit stands: follow-up failures alert without a rollback.
    for name in ("RefreshDerived", "Publish"):
        assert states[name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "AlertAfterCommit"}
        ], name
    assert states["AlertAfterCommit"]["Next"] == "ReleaseLeaseAfterFailure"
    # A lease that cannot be had: alert and fail, no rollback and no release.
    acquire = states["AcquireTableLease"]
    assert acquire["Retry"][0]["ErrorEquals"] == ["LeaseHeldError"]
    assert states[acquire["Catch"][0]["Next"]]["Resource"] == "arn:aws:states:::sns:publish"


def test_ingest_follows_the_state_data_contract() -> None:
    states = asl_of("IngestStateMachine")["States"]
    expected = {
        "AcquireTableLease": "$.lease",
        "Inspect": "$.inspection",
        "CommitWithLambda": "$.commit",
        "ReadGlueResult": "$.commit",
        "RegisterTable": "$.catalog",
        "RunChecks": "$.athena",
        "GetCheckResults": "$.check_rows",
        "EvaluateChecks": "$.checks",
    }
    assert {n: states[n]["ResultPath"] for n in expected} == expected
    glue = states["TransformWithGlue"]
    # A manifest, not the state: StartJobRun's arguments are size-limited, a batch's keys are not.
    assert glue["Parameters"]["Arguments"] == {
        "--manifest_uri.$": "$.inspection.manifest_uri",
        "--run_id.$": "$.run_id",
    }
    assert set(glue["ResultSelector"]) == {"job_run_id.$", "job_run_state.$"}  # no datetimes
    assert states["Route"]["Choices"][0]["Variable"] == "$.inspection.route"
    publish = states["Publish"]["Parameters"]["Entries"][0]
    assert (publish["DetailType"], publish["Source"]) == ("DatasetUpdated", "lakehouse")
    assert states["RunChecks"]["Parameters"]["QueryString.$"] == "$.inspection.checks_query"


def test_maintenance_map_isolates_table_failures() -> None:
    states = asl_of("MaintenanceStateMachine")["States"]
    mapping = states["MaintainTables"]
    assert mapping["ItemsPath"] == "$.tables"
    assert mapping["MaxConcurrency"] == 4
    inner = mapping["ItemProcessor"]["States"]
    for name, state in inner.items():
        if state["Type"] == "Task":
            assert all(states_type(inner, c["Next"]) != "Fail" for c in state["Catch"]), name
    assert not any(s["Type"] == "Fail" for s in inner.values()), "one table must not fail the map"
    assert states["AnyTableFailed"]["Choices"][0]["Next"] == "AlertMaintenanceFailed"


def states_type(states: dict[str, Any], name: str) -> str:
    return str(states[name]["Type"])


def test_functions_match_architecture_and_directories() -> None:
    table = architecture_functions()
    assert len(table) >= 11, "could not read the function table of docs/ARCHITECTURE.md"
    assert set(FUNCTIONS) == set(table), "template functions != docs/ARCHITECTURE.md table"
    for logical_id, (directory, engine) in table.items():
        fn = FUNCTIONS[logical_id]["Properties"]
        assert fn["CodeUri"].rstrip("/") == f"functions/{directory}", logical_id
        layers = function_layers(FUNCTIONS[logical_id])
        assert layers == (["SharedLayer", "EngineLayer"] if engine else ["SharedLayer"]), logical_id
    on_disk = {
        p.name for p in (ROOT / "functions").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    }
    assert on_disk == {d for d, _ in table.values()}, "functions/ directories != docs/ARCHITECTURE.md table"
    for directory, _ in table.values():
        assert (ROOT / "functions" / directory / "requirements.txt").is_file(), directory


def test_function_settings() -> None:
    g = GLOBAL_FUNCTION
    assert (g["Runtime"], g["Architectures"], g["Handler"]) == ("python3.13", ["arm64"], "app.handler")
    assert g["Tracing"] == "Active"
    assert g["AutoPublishAlias"] == "live"
    assert g["DeploymentPreference"]["Type"] == {"Ref": "DeploymentType"}
    assert PARAMETERS["DeploymentType"]["Default"] == "Canary10Percent5Minutes"
    commit = FUNCTIONS["CommitObjectFunction"]["Properties"]
    assert (commit["MemorySize"], commit["Timeout"], commit["EphemeralStorage"]["Size"]) == (3008, 900, 10240)
    for name, fn in FUNCTIONS.items():
        props = fn["Properties"]
        assert fn["Metadata"]["BuildMethod"] == "makefile", name
        assert isinstance(props.get("ReservedConcurrentExecutions"), int), name
        # The canary rolls back on the function's own error alarm (its metrics: test_template_aws.py).
        alarms = props["DeploymentPreference"]["Alarms"]
        assert len(alarms) == 1, name
        alarm = RESOURCES[alarms[0]["Ref"]]["Properties"]
        metrics = [m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m]
        assert any(m["MetricName"] == "Errors" for m in metrics), name
        for metric in metrics:
            assert referenced_names(metric["Dimensions"]) == {name}, (
                f"{name}'s canary watches another function"
            )


def test_environment_variables_name_existing_resources() -> None:
    expected_kinds = {
        "LANDING_BUCKET": "AWS::S3::Bucket",
        "LAKE_BUCKET": "AWS::S3::Bucket",
        "QUARANTINE_BUCKET": "AWS::S3::Bucket",
        "ARTIFACTS_BUCKET": "AWS::S3::Bucket",
        "LEASE_TABLE": "AWS::DynamoDB::Table",
        "RUN_LEDGER_TABLE": "AWS::DynamoDB::Table",
        "GLUE_DATABASE": "AWS::Glue::Database",
        "STATE_MACHINE_ARN": "AWS::Serverless::StateMachine",
    }
    architecture = ARCHITECTURE.read_text()
    for name, fn in FUNCTIONS.items():
        env = function_env(fn)
        for var in (
            "LANDING_BUCKET",
            "LAKE_BUCKET",
            "QUARANTINE_BUCKET",
            "ARTIFACTS_BUCKET",
            "LEASE_TABLE",
            "RUN_LEDGER_TABLE",
            "PENDING_TABLE",
            "BATCH_MAX_OBJECTS",
            "BATCH_MAX_BYTES",
            "DERIVED_REFRESH_MIN_INTERVAL_S",
            "GLUE_DATABASE",
            "LAMBDA_ROUTE_MAX_BYTES",
            "LEASE_TTL_SECONDS",
            "DATASETS_DIR",
            "LAKEHOUSE_BACKEND",
            "POWERTOOLS_SERVICE_NAME",
            "POWERTOOLS_METRICS_NAMESPACE",
        ):
            assert var in env, f"{name} lacks {var}"
        starts_drains = name in (
            "OnObjectCreatedFunction",
            "RecordRunOutcomeFunction",
            "BackfillLandingFunction",
            "SweepDrainsFunction",
        )
        assert ("STATE_MACHINE_ARN" in env) == starts_drains, name
        for var, value in env.items():
            assert f"`{var}`" in architecture or var == "LOG_LEVEL", f"{var} is not in docs/ARCHITECTURE.md"
            names = referenced_names(value)
            assert names_exist(names) == set(), f"{name}.{var} -> unknown {sorted(names_exist(names))}"
            if var in expected_kinds:
                (target,) = names
                assert RESOURCES[target]["Type"] == expected_kinds[var], f"{name}.{var} -> {target}"
    assert GLOBAL_FUNCTION["Environment"]["Variables"]["DATASETS_DIR"] == "/opt/datasets"


def test_every_taggable_core_resource_is_tagged() -> None:
    for name, res in RESOURCES.items():
        tags = res.get("Properties", {}).get("Tags")
        if res["Type"] in (
            "AWS::S3::Bucket",
            "AWS::SQS::Queue",
            "AWS::DynamoDB::Table",
            "AWS::KMS::Key",
            "AWS::SNS::Topic",
            "AWS::IAM::Role",
            "AWS::Logs::LogGroup",
            "AWS::Athena::WorkGroup",
            "AWS::EMRServerless::Application",
        ):
            keys = {t["Key"] for t in tags or []}
            assert {"project", "environment", "cost-center"} <= keys, name
        elif res["Type"] in ("AWS::Glue::Job", "AWS::Serverless::StateMachine"):
            assert {"project", "environment", "cost-center"} <= set(tags or {}), name
    assert {"project", "environment", "cost-center"} <= set(GLOBAL_FUNCTION["Tags"])


def test_encryption_and_transport() -> None:
    for name, res in resources_of_type("AWS::S3::Bucket").items():
        props = res["Properties"]
        assert props["VersioningConfiguration"]["Status"] == "Enabled", name
        assert all(props["PublicAccessBlockConfiguration"].values()), name
        policies = [
            p
            for p in resources_of_type("AWS::S3::BucketPolicy").values()
            if p["Properties"]["Bucket"] == {"Ref": name}
        ]
        assert any(
            st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for p in policies
            for st in p["Properties"]["PolicyDocument"]["Statement"]
        ), name
        if name != "AccessLogBucket":
            rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
            assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {
                "Fn::GetAtt": ["DataKey", "Arn"]
            }
            assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "AccessLogBucket"}
    assert RESOURCES["DataKey"]["Properties"]["EnableKeyRotation"] is True
    assert RESOURCES["LandingBucket"]["Properties"]["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }
    for name in ("LeaseTable", "RunLedgerTable"):
        sse = RESOURCES[name]["Properties"]["SSESpecification"]
        assert sse["KMSMasterKeyId"] == {"Ref": "DataKey"}, name
    assert RESOURCES["LeaseTable"]["Properties"]["TimeToLiveSpecification"]["AttributeName"] == "ttl"
    assert RESOURCES["IngestQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 5
    for name in resources_of_type("AWS::SQS::Queue"):
        assert RESOURCES[name]["Properties"]["KmsMasterKeyId"] == {"Ref": "DataKey"}, name


def test_glue_job_runs_delta_without_bookmarks() -> None:
    job = RESOURCES["BronzeToSilverGlueJob"]["Properties"]
    args = job["DefaultArguments"]
    assert job["GlueVersion"] == "5.0"
    assert args["--datalake-formats"] == "delta"
    assert args["--job-bookmark-option"] == "job-bookmark-disable"
    assert "io.delta.sql.DeltaSparkSessionExtension" in args["--conf"]
    assert "org.apache.spark.sql.delta.catalog.DeltaCatalog" in args["--conf"]
    assert job["ExecutionClass"] == {"Ref": "GlueExecutionClass"}
    assert job["SecurityConfiguration"] == {"Ref": "GlueSecurityConfiguration"}
    assert job["Command"]["ScriptLocation"]["Fn::Sub"].endswith("/jobs/glue/ingest_large_object.py")


def test_validate_sh_size_check_covers_every_engine_function() -> None:
    engine = {n for n, fn in FUNCTIONS.items() if "EngineLayer" in function_layers(fn)}
    script = VALIDATE_SH.read_text()
    listed = set(re.findall(r"\[(\w+Function)\]=\"SharedLayer EngineLayer\"", script))
    assert "CommitObjectFunction" in engine
    assert listed == engine


# =========================================================================== the checkers can fail


class TestCheckersCanFail:
    """Each checker above, fed a broken copy, reports the breakage."""

    def test_missing_release_is_a_leak(self) -> None:
        states = copy.deepcopy(asl_of("IngestStateMachine")["States"])
        states["Publish"]["Next"] = "Done"  # skip ReleaseLease on success
        assert any(path[-1] == "Done" for path in lease_leaks(states))

    def test_catch_that_skips_release_is_a_leak(self) -> None:
        states = copy.deepcopy(asl_of("IngestStateMachine")["States"])
        states["Alert"]["Catch"][0]["Next"] = "IngestFailed"
        assert lease_leaks(states)

    def test_map_item_leak_is_found(self) -> None:
        states = copy.deepcopy(asl_of("MaintenanceStateMachine")["States"])
        states["MaintainTables"]["ItemProcessor"]["States"]["SyncCatalog"]["Catch"][0]["Next"] = (
            "RecordFailure"
        )
        assert lease_leaks(states)

    def test_extra_permission_is_reported(self) -> None:
        role = copy.deepcopy(role_of("IngestStateMachine"))
        role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
            {"Effect": "Allow", "Action": "s3:DeleteObject", "Resource": {"Fn::Sub": "${LakeBucket.Arn}/*"}}
        )
        problems = role_problems("IngestStateMachine", asl_of("IngestStateMachine"), role)
        assert any("s3:DeleteObject" in p for p in problems)

    def test_missing_permission_is_reported(self) -> None:
        role = copy.deepcopy(role_of("IngestStateMachine"))
        doc = role["Properties"]["Policies"][0]["PolicyDocument"]
        doc["Statement"] = [s for s in doc["Statement"] if s.get("Sid") != "GlueJobRunSync"]
        problems = role_problems("IngestStateMachine", asl_of("IngestStateMachine"), role)
        assert any("glue:StartJobRun" in p for p in problems)

    def test_invoking_an_unused_function_is_reported(self) -> None:
        role = copy.deepcopy(role_of("MaintenanceStateMachine"))
        stmt = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]
        stmt["Resource"].append({"Ref": "CommitObjectFunction.Alias"})
        problems = role_problems("MaintenanceStateMachine", asl_of("MaintenanceStateMachine"), role)
        assert any("CommitObjectFunction" in p for p in problems)

    def test_unmapped_task_resource_is_reported(self) -> None:
        asl = copy.deepcopy(asl_of("IngestStateMachine"))
        asl["States"]["Publish"]["Resource"] = "arn:aws:states:::dynamodb:putItem"
        with pytest.raises(AssertionError, match="no IAM mapping"):
            required("IngestStateMachine", asl)

    def test_unknown_reference_is_reported(self) -> None:
        assert names_exist(referenced_names({"Fn::Sub": "${NoSuchBucket.Arn}/x"})) == {"NoSuchBucket"}
        assert names_exist(referenced_names({"Ref": "LakeBucket"})) == set()

    def test_architecture_table_parser_reads_rows(self) -> None:
        table = architecture_functions()
        assert table["CommitObjectFunction"] == ("commit_object", True)
        assert table["InspectObjectFunction"] == ("inspect_object", True)
        assert table["QuarantineObjectFunction"] == ("quarantine_object", False)


def test_samconfig_has_the_three_environments() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["version"] == 0.1
    allowed = set(PARAMETERS)
    for env in ("default", "dev", "staging", "prod"):
        deploy = config[env]["deploy"]["parameters"]
        assert deploy["capabilities"] == "CAPABILITY_IAM CAPABILITY_AUTO_EXPAND", env
        assert deploy["resolve_s3"] is True, env
        assert deploy["confirm_changeset"] is (env == "prod"), env
        overrides = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', deploy["parameter_overrides"]))
        assert set(overrides) <= allowed, f"{env}: unknown parameters {sorted(set(overrides) - allowed)}"
        expected_env = "dev" if env == "default" else env
        assert overrides["Environment"] == expected_env, env
        assert config[env]["global"]["parameters"]["stack_name"] == f"lakehouse-{expected_env}", env
        for name, value in overrides.items():
            choices = PARAMETERS[name].get("AllowedValues")
            if choices:
                assert value.strip('"') in [str(c) for c in choices], f"{env}: {name}={value}"


def test_every_function_has_a_sam_build_target() -> None:
    """`sam build` runs `make build-<LogicalId>` for every function (BuildMethod: makefile)."""
    makefile = (ROOT / "layers" / "functions" / "Makefile").read_text()
    listed = re.search(r"^FUNCTIONS := (.*?)\n\n", makefile, re.S | re.M)
    assert listed is not None
    names = set(listed.group(1).replace("\\", " ").split())
    assert names == set(FUNCTIONS)
