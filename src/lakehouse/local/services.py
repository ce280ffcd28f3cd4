"""The local stand-ins of the services the state machines call, one small class each.

| Task in the ASL                      | Locally                                                           |
| ------------------------------------ | ----------------------------------------------------------------- |
| Lambda (`${...FunctionArn}`)         | `LocalLambdas`: `functions/<fn>/app.py`, in a worker process      |
| `glue:startJobRun.sync`              | `LocalGlue`: `jobs/glue/ingest_large_object.py` on local Spark     |
| `emr-serverless:startJobRun.sync`    | `LocalEmr`: `jobs/emr/<entry>` (DuckDB + deltalake if no Spark)    |
| `athena:startQueryExecution.sync`    | `AthenaService.start`: DuckDB over the local Delta tables          |
| `athena:getQueryResults`             | `AthenaService.results`: the Athena-shaped ResultSet of that query |
| `sns:publish` / `events:putEvents`   | `Outbox`: `<home>/outbox/*.jsonl`                                  |

Each task runs as its own IAM role (local IAM enforcement, docs/IAM.md): a Lambda as its function's
role, a Glue or EMR job as its job role; Athena's DuckDB reads freely once the caller was checked.
"""

from __future__ import annotations

import contextlib
import json
import sys
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lakehouse.local import enforce
from lakehouse.local.athena import LocalAthena, QueryError
from lakehouse.local.environment import LocalEnvironment
from lakehouse.local.jobs import LocalJobs, cancellable_spark_jobs
from lakehouse.local.project import ACCOUNT_ID, REGION, environment, handler_of
from lakehouse.local.sfn import LocalLambdaContext, TaskFailed
from lakehouse.local.worker import WorkerPool
from lakehouse.ports import Notifier

LambdaHandler = Callable[[dict[str, Any], Any], Any]
ServiceHandler = Callable[[str, dict[str, Any]], Any]


def lambda_context(logical_id: str, timeout_s: float = 900.0) -> LocalLambdaContext:
    return LocalLambdaContext(
        function_name=logical_id,
        invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{logical_id}",
        timeout_s=timeout_s,
    )


class LocalLambdas:
    """Every function of the template as a handler; in a worker process unless `workers` is None."""

    def __init__(self, env: LocalEnvironment, workers: WorkerPool | None) -> None:
        self.env = env
        self.workers = workers

    def handlers(self) -> dict[str, LambdaHandler]:
        return {logical_id: self.handler(logical_id) for logical_id in self.env.project.function_ids()}

    def handler(self, logical_id: str) -> LambdaHandler:
        spec = self.env.project.function(logical_id)
        env = self.env.function_env(logical_id)
        workers = self.workers
        if workers is not None:
            # The worker gets the whole environment it runs with: the function's, plus its role.
            worker_env = {**env, **enforce.role_env(enforce.function_role(logical_id), logical_id)}

            def call_in_worker(event: dict[str, Any], context: Any) -> Any:
                return workers.call(
                    "lakehouse.local.worker:invoke_function", (spec, event, context), worker_env
                )

            return call_in_worker

        def call(event: dict[str, Any], context: Any) -> Any:
            # The handler acts as its function's role (local IAM enforcement, docs/IAM.md).
            role = enforce.as_role(enforce.function_role(logical_id), logical_id)
            with environment(env), role, contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
                # Powertools warns when a handler published no metric; metrics are off locally anyway.
                warnings.simplefilter("ignore", UserWarning)
                return handler_of(spec)(event, context)

        return call


class LocalGlue:
    """`glue:startJobRun.sync`: the Glue job on the shared local SparkSession, as the Glue job role."""

    def __init__(self, jobs: LocalJobs, env: dict[str, str]) -> None:
        self.jobs = jobs
        self.env = env

    def __call__(self, _key: str, params: dict[str, Any]) -> Any:
        role = enforce.as_role(enforce.job_role("glue", params), "GlueJobRunnerSession")
        with environment(self.env), cancellable_spark_jobs(self.jobs.use_spark), role:
            return self.jobs.glue_start_job_run(params)


class LocalEmr:
    """`emr-serverless:startJobRun.sync`: the EMR job on local Spark, or DuckDB + delta-rs in a worker."""

    def __init__(
        self, jobs: LocalJobs, env: dict[str, str], project_root: Path, workers: WorkerPool | None
    ) -> None:
        self.jobs = jobs
        self.env = env
        self.project_root = project_root
        self.workers = workers

    def __call__(self, _key: str, params: dict[str, Any]) -> Any:
        role, session = enforce.job_role("emr", params), "EmrJobRunSession"
        if self.workers is not None and not self.jobs.use_spark:
            # DuckDB + delta-rs: no JVM needed, so it runs (and is killed on timeout) in a worker.
            args = (str(self.project_root), params)
            worker_env = {**self.env, **enforce.role_env(role, session)}
            return self.workers.call("lakehouse.local.jobs:emr_job_without_spark", args, worker_env)
        with (
            environment(self.env),
            cancellable_spark_jobs(self.jobs.use_spark),
            enforce.as_role(role, session),
        ):
            return self.jobs.emr_start_job_run(params)


class AthenaService:
    """`athena:startQueryExecution.sync` and `athena:getQueryResults` on DuckDB."""

    def __init__(self, athena: LocalAthena) -> None:
        self.athena = athena

    def start(self, _key: str, params: dict[str, Any]) -> Any:
        try:
            # The caller's permissions were checked (enforce.integration_checks); DuckDB reads freely.
            with enforce.as_role(None):
                return self.athena.start_query_execution(params)
        except QueryError as exc:
            raise TaskFailed(
                "States.TaskFailed",
                json.dumps({"State": "FAILED", "StateChangeReason": str(exc), "errorMessage": str(exc)}),
            ) from exc

    def results(self, _key: str, params: dict[str, Any]) -> Any:
        with enforce.as_role(None):
            return self.athena.get_query_results(params)


class Outbox:
    """`sns:publish` and `events:putEvents`: lines in `<home>/outbox/alerts.jsonl` and `events.jsonl`."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def sns_publish(self, _key: str, params: dict[str, Any]) -> Any:
        message: Any = params.get("Message", "")
        with contextlib.suppress(TypeError, ValueError):
            message = json.loads(message)
        body = message if isinstance(message, dict) else {"text": message}
        self.notifier.alert(str(params.get("Subject") or ""), {**body, "_topic": params.get("TopicArn")})
        return {"MessageId": str(uuid.uuid4())}

    def put_events(self, _key: str, params: dict[str, Any]) -> Any:
        entries = []
        for entry in params.get("Entries") or []:
            detail: Any = entry.get("Detail", {})
            if isinstance(detail, str):
                with contextlib.suppress(ValueError):
                    detail = json.loads(detail)
            self.notifier.publish(
                str(entry.get("DetailType") or ""),
                detail if isinstance(detail, dict) else {"detail": detail},
            )
            entries.append({"EventId": str(uuid.uuid4())})
        return {"Entries": entries, "FailedEntryCount": 0}


def service_handlers(
    glue: LocalGlue, emr: LocalEmr, athena: AthenaService, outbox: Outbox
) -> dict[str, ServiceHandler]:
    """The service integrations of the state machines, keyed as `LocalStateMachine` routes them."""
    return {
        "glue:startJobRun.sync": glue,
        "emr-serverless:startJobRun.sync": emr,
        "athena:startQueryExecution.sync": athena.start,
        "athena:getQueryResults": athena.results,
        "sns:publish": outbox.sns_publish,
        "events:putEvents": outbox.put_events,
    }
