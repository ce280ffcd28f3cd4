"""AWS-fidelity checks of template.yaml, the ASL and the jobs that linters cannot see (issue 11).

Each test names the AWS behaviour it encodes; docs/DEPLOY.md and docs/OPERATIONS.md say why.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from .test_template import (
    PARAMETERS,
    RESOURCES,
    TPL,
    as_list,
    asl_of,
    is_terminal,
    iter_states,
    lease_action,
    successors,
)

# --------------------------------------------------------------------------- a tiny IAM evaluator


def _arn_pattern(value: Any) -> str:
    """A policy Resource as a glob over ARNs of this template: `${Bucket.Arn}` -> arn:aws:s3:::<Bucket>."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        name, attr = value["Fn::GetAtt"]
        assert attr == "Arn", value
        return f"arn:aws:s3:::{name}"
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        for name in RESOURCES:
            text = text.replace("${" + name + ".Arn}", f"arn:aws:s3:::{name}")
        return str(text)
    return str(value)


def role_allows(role: str, action: str, arn: str) -> bool:
    """Whether an inline Allow statement of `role` grants `action` on `arn` (no Deny, no conditions used)."""
    for policy in RESOURCES[role]["Properties"]["Policies"]:
        for st in policy["PolicyDocument"]["Statement"]:
            if st["Effect"] != "Allow" or action not in as_list(st["Action"]):
                continue
            if any(fnmatch.fnmatchcase(arn, _arn_pattern(r)) for r in as_list(st["Resource"])):
                return True
    return False


def s3_object(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


# --------------------------------------------------------------------------- 1. Glue route with rejects

RUN_ROWS = "rows/orders/orders-0123/rejects.parquet"
# What lakehouse.spark.ingest/_write_rejects and _readable_uri do on S3 for one run with rejected rows,
# as (IAM action, bucket, key). Hadoop's S3 filesystems: exists/getFileStatus = HeadObject (s3:GetObject)
# + ListObjectsV2 (s3:ListBucket); rename = CopyObject (s3:GetObject on the source, s3:PutObject on the
# target) + DeleteObject; mode("overwrite") deletes what is there; mkdirs may put a folder marker.
GLUE_REJECT_OPERATIONS = [
    ("s3:GetObject", "QuarantineBucket", f"{RUN_ROWS}.staging"),  # overwrite: does the folder exist?
    ("s3:ListBucket", "QuarantineBucket", ""),
    ("s3:DeleteObject", "QuarantineBucket", f"{RUN_ROWS}.staging/part-00000.snappy.parquet"),
    ("s3:PutObject", "QuarantineBucket", f"{RUN_ROWS}.staging/part-00000.snappy.parquet"),
    ("s3:PutObject", "QuarantineBucket", f"{RUN_ROWS}.staging/_SUCCESS"),
    ("s3:GetObject", "QuarantineBucket", RUN_ROWS),  # dst_fs.exists(rejects.parquet)
    ("s3:DeleteObject", "QuarantineBucket", RUN_ROWS),  # an old one from a retried run
    ("s3:PutObject", "QuarantineBucket", "rows/orders/orders-0123/"),  # mkdirs marker
    ("s3:GetObject", "QuarantineBucket", f"{RUN_ROWS}.staging/part-00000.snappy.parquet"),  # copy source
    ("s3:PutObject", "QuarantineBucket", RUN_ROWS),  # copy target
    ("s3:DeleteObject", "QuarantineBucket", f"{RUN_ROWS}.staging/part-00000.snappy.parquet"),
    ("s3:DeleteObject", "QuarantineBucket", f"{RUN_ROWS}.staging/_SUCCESS"),
    # A gzip object whose name lacks .gz is copied next to the rejects and read back by Spark.
    ("s3:GetObject", "LandingBucket", "orders/orders-2026-11-26"),
    ("s3:PutObject", "QuarantineBucket", f"{RUN_ROWS}.input/orders-2026-11-26.gz"),
    ("s3:GetObject", "QuarantineBucket", f"{RUN_ROWS}.input/orders-2026-11-26.gz"),
]


def _allowed(role: str, action: str, bucket: str, key: str) -> bool:
    arn = f"arn:aws:s3:::{bucket}" if action == "s3:ListBucket" else s3_object(bucket, key)
    return role_allows(role, action, arn)


def test_glue_role_allows_every_s3_call_of_a_run_with_rejects() -> None:
    denied = [op for op in GLUE_REJECT_OPERATIONS if not _allowed("GlueJobRole", *op)]
    assert denied == []


def test_glue_role_writes_quarantine_only_under_rows() -> None:
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        assert not role_allows("GlueJobRole", action, s3_object("QuarantineBucket", "objects/orders/x.csv"))
    # The landed object itself is never written or deleted by the job.
    for action in ("s3:PutObject", "s3:DeleteObject"):
        assert not role_allows("GlueJobRole", action, s3_object("LandingBucket", "orders/x.csv"))


# --------------------------------------------------------------------------- 3. EventBridge -> encrypted


def _key_statements(principal: str) -> list[dict[str, Any]]:
    statements = RESOURCES["DataKey"]["Properties"]["KeyPolicy"]["Statement"]
    return [st for st in statements if st.get("Principal", {}).get("Service") == principal]


def _encrypted_with_data_key(target: Any) -> bool:
    name = target["Fn::GetAtt"][0] if "Fn::GetAtt" in target else target["Ref"].split(".")[0]  # SAM's X.Alias
    props = RESOURCES[name]["Properties"]
    return props.get("KmsMasterKeyId") == {"Ref": "DataKey"}


def test_eventbridge_can_use_the_key_of_every_encrypted_rule_target() -> None:
    """SNS/SQS docs: EventBridge -> encrypted topic/queue needs kms:GenerateDataKey + kms:Decrypt for
    events.amazonaws.com, and aws:SourceAccount / aws:SourceArn conditions are not supported there."""
    targets = [
        t
        for rule in RESOURCES.values()
        if rule["Type"] == "AWS::Events::Rule"
        for t in [
            *rule["Properties"]["Targets"],
            *[x["DeadLetterConfig"] for x in rule["Properties"]["Targets"] if "DeadLetterConfig" in x],
        ]
    ]
    encrypted = [t["Arn"] for t in targets if _encrypted_with_data_key(t["Arn"])]
    assert len(encrypted) >= 3  # ingest queue, its DLQ, the alert topic
    statements = _key_statements("events.amazonaws.com")
    usable = [
        st
        for st in statements
        if st["Effect"] == "Allow"
        and {"kms:Decrypt", "kms:GenerateDataKey"} <= set(as_list(st["Action"]))
        and not st.get("Condition")
    ]
    assert usable, f"no unconditional EventBridge grant in the key policy: {statements}"


# --------------------------------------------------------------------------- 7. lease TTL vs worst-case run

START_CALL_SECONDS = 60  # one Start* call of a .sync integration that fails and is retried
GLUE_FLEX_START_DELAY = 20 * 60  # Flex runs may wait this long for capacity
JOB_START_MARGIN = 300  # EMR Serverless application start / Glue provisioning on top of the job timeout


def retry_delays(retrier: dict[str, Any]) -> float:
    """The longest total wait of one retrier: full jitter waits at most the exponential backoff, capped."""
    interval = retrier.get("IntervalSeconds", 1)
    rate = retrier.get("BackoffRate", 2.0)
    cap = retrier.get("MaxDelaySeconds", float("inf"))
    return sum(min(interval * rate**i, cap) for i in range(retrier.get("MaxAttempts", 3)))


def worst_case_seconds(state: dict[str, Any]) -> float:
    """A Task's longest time: every attempt runs to TimeoutSeconds, plus every backoff.

    For a `.sync` integration the retried errors come from the Start call (a run that fails after it
    started is States.TaskFailed, which is never retried), so one attempt runs to the timeout and each
    retry costs a Start call.
    """
    if state["Type"] != "Task":
        return 0.0
    timeout = state["TimeoutSeconds"]
    retriers = state.get("Retry", [])
    retries = sum(r.get("MaxAttempts", 3) for r in retriers)
    delays = sum(retry_delays(r) for r in retriers)
    if str(state["Resource"]).endswith(".sync"):
        return timeout + retries * START_CALL_SECONDS + delays
    return (1 + retries) * timeout + delays


def longest_leased_path(states: dict[str, Any]) -> tuple[float, list[str]]:
    """The slowest path from a successful AcquireTableLease to a ReleaseLease state (or an end)."""
    memo: dict[str, tuple[float, list[str]]] = {}

    def walk(name: str) -> tuple[float, list[str]]:
        if name not in memo:
            state = states[name]
            if lease_action(state) == "release":
                return 0.0, []
            tail = max(
                (walk(n) for n in ([] if is_terminal(state) else successors(state))),
                default=(0.0, []),
                key=lambda v: v[0],
            )
            memo[name] = (worst_case_seconds(state) + tail[0], [name, *tail[1]])
        return memo[name]

    acquires = [s for s in states.values() if lease_action(s) == "acquire"]
    return max((walk(a["Next"]) for a in acquires), key=lambda v: v[0])


def leased_paths() -> dict[str, tuple[float, list[str]]]:
    out = {}
    for machine in ("IngestStateMachine", "MaintenanceStateMachine"):
        for name, state in [
            ("", {"ItemProcessor": {"States": asl_of(machine)["States"]}}),
            *iter_states(asl_of(machine)["States"]),
        ]:
            inner = state.get("ItemProcessor") or state.get("Iterator")
            if inner and any(lease_action(s) == "acquire" for s in inner["States"].values()):
                out[f"{machine}/{name}"] = longest_leased_path(inner["States"])
    return out


def test_lease_ttl_outlasts_the_slowest_run_holding_it() -> None:
    ttl = PARAMETERS["LeaseTtlSeconds"]
    paths = leased_paths()
    assert set(paths) == {"IngestStateMachine/", "MaintenanceStateMachine/MaintainTables"}
    slowest = max(paths.values(), key=lambda v: v[0])
    # 10 % margin on the worst case; nobody can deploy a shorter lease (MinValue).
    assert ttl["MinValue"] >= slowest[0] * 1.1, (
        f"TTL {ttl['MinValue']} s < 1.1 x {slowest[0]} s along {slowest[1]}"
    )
    assert ttl["Default"] >= ttl["MinValue"]


def test_job_task_timeouts_cover_the_job_timeouts() -> None:
    """The state machine waits at least as long as the job itself may run (and Flex may wait to start)."""
    glue = asl_of("IngestStateMachine")["States"]["TransformWithGlue"]
    glue_minutes = PARAMETERS["GlueTimeoutMinutes"]
    assert RESOURCES["BronzeToSilverGlueJob"]["Properties"]["Timeout"] == {"Ref": "GlueTimeoutMinutes"}
    assert glue["TimeoutSeconds"] >= glue_minutes["MaxValue"] * 60 + GLUE_FLEX_START_DELAY + JOB_START_MARGIN
    for machine in ("IngestStateMachine", "MaintenanceStateMachine"):
        for name, state in iter_states(asl_of(machine)["States"]):
            if state.get("Resource") == "arn:aws:states:::emr-serverless:startJobRun.sync":
                minutes = state["Parameters"]["ExecutionTimeoutMinutes"]
                assert state["TimeoutSeconds"] >= minutes * 60 + JOB_START_MARGIN, name


def test_worst_case_counts_every_attempt_and_backoff() -> None:
    """The calculator itself: 2 retries of a 10 s Lambda task with 2 s/x2 backoff = 3 x 10 + 2 + 4."""
    task = {
        "Type": "Task",
        "Resource": "${F}",
        "TimeoutSeconds": 10,
        "Retry": [
            {
                "ErrorEquals": ["X"],
                "IntervalSeconds": 2,
                "BackoffRate": 2,
                "MaxAttempts": 2,
                "MaxDelaySeconds": 3,
            }
        ],
    }
    assert worst_case_seconds(task) == 3 * 10 + 2 + 3  # the second wait is capped at 3 s
    sync = {**task, "Resource": "arn:aws:states:::glue:startJobRun.sync"}
    assert worst_case_seconds(sync) == 10 + 2 * START_CALL_SECONDS + 2 + 3


# --------------------------------------------------------------------------- 8. smaller ones


def _evaluate(expr: Any, params: dict[str, str]) -> Any:
    """The condition functions a template Rule uses, over concrete parameter values."""
    if isinstance(expr, dict):
        ((fn, arg),) = expr.items()
        if fn == "Ref":
            return params[arg]
        values = [_evaluate(a, params) for a in as_list(arg)]
        if fn == "Fn::Equals":
            return values[0] == values[1]
        if fn == "Fn::Contains":
            return values[1] in values[0]
        if fn == "Fn::Not":
            return not values[0]
        if fn == "Fn::And":
            return all(values)
        if fn == "Fn::Or":
            return any(values)
        raise AssertionError(f"unsupported rule function {fn}")
    if isinstance(expr, list):
        return [_evaluate(e, params) for e in expr]
    return expr


def rules_accept(params: dict[str, str]) -> bool:
    for rule in TPL.get("Rules", {}).values():
        if "RuleCondition" in rule and not _evaluate(rule["RuleCondition"], params):
            continue
        if not all(_evaluate(a["Assert"], params) for a in rule["Assertions"]):
            return False
    return True


def test_flex_is_only_accepted_with_g1x_or_g2x_workers() -> None:
    """AWS Glue Flex execution supports G.1X and G.2X workers only."""
    for execution_class in PARAMETERS["GlueExecutionClass"]["AllowedValues"]:
        for worker in PARAMETERS["GlueWorkerType"]["AllowedValues"]:
            params = {"GlueExecutionClass": execution_class, "GlueWorkerType": worker}
            expected = execution_class != "FLEX" or worker in ("G.1X", "G.2X")
            assert rules_accept(params) == expected, params


def test_glue_5_job_sets_no_glue_4_logging_flags() -> None:
    job = RESOURCES["BronzeToSilverGlueJob"]["Properties"]
    assert float(job["GlueVersion"]) >= 5.0
    flags = set(job["DefaultArguments"])
    assert not {f for f in flags if f.startswith("--enable-continuous") or f.startswith("--continuous-log")}


def test_no_versioned_bucket_is_deleted_with_the_stack() -> None:
    """CloudFormation cannot delete a non-empty bucket: a versioned bucket in use never is empty, so a
    DeletionPolicy Delete on it makes `sam delete` fail (docs/DEPLOY.md, Clean up)."""
    for name, res in RESOURCES.items():
        if res["Type"] != "AWS::S3::Bucket":
            continue
        if res["Properties"].get("VersioningConfiguration", {}).get("Status") == "Enabled":
            assert res.get("DeletionPolicy") == "Retain", name
    rules = RESOURCES["AthenaResultsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any(r.get("ExpirationInDays") and r.get("NoncurrentVersionExpiration") for r in rules)
    assert any(r.get("ExpiredObjectDeleteMarker") for r in rules)


# --------------------------------------------------------------------------- 6. delta-rs log cleanup


def function_allows(function: str, action: str, arn: str) -> bool:
    """Whether an inline statement of a SAM function's Policies grants `action` on `arn`."""
    for policy in RESOURCES[function]["Properties"].get("Policies", []):
        for st in policy.get("Statement", []) if isinstance(policy, dict) else []:
            if (
                st["Effect"] == "Allow"
                and action in as_list(st["Action"])
                and any(fnmatch.fnmatchcase(arn, _arn_pattern(r)) for r in as_list(st["Resource"]))
            ):
                return True
    return False


def test_delta_rs_writers_may_clean_up_expired_log_entries() -> None:
    """delta-rs (1.6.6) runs a post-commit hook: a checkpoint every `delta.checkpointInterval` commits,
    then `cleanup_expired_logs_for` deletes log entries older than `delta.logRetentionDuration` unless
    `delta.enableExpiredLogCleanup` is false. Its delete errors propagate (`try_collect().await?`), so a
    denied DeleteObject fails the write after the commit landed."""
    from lakehouse.table_properties import TABLE_CONFIGURATION

    assert TABLE_CONFIGURATION.get("delta.enableExpiredLogCleanup", "true") != "false"
    log_entry = s3_object("LakeBucket", "tables/orders/_delta_log/00000000000000000009.json")
    data_file = s3_object("LakeBucket", "tables/orders/part-00000-1.snappy.parquet")
    for function in ("CommitObjectFunction", "RollbackTableFunction"):
        assert function_allows(function, "s3:DeleteObject", log_entry), function
        assert function_allows(function, "s3:PutObject", log_entry), function  # checkpoints
        assert not function_allows(function, "s3:DeleteObject", data_file), function


# --------------------------------------------------------------------------- 5. canary alarms


def _canary_alarm(function: str) -> dict[str, Any]:
    [ref] = RESOURCES[function]["Properties"]["DeploymentPreference"]["Alarms"]
    return dict(RESOURCES[ref["Ref"]]["Properties"])


def _metric(alarm: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
    [found] = [
        m
        for m in alarm["Metrics"]
        if "MetricStat" in m
        and (m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"])
        == (namespace, name)
    ]
    return dict(found)


def _emitted_dimensions(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The dimension names lakehouse.observability.track_errors really emits (EMF on stdout)."""
    from lakehouse.observability import track_errors

    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Lakehouse")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "lakehouse")

    @track_errors
    def handler(event: Any, context: Any) -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        handler({}, SimpleNamespace(function_name="fn", function_version="7"))
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return {d for blob in blobs for d in blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]}


@pytest.mark.parametrize(
    "function", sorted(r for r, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::Function")
)
def test_canary_alarm_watches_only_unexpected_failures_of_the_live_version(
    function: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    alarm = _canary_alarm(function)
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    version = {"Fn::GetAtt": [function, "Version.Version"]}
    errors = _metric(alarm, "AWS/Lambda", "Errors")["MetricStat"]["Metric"]
    assert {d["Name"]: d["Value"] for d in errors["Dimensions"]} == {
        "FunctionName": {"Ref": function},
        "Resource": {"Fn::Sub": "${" + function + "}:live"},
        "ExecutedVersion": version,
    }
    emitted = _emitted_dimensions(capsys, monkeypatch)
    for name in ("UnexpectedError", "HandledError"):
        dims = {
            d["Name"]: d["Value"]
            for d in _metric(alarm, "Lakehouse", name)["MetricStat"]["Metric"]["Dimensions"]
        }
        assert dims == {
            "function_name": {"Ref": function},
            "function_version": version,
            "service": "lakehouse",
        }
        assert set(dims) == emitted  # the alarm names exactly the dimensions the handler emits
    [expression] = [m for m in alarm["Metrics"] if m.get("ReturnData") is not False]
    ids = {m["Id"]: m for m in alarm["Metrics"]}
    assert ids["unexpected"]["MetricStat"]["Metric"]["MetricName"] == "UnexpectedError"
    assert ids["handled"]["MetricStat"]["Metric"]["MetricName"] == "HandledError"
    assert ids["errors"]["MetricStat"]["Metric"]["MetricName"] == "Errors"
    assert expression["Expression"].replace(" ", "") == (
        "FILL(unexpected,0)+IF(FILL(errors,0)>FILL(handled,0),FILL(errors,0)-FILL(handled,0),0)"
    )
    assert {m["MetricStat"]["Period"] for m in alarm["Metrics"] if "MetricStat" in m} == {60}


def test_every_handler_counts_its_errors() -> None:
    import ast

    root = Path(__file__).resolve().parents[2]
    for app in sorted(root.glob("functions/*/app.py")):
        tree = ast.parse(app.read_text())
        [handler] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "handler"]
        first = handler.decorator_list[0]
        assert isinstance(first, ast.Name), app
        assert first.id == "track_errors", f"{app}: @track_errors must be outermost"


# --------------------------------------------------------------------------- the run's final status


def test_every_ended_ingest_execution_reaches_record_run_outcome() -> None:
    """EventBridge "Step Functions Execution Status Change" (source aws.states) for the ingest machine's
    terminal statuses invokes RecordRunOutcomeFunction's live alias, which lets only that rule invoke it."""
    rules = [
        (name, r["Properties"])
        for name, r in RESOURCES.items()
        if r["Type"] == "AWS::Events::Rule"
        and any(t["Arn"] == {"Ref": "RecordRunOutcomeFunction.Alias"} for t in r["Properties"]["Targets"])
    ]
    [(rule, props)] = rules
    assert props["State"] == "ENABLED"
    assert props["EventPattern"] == {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {
            "stateMachineArn": [{"Ref": "IngestStateMachine"}],
            "status": ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"],
        },
    }
    sample = json.loads((Path(__file__).resolve().parents[2] / "events/record_run_outcome.json").read_text())
    assert sample["source"] in props["EventPattern"]["source"]
    assert sample["detail-type"] in props["EventPattern"]["detail-type"]
    assert sample["detail"]["status"] in props["EventPattern"]["detail"]["status"]
    [permission] = [
        r["Properties"]
        for r in RESOURCES.values()
        if r["Type"] == "AWS::Lambda::Permission"
        and r["Properties"]["FunctionName"] == {"Ref": "RecordRunOutcomeFunction.Alias"}
    ]
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == {"Fn::GetAtt": [rule, "Arn"]}
    # The run ledger (FunctionBasePolicy: the data key, ledger GetItem/PutItem), and what settling the
    # execution's drain needs: its pending items, its lease, the next drain.
    policies = RESOURCES["RecordRunOutcomeFunction"]["Properties"]["Policies"]
    assert policies[0] == {"Ref": "FunctionBasePolicy"}
    granted = {
        (a, json.dumps(st["Resource"], sort_keys=True))
        for st in policies[1]["Statement"]
        for a in st["Action"]
    }
    assert granted == {
        ("dynamodb:Query", '{"Fn::Sub": "${PendingObjectsTable.Arn}/index/*"}'),
        ("dynamodb:DeleteItem", '{"Fn::GetAtt": ["PendingObjectsTable", "Arn"]}'),
        ("dynamodb:GetItem", '{"Fn::GetAtt": ["LeaseTable", "Arn"]}'),
        ("dynamodb:PutItem", '{"Fn::GetAtt": ["LeaseTable", "Arn"]}'),
        ("dynamodb:DeleteItem", '{"Fn::GetAtt": ["LeaseTable", "Arn"]}'),
        ("states:StartExecution", '{"Ref": "IngestStateMachine"}'),
    }


def test_metric_math_alarms_read_at_most_ten_metrics_and_every_function_throttle_is_watched() -> None:
    """CloudWatch: an alarm on a metric math expression can reference at most 10 metrics (a hard limit:
    PutMetricAlarm refuses more), so the stack would not deploy."""
    watched: set[str] = set()
    for name, res in RESOURCES.items():
        if res["Type"] != "AWS::CloudWatch::Alarm":
            continue
        stats = [m["MetricStat"]["Metric"] for m in res["Properties"].get("Metrics", []) if "MetricStat" in m]
        assert len(stats) <= 10, f"{name} reads {len(stats)} metrics"
        for metric in stats:
            if metric["MetricName"] == "Throttles":
                watched |= {d["Value"]["Ref"] for d in metric["Dimensions"] if d["Name"] == "FunctionName"}
    functions = {n for n, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"}
    assert watched == functions
