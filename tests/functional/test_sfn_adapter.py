"""lakehouse.local.sfn: real ASL executed by moto's interpreter, tasks routed to Python."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from lakehouse.local.project import ACCOUNT_ID
from lakehouse.local.sfn import LocalStateMachine, TaskFailed, UnroutedTaskError

ACCOUNT = ACCOUNT_ID  # the local account (lakehouse.local.project)


def fn_arn(name: str) -> str:
    return f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"


def asl(start: str, states: dict[str, Any]) -> str:
    return json.dumps({"StartAt": start, "States": states})


class FlakyError(Exception):
    pass


class BadFileError(Exception):
    pass


class Calls:
    """Counts calls and records arguments."""

    def __init__(self) -> None:
        self.args: list[Any] = []

    @property
    def count(self) -> int:
        return len(self.args)


def test_lambda_tasks_run_python_handlers() -> None:
    definition = asl(
        "Plain",
        {
            "Plain": {
                "Type": "Task",
                "Resource": fn_arn("double"),
                "ResultPath": "$.doubled",
                "Next": "Invoke",
            },
            "Invoke": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": fn_arn("describe"), "Payload": {"n.$": "$.doubled.n"}},
                "ResultSelector": {"text.$": "$.Payload.text"},
                "ResultPath": "$.described",
                "End": True,
            },
        },
    )
    contexts: list[Any] = []

    def describe(event: dict[str, Any], context: Any) -> dict[str, Any]:
        contexts.append(context)
        return {"text": f"n is {event['n']}"}

    handlers = {"double": lambda event, _ctx: {"n": event["n"] * 2}, fn_arn("describe"): describe}
    with LocalStateMachine(definition, lambda_handlers=handlers) as sm:
        result = sm.run({"n": 21})

    assert result.status == "SUCCEEDED", result
    assert result.output == {"n": 21, "doubled": {"n": 42}, "described": {"text": "n is 42"}}
    assert result.visited_names == ["Plain", "Invoke"]
    assert contexts[0].function_name == "describe"
    assert contexts[0].get_remaining_time_in_millis() > 0
    assert all(v.exited is not None and v.exited >= v.entered for v in result.states_visited)
    types = [e["type"] for e in result.history]
    assert types[0] == "ExecutionStarted"
    assert types[-1] == "ExecutionSucceeded"
    assert "LambdaFunctionSucceeded" in types


def test_retry_on_exception_class_name_succeeds_on_second_attempt() -> None:
    definition = asl(
        "Commit",
        {
            "Commit": {
                "Type": "Task",
                "Resource": fn_arn("commit"),
                "Retry": [{"ErrorEquals": ["FlakyError"], "IntervalSeconds": 30, "MaxAttempts": 3}],
                "End": True,
            },
        },
    )
    calls = Calls()

    def commit(event: dict[str, Any], _ctx: Any) -> dict[str, Any]:
        calls.args.append(event)
        if calls.count == 1:
            raise FlakyError("lost the race")
        return {"attempt": calls.count}

    started = time.monotonic()
    with LocalStateMachine(definition, lambda_handlers={"commit": commit}, time_scale=0.0) as sm:
        result = sm.run({})
    assert time.monotonic() - started < 10  # a 30 s interval, scaled to nothing

    assert result.status == "SUCCEEDED", result
    assert result.output == {"attempt": 2}
    assert calls.count == 2
    failed = [e for e in result.history if e["type"] == "LambdaFunctionFailed"]
    assert failed[0]["lambdaFunctionFailedEventDetails"]["error"] == "FlakyError"


def test_catch_routes_to_failure_path_with_error_class_name() -> None:
    definition = asl(
        "Commit",
        {
            "Commit": {
                "Type": "Task",
                "Resource": fn_arn("commit"),
                "Retry": [{"ErrorEquals": ["FlakyError"], "MaxAttempts": 2}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Quarantine"}],
                "Next": "Done",
            },
            "Quarantine": {
                "Type": "Task",
                "Resource": fn_arn("quarantine"),
                "ResultPath": "$.quarantined",
                "Next": "Failed",
            },
            "Failed": {"Type": "Fail", "Error": "IngestFailed", "Cause": "see quarantine"},
            "Done": {"Type": "Succeed"},
        },
    )
    quarantined: list[dict[str, Any]] = []
    calls = Calls()

    def commit(event: dict[str, Any], _ctx: Any) -> None:
        calls.args.append(event)
        raise BadFileError("row 3, column amount: expected a number")

    def quarantine(event: dict[str, Any], _ctx: Any) -> dict[str, bool]:
        quarantined.append(event)
        return {"ok": True}

    with LocalStateMachine(definition, lambda_handlers={"commit": commit, "quarantine": quarantine}) as sm:
        result = sm.run({"key": "a.csv"})

    assert result.status == "FAILED"
    assert (result.error, result.cause) == ("IngestFailed", "see quarantine")
    assert result.visited_names == ["Commit", "Quarantine", "Failed"]
    assert calls.count == 1  # BadFileError is not retried
    error = quarantined[0]["error"]
    assert error["Error"] == "BadFileError"
    assert json.loads(error["Cause"])["errorMessage"] == "row 3, column amount: expected a number"
    assert quarantined[0]["key"] == "a.csv"


def test_choice_picks_the_branch() -> None:
    definition = asl(
        "Route",
        {
            "Route": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.size", "NumericGreaterThan": 100, "Next": "Big"}],
                "Default": "Small",
            },
            "Big": {"Type": "Task", "Resource": fn_arn("big"), "End": True},
            "Small": {"Type": "Task", "Resource": fn_arn("small"), "End": True},
        },
    )
    handlers = {"big": lambda e, c: {"route": "glue"}, "small": lambda e, c: {"route": "lambda"}}
    with LocalStateMachine(definition, lambda_handlers=handlers) as sm:
        big, small = sm.run({"size": 1000}), sm.run({"size": 1})
    assert (big.output, big.visited_names) == ({"route": "glue"}, ["Route", "Big"])
    assert (small.output, small.visited_names) == ({"route": "lambda"}, ["Route", "Small"])


def test_glue_sync_routed_to_service_handler_with_retry_on_glue_error() -> None:
    definition = asl(
        "Transform",
        {
            "Transform": {
                "Type": "Task",
                "Resource": "arn:aws:states:::glue:startJobRun.sync",
                "Parameters": {
                    "JobName": "lakehouse-ingest",
                    "Arguments": {"--run_input.$": "States.JsonToString($)"},
                },
                "ResultSelector": {"JobRunId.$": "$.Id", "JobRunState.$": "$.JobRunState"},
                "ResultPath": "$.glue",
                "Retry": [
                    {"ErrorEquals": ["Glue.AWSGlueException"], "IntervalSeconds": 10, "MaxAttempts": 2}
                ],
                "End": True,
            },
        },
    )
    calls = Calls()

    def glue(action: str, params: dict[str, Any]) -> dict[str, Any]:
        calls.args.append((action, params))
        if calls.count == 1:
            raise TaskFailed("Glue.AWSGlueException", "concurrent runs exceeded")
        return {"Id": "jr_1", "JobName": params["JobName"], "JobRunState": "SUCCEEDED"}

    with LocalStateMachine(
        definition, service_handlers={"glue:startJobRun.sync": glue}, time_scale=0.0
    ) as sm:
        result = sm.run({"dataset": "orders"})

    assert result.status == "SUCCEEDED", result
    assert result.output == {"dataset": "orders", "glue": {"JobRunId": "jr_1", "JobRunState": "SUCCEEDED"}}
    assert calls.count == 2
    action, params = calls.args[1]
    assert action == "glue:startJobRun.sync"
    assert params["JobName"] == "lakehouse-ingest"
    assert json.loads(params["Arguments"]["--run_input"]) == {"dataset": "orders"}
    failed = [e["taskFailedEventDetails"] for e in result.history if e["type"] == "TaskFailed"]
    assert failed[0]["error"] == "Glue.AWSGlueException"


def test_glue_sync_passed_through_to_moto_does_not_crash() -> None:
    import boto3

    definition = asl(
        "Transform",
        {
            "Transform": {
                "Type": "Task",
                "Resource": "arn:aws:states:::glue:startJobRun.sync",
                "Parameters": {"JobName": "job"},
                "ResultSelector": {"JobRunState.$": "$.JobRunState"},
                "End": True,
            },
        },
    )
    with LocalStateMachine(definition, moto_services={"glue"}, time_scale=0.0) as sm:
        glue = boto3.client("glue", region_name="us-east-1")
        glue.create_job(Name="job", Role="role", Command={"Name": "glueetl", "ScriptLocation": "s3://a/b.py"})
        result = sm.run({}, timeout=30)
    assert result.status == "SUCCEEDED", result
    assert result.output == {"JobRunState": "SUCCEEDED"}


def test_athena_sync_then_get_query_results() -> None:
    definition = asl(
        "RunChecks",
        {
            "RunChecks": {
                "Type": "Task",
                "Resource": "arn:aws:states:::athena:startQueryExecution.sync",
                "Parameters": {"QueryString.$": "$.sql", "WorkGroup": "primary"},
                "ResultSelector": {"query_execution_id.$": "$.QueryExecution.QueryExecutionId"},
                "ResultPath": "$.athena",
                "Next": "GetCheckResults",
            },
            "GetCheckResults": {
                "Type": "Task",
                "Resource": "arn:aws:states:::athena:getQueryResults",
                "Parameters": {"QueryExecutionId.$": "$.athena.query_execution_id"},
                "ResultSelector": {"rows.$": "$.ResultSet.Rows"},
                "ResultPath": "$.check_rows",
                "End": True,
            },
        },
    )
    seen: list[tuple[str, dict[str, Any]]] = []

    def athena(action: str, params: dict[str, Any]) -> dict[str, Any]:
        seen.append((action, params))
        if action == "athena:startQueryExecution.sync":
            return {"QueryExecution": {"QueryExecutionId": "q-1", "Status": {"State": "SUCCEEDED"}}}
        assert params == {"QueryExecutionId": "q-1"}
        return {
            "ResultSet": {
                "Rows": [{"Data": [{"VarCharValue": "row_count"}]}, {"Data": [{"VarCharValue": "7"}]}]
            }
        }

    handlers = {"athena:startQueryExecution.sync": athena, "athena:getQueryResults": athena}
    with LocalStateMachine(definition, service_handlers=handlers) as sm:
        result = sm.run({"sql": "SELECT count(*) AS row_count FROM t"})

    assert result.status == "SUCCEEDED", result
    assert result.output["athena"] == {"query_execution_id": "q-1"}
    assert result.output["check_rows"]["rows"][1] == {"Data": [{"VarCharValue": "7"}]}
    assert [a for a, _ in seen] == ["athena:startQueryExecution.sync", "athena:getQueryResults"]
    assert seen[0][1]["QueryString"] == "SELECT count(*) AS row_count FROM t"
    assert result.visited_names == ["RunChecks", "GetCheckResults"]


def test_emr_serverless_sync_routed_and_failure_caught() -> None:
    definition = asl(
        "RefreshDerived",
        {
            "RefreshDerived": {
                "Type": "Task",
                "Resource": "arn:aws:states:::emr-serverless:startJobRun.sync",
                "Parameters": {
                    "ApplicationId": "app-1",
                    "JobDriver": {"SparkSubmit": {"EntryPoint.$": "$.entry"}},
                },
                "ResultSelector": {"state.$": "$.JobRun.State"},
                "ResultPath": "$.derived",
                "Catch": [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "Broken"}],
                "End": True,
            },
            "Broken": {"Type": "Pass", "End": True},
        },
    )

    def emr(action: str, params: dict[str, Any]) -> dict[str, Any]:
        if params["JobDriver"]["SparkSubmit"]["EntryPoint"].endswith("bad.py"):
            raise TaskFailed("States.TaskFailed", "job run FAILED")
        return {"JobRun": {"State": "SUCCESS", "ApplicationId": params["ApplicationId"]}}

    with LocalStateMachine(definition, service_handlers={"emr-serverless:startJobRun.sync": emr}) as sm:
        ok = sm.run({"entry": "s3://a/derive.py"})
        bad = sm.run({"entry": "s3://a/bad.py"})

    assert ok.status == "SUCCEEDED", ok
    assert ok.output["derived"] == {"state": "SUCCESS"}
    assert ok.visited_names == ["RefreshDerived"]
    assert bad.status == "SUCCEEDED", bad
    assert bad.visited_names == ["RefreshDerived", "Broken"]
    assert bad.output["error"] == {"Error": "States.TaskFailed", "Cause": "job run FAILED"}


def test_sns_publish_and_eventbridge_put_events() -> None:
    definition = asl(
        "Alert",
        {
            "Alert": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {"TopicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts", "Message.$": "$.msg"},
                "ResultPath": "$.sns",
                "Next": "Publish",
            },
            "Publish": {
                "Type": "Task",
                "Resource": "arn:aws:states:::events:putEvents",
                "Parameters": {
                    "Entries": [
                        {
                            "Source": "lakehouse",
                            "DetailType": "DatasetUpdated",
                            "Detail": {"dataset.$": "$.dataset"},
                        }
                    ]
                },
                "ResultPath": "$.events",
                "End": True,
            },
        },
    )
    outbox: list[tuple[str, dict[str, Any]]] = []

    def record(action: str, params: dict[str, Any]) -> dict[str, Any]:
        outbox.append((action, params))
        return {"MessageId": "m-1"} if action == "sns:publish" else {"FailedEntryCount": 0, "Entries": [{}]}

    handlers = {"sns:publish": record, "events:putEvents": record}
    with LocalStateMachine(definition, service_handlers=handlers) as sm:
        result = sm.run({"msg": "orders failed", "dataset": "orders"})

    assert result.status == "SUCCEEDED", result
    assert outbox == [
        (
            "sns:publish",
            {"TopicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts", "Message": "orders failed"},
        ),
        (
            "events:putEvents",
            {
                "Entries": [
                    {"Source": "lakehouse", "DetailType": "DatasetUpdated", "Detail": {"dataset": "orders"}},
                ]
            },
        ),
    ]
    assert result.output["sns"] == {"MessageId": "m-1"}
    assert result.output["events"]["FailedEntryCount"] == 0


MOCK_DEFINITION = asl(
    "Inspect",
    {
        "Inspect": {
            "Type": "Task",
            "Resource": fn_arn("inspect"),
            "ResultPath": "$.inspection",
            "Next": "Transform",
        },
        "Transform": {
            "Type": "Task",
            "Resource": "arn:aws:states:::glue:startJobRun.sync",
            "Parameters": {"JobName": "job"},
            "ResultSelector": {"state.$": "$.JobRunState"},
            "ResultPath": "$.glue",
            "Retry": [
                {
                    "ErrorEquals": ["Glue.ConcurrentRunsExceededException"],
                    "IntervalSeconds": 60,
                    "MaxAttempts": 2,
                }
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Rollback"}],
            "End": True,
        },
        "Rollback": {"Type": "Pass", "End": True},
    },
)

MOCK_CONFIG = {
    "StateMachines": {
        "ingest": {
            "TestCases": {
                "HappyPath": {"Inspect": "InspectSmall", "Transform": "GlueBusyThenOk"},
                "GlueDown": {"Inspect": "InspectSmall", "Transform": "GlueAlwaysFails"},
            },
        },
    },
    "MockedResponses": {
        "InspectSmall": {"0": {"Return": {"StatusCode": 200, "Payload": {"route": "glue"}}}},
        "GlueBusyThenOk": {
            "0": {"Throw": {"Error": "Glue.ConcurrentRunsExceededException", "Cause": "busy"}},
            "1": {"Return": {"JobRunState": "SUCCEEDED"}},
        },
        "GlueAlwaysFails": {"0-2": {"Throw": {"Error": "Glue.EntityNotFoundException", "Cause": "no job"}}},
    },
}


def test_mock_config_test_cases_override_handlers() -> None:
    def must_not_run(*_args: Any) -> Any:
        raise AssertionError("a mocked state called its real handler")

    started = time.monotonic()
    with LocalStateMachine(
        MOCK_DEFINITION,
        lambda_handlers={"inspect": must_not_run},
        service_handlers={"glue:startJobRun.sync": must_not_run},
        mock_config=MOCK_CONFIG,
        time_scale=0.0,
    ) as sm:
        happy = sm.run({"key": "k"}, test_case="HappyPath")
        down = sm.run({"key": "k"}, test_case="GlueDown")
    assert time.monotonic() - started < 10

    assert happy.status == "SUCCEEDED", happy
    assert happy.output == {"key": "k", "inspection": {"route": "glue"}, "glue": {"state": "SUCCEEDED"}}
    assert happy.visited_names == ["Inspect", "Transform"]
    assert [e["taskFailedEventDetails"]["error"] for e in happy.history if e["type"] == "TaskFailed"] == [
        "Glue.ConcurrentRunsExceededException",
    ]
    assert down.status == "SUCCEEDED", down
    assert down.visited_names == ["Inspect", "Transform", "Rollback"]
    assert down.output["error"] == {"Error": "Glue.EntityNotFoundException", "Cause": "no job"}


def test_mock_config_test_case_by_arn_through_the_client() -> None:
    import boto3

    with LocalStateMachine(MOCK_DEFINITION, mock_config=MOCK_CONFIG, time_scale=0.0) as sm:
        client = boto3.client("stepfunctions", region_name="us-east-1")
        arn = client.start_execution(stateMachineArn=f"{sm.state_machine_arn}#HappyPath", input="{}")[
            "executionArn"
        ]
        result = sm.wait(arn)
    assert result.status == "SUCCEEDED", result
    assert result.output["glue"] == {"state": "SUCCEEDED"}


def test_map_runs_a_lambda_per_item() -> None:
    definition = asl(
        "EachFile",
        {
            "EachFile": {
                "Type": "Map",
                "ItemsPath": "$.files",
                "MaxConcurrency": 2,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Size",
                    "States": {"Size": {"Type": "Task", "Resource": fn_arn("size"), "End": True}},
                },
                "ResultPath": "$.sizes",
                "End": True,
            },
        },
    )
    with LocalStateMachine(definition, lambda_handlers={"size": lambda e, c: len(e["name"])}) as sm:
        result = sm.run({"files": [{"name": "a"}, {"name": "bbb"}, {"name": "cc"}]})
    assert result.status == "SUCCEEDED", result
    assert result.output["sizes"] == [1, 3, 2]
    assert result.visited_names.count("Size") == 3
    assert result.visited_names[0] == "EachFile"


def test_definition_substitutions() -> None:
    definition = asl(
        "Inspect",
        {
            "Inspect": {"Type": "Task", "Resource": "${InspectFunctionArn}", "Next": "Alert"},
            "Alert": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {"TopicArn": "${AlertTopicArn}", "Message": "hi"},
                "ResultPath": None,
                "End": True,
            },
        },
    )
    topics: list[str] = []

    def publish(_action: str, params: dict[str, Any]) -> dict[str, str]:
        topics.append(params["TopicArn"])
        return {}

    with LocalStateMachine(
        definition,
        substitutions={"InspectFunctionArn": fn_arn("inspect_object"), "AlertTopicArn": "arn:aws:sns:::t"},
        lambda_handlers={"inspect_object": lambda e, c: {"inspected": True}},
        service_handlers={"sns:publish": publish},
    ) as sm:
        result = sm.run({})
    assert result.status == "SUCCEEDED", result
    assert result.output == {"inspected": True}
    assert topics == ["arn:aws:sns:::t"]


def test_wait_state_is_scaled() -> None:
    definition = asl(
        "Pause", {"Pause": {"Type": "Wait", "Seconds": 120, "Next": "Done"}, "Done": {"Type": "Succeed"}}
    )
    started = time.monotonic()
    with LocalStateMachine(definition, time_scale=0.0) as sm:
        result = sm.run({"a": 1}, timeout=30)
    assert result.status == "SUCCEEDED"
    assert result.visited_names == ["Pause", "Done"]
    assert time.monotonic() - started < 10


def test_unrouted_task_is_a_clear_error() -> None:
    definition = asl(
        "Alert",
        {
            "Alert": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {"TopicArn": "t", "Message": "m"},
                "Next": "Inspect",
            },
            "Inspect": {"Type": "Task", "Resource": fn_arn("inspect"), "End": True},
        },
    )
    with LocalStateMachine(definition) as sm, pytest.raises(UnroutedTaskError) as raised:
        sm.start({})
    assert "'Alert'" in str(raised.value)
    assert "sns:publish" in str(raised.value)
    assert "'Inspect'" in str(raised.value)


def test_patches_are_undone_on_exit() -> None:
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_unsupported,
    )
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    before = (
        LambdaSimpleBackend.invoke,
        StepFunctionsParserBackend.start_execution,
        set(state_task_service_unsupported._SUPPORTED_INTEGRATION_PATTERNS),
    )
    with LocalStateMachine(asl("P", {"P": {"Type": "Pass", "End": True}})) as sm:
        assert sm.run({"x": 1}).output == {"x": 1}
    after = (
        LambdaSimpleBackend.invoke,
        StepFunctionsParserBackend.start_execution,
        set(state_task_service_unsupported._SUPPORTED_INTEGRATION_PATTERNS),
    )
    assert before == after


@pytest.mark.parametrize("kind", ["Parallel", "Map"])
def test_states_error_inside_parallel_and_map_keeps_its_name(kind: str) -> None:
    inner = {
        "StartAt": "Alert",
        "States": {
            "Alert": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {"Message": "x"},
                "End": True,
            }
        },
    }
    outer: dict[str, Any] = {"Type": kind, "End": True}
    outer.update({"Branches": [inner]} if kind == "Parallel" else {"ItemsPath": "$.items", "Iterator": inner})
    outer["Catch"] = [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "Caught"}]
    definition = asl("Outer", {"Outer": outer, "Caught": {"Type": "Pass", "End": True}})

    def fail(_action: str, _params: dict[str, Any]) -> Any:
        raise TaskFailed("States.TaskFailed", "topic gone")

    with LocalStateMachine(definition, service_handlers={"sns:publish": fail}) as sm:
        result = sm.run({"items": [1]})
    assert result.status == "SUCCEEDED", result
    assert result.visited_names[-1] == "Caught"
    assert result.output["error"]["Error"] == "States.TaskFailed"


def test_a_definition_is_parsed_once_and_each_execution_gets_its_own_retry_state() -> None:
    # The ASL parse tree is kept per definition text (`sfn._cached_parse`); the evaluation components
    # (a Retry's attempt count among them) are built afresh for every execution from it.
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser

    definition = asl(
        "Flaky",
        {
            "Flaky": {
                "Type": "Task",
                "Resource": fn_arn("flaky"),
                "Retry": [{"ErrorEquals": ["FlakyError"], "IntervalSeconds": 1, "MaxAttempts": 2}],
                "End": True,
            }
        },
    )
    calls = Calls()

    def flaky(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        calls.args.append(event)
        if len(calls.args) % 3:  # fails twice, then succeeds: exactly the two retries each run allows
            raise FlakyError("not yet")
        return {"ok": True}

    original = ASLParser.state_machine
    parses = Calls()

    def counted(self: ASLParser) -> Any:
        parses.args.append(None)
        return original(self)

    statuses = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ASLParser, "state_machine", counted)
        for _ in range(2):  # two state machines of the same text, one execution each
            with LocalStateMachine(definition, lambda_handlers={"flaky": flaky}, time_scale=0.0) as sm:
                statuses.append(sm.run({}).status)
    assert statuses == ["SUCCEEDED", "SUCCEEDED"]
    assert calls.count == 6
    assert parses.count <= 1  # once, or never when an earlier test parsed the same text
