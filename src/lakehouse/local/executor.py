"""The local executor: the real `statemachine/*.asl.json`, every Task routed to a local stand-in
(docs/ARCHITECTURE.md, "The local runtime").

| Task in the ASL                      | Locally                                                          |
| ------------------------------------ | ---------------------------------------------------------------- |
| Lambda (`${...FunctionArn}`)         | `functions/<fn>/app.py` handler, in a worker process (local/worker) |
| `glue:startJobRun.sync`              | `jobs/glue/ingest_large_object.py` on the shared local SparkSession |
| `emr-serverless:startJobRun.sync`    | `jobs/emr/<entry>` on local Spark (DuckDB + deltalake if no Spark) |
| `athena:startQueryExecution.sync`    | DuckDB over the local Delta tables (`athena_to_duckdb`)          |
| `athena:getQueryResults`             | the Athena-shaped ResultSet of that query                        |
| `sns:publish` / `events:putEvents`   | the local outbox (`<home>/outbox/*.jsonl`)                       |

Control flow (Retry, Catch, Choice, Wait) is moto's ASL interpreter via `LocalStateMachine`; this module
only routes tasks and records what happened (run ledger, per-state timings, HTML report). Runs are
started through a persistent queue (`LocalStarter`), so a run survives a restart of the process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse import tables, workdirs
from lakehouse.adapters.local import file_lock
from lakehouse.local import enforce
from lakehouse.local.athena import LocalAthena, QueryError
from lakehouse.local.faults import CrashInjector
from lakehouse.local.jobs import LocalJobs, SparkMissing, cancellable_spark_jobs, spark_status
from lakehouse.local.project import ACCOUNT_ID, REGION, Project, environment, handler_of
from lakehouse.local.sfn import ExecutionResult, LocalLambdaContext, LocalStateMachine, TaskFailed
from lakehouse.local.starter import LocalQueue, QueuedRun
from lakehouse.local.worker import shared_pool
from lakehouse.ports import ObjectInfo
from lakehouse.settings import Settings
from lakehouse.stages.runtime import Runtime, get_runtime
from lakehouse.state import FAILED_STATUSES, RunStatus
from lakehouse.state import RunRecord as LedgerRecord

INGEST_MACHINE = "IngestStateMachine"
MAINTENANCE_MACHINE = "MaintenanceStateMachine"
# --no-spark: no object is ever "large", so Inspect never picks the Glue route.
NO_SPARK_ROUTE_MAX_BYTES = 1 << 62


@dataclass
class LocalOptions:
    """How the local runtime is set up (the CLI's global options end up here)."""

    home: Path = Path(".lakehouse")
    datasets_dir: Path = Path("datasets")
    project_root: Path | None = None
    # None: use Spark if it is available; False: --no-spark; True: Spark is required.
    spark: bool | None = None
    lambda_route_max_bytes: int | None = None
    # Retry/Wait intervals are multiplied by this: a 10 s lease retry becomes 0.1 s.
    time_scale: float = 0.01
    # Template parameter overrides (SAM env-vars file "Parameters").
    parameters: dict[str, str] = field(default_factory=dict)
    log_level: str = "WARNING"
    reports: bool = True
    execution_timeout_s: float = 3600.0
    # Lambda handlers and Spark-free jobs run in worker processes that a timed-out state kills
    # (local/worker.py); False runs them in this process (a debugger can step into them).
    isolate_tasks: bool = True


@dataclass
class RunRecord:
    """What one local execution did (also stored in the run ledger)."""

    run_id: str
    status: RunStatus  # SUCCEEDED | DUPLICATE | QUARANTINED | FAILED
    data: dict[str, Any]

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="milliseconds")


class LocalPipeline:
    """Runs IngestStateMachine / MaintenanceStateMachine executions in this process."""

    def __init__(self, options: LocalOptions) -> None:
        self.options = options
        self.home = Path(options.home).resolve()
        self.datasets_dir = Path(options.datasets_dir).resolve()
        self.project = Project.load(options.project_root)
        enforce.use_project(self.project.root)  # the roles of this project's template (docs/IAM.md)
        self.spark_detail = ""
        if options.spark is False:
            self.use_spark = False
            self.spark_detail = "disabled (--no-spark)"
        else:
            ok, detail = spark_status()
            self.spark_detail = detail
            if not ok and options.spark:
                raise SparkMissing(f"local Spark is unavailable: {detail}")
            self.use_spark = ok
        self.home.mkdir(parents=True, exist_ok=True)
        # What a crashed run left: work folders of dead processes, half-written temp objects.
        workdirs.sweep()
        workdirs.sweep_tmp_files(self.home / "buckets", self.home / "state")
        self.queue = LocalQueue(self.home)
        # The object versions this process landed and has not submitted yet (see `land_file`).
        self._landed: dict[tuple[str, str], ObjectInfo] = {}
        with environment(self.base_env()):
            self.rt: Runtime = get_runtime()
        self.athena = LocalAthena(self.rt)
        self.jobs = LocalJobs(self.rt, self.project.root, use_spark=self.use_spark)
        self.workers = shared_pool() if options.isolate_tasks else None

    def prewarm(self) -> None:
        """Start a task worker in the background (a run is coming); commands that only read never do."""
        if self.workers is not None:
            self.workers.prewarm()

    # -- environment -------------------------------------------------------------------------------

    @property
    def route_max_bytes(self) -> int | None:
        if self.options.lambda_route_max_bytes is not None:
            return self.options.lambda_route_max_bytes
        return None if self.use_spark else NO_SPARK_ROUTE_MAX_BYTES

    def overrides(self) -> dict[str, str]:
        """What makes a handler local, on top of the environment the template gives it."""
        env = {
            "LAKEHOUSE_BACKEND": "local",
            "LAKEHOUSE_HOME": str(self.home),
            "DATASETS_DIR": str(self.datasets_dir),
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Lakehouse"),
            # The EMF metrics blob and INFO logs of every handler would drown the CLI's own output.
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": self.options.log_level,
            "LOG_LEVEL": self.options.log_level,
        }
        if self.route_max_bytes is not None:
            env["LAMBDA_ROUTE_MAX_BYTES"] = str(self.route_max_bytes)
        return env

    def parameters(self) -> dict[str, str]:
        return {**self.project.parameter_defaults(), **self.options.parameters}

    def function_env(self, logical_id: str) -> dict[str, str]:
        return {**self.project.function_environment(logical_id, self.parameters()), **self.overrides()}

    def base_env(self) -> dict[str, str]:
        """The environment every function shares (Globals), localised: what the executor itself uses."""
        return self.function_env("InspectObjectFunction")

    # -- routing -----------------------------------------------------------------------------------

    def substitutions(self, machine: str) -> dict[str, str]:
        """DefinitionSubstitutions of a state machine, from the template, resolved to local values."""
        out: dict[str, str] = {}
        for key, value in self.project.definition_substitution_keys(machine).items():
            out[key] = self.project.resolve(value, self.parameters())
        return out

    def lambda_handlers(self) -> dict[str, Callable[[dict[str, Any], Any], Any]]:
        handlers: dict[str, Callable[[dict[str, Any], Any], Any]] = {}
        for logical_id in self.project.function_ids():
            handlers[logical_id] = self._lambda(logical_id)
        return handlers

    def _lambda(self, logical_id: str) -> Callable[[dict[str, Any], Any], Any]:
        spec = self.project.function(logical_id)
        env = self.function_env(logical_id)

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

    def service_handlers(self) -> dict[str, Callable[[str, dict[str, Any]], Any]]:
        env = self.base_env()

        def glue(_key: str, params: dict[str, Any]) -> Any:
            role = enforce.as_role(enforce.job_role("glue", params), "GlueJobRunnerSession")
            with environment(env), cancellable_spark_jobs(self.use_spark), role:
                return self.jobs.glue_start_job_run(params)

        def emr(_key: str, params: dict[str, Any]) -> Any:
            role, session = enforce.job_role("emr", params), "EmrJobRunSession"
            if self.workers is not None and not self.use_spark:
                # DuckDB + delta-rs: no JVM needed, so it runs (and is killed on timeout) in a worker.
                args = (str(self.project.root), params)
                worker_env = {**env, **enforce.role_env(role, session)}
                return self.workers.call("lakehouse.local.jobs:emr_job_without_spark", args, worker_env)
            with environment(env), cancellable_spark_jobs(self.use_spark), enforce.as_role(role, session):
                return self.jobs.emr_start_job_run(params)

        def athena_start(_key: str, params: dict[str, Any]) -> Any:
            try:
                # The caller's permissions were checked (enforce.integration_checks); DuckDB reads freely.
                with enforce.as_role(None):
                    return self.athena.start_query_execution(params)
            except QueryError as exc:
                raise TaskFailed(
                    "States.TaskFailed",
                    json.dumps({"State": "FAILED", "StateChangeReason": str(exc), "errorMessage": str(exc)}),
                ) from exc

        def athena_results(_key: str, params: dict[str, Any]) -> Any:
            with enforce.as_role(None):
                return self.athena.get_query_results(params)

        def sns_publish(_key: str, params: dict[str, Any]) -> Any:
            message: Any = params.get("Message", "")
            with contextlib.suppress(TypeError, ValueError):
                message = json.loads(message)
            body = message if isinstance(message, dict) else {"text": message}
            self.rt.adapters.notifier.alert(
                str(params.get("Subject") or ""), {**body, "_topic": params.get("TopicArn")}
            )
            return {"MessageId": str(uuid.uuid4())}

        def put_events(_key: str, params: dict[str, Any]) -> Any:
            entries = []
            for entry in params.get("Entries") or []:
                detail: Any = entry.get("Detail", {})
                if isinstance(detail, str):
                    with contextlib.suppress(ValueError):
                        detail = json.loads(detail)
                self.rt.adapters.notifier.publish(
                    str(entry.get("DetailType") or ""),
                    detail if isinstance(detail, dict) else {"detail": detail},
                )
                entries.append({"EventId": str(uuid.uuid4())})
            return {"Entries": entries, "FailedEntryCount": 0}

        return {
            "glue:startJobRun.sync": glue,
            "emr-serverless:startJobRun.sync": emr,
            "athena:startQueryExecution.sync": athena_start,
            "athena:getQueryResults": athena_results,
            "sns:publish": sns_publish,
            "events:putEvents": put_events,
        }

    @contextlib.contextmanager
    def state_machine(self, machine: str = INGEST_MACHINE) -> Iterator[LocalStateMachine]:
        # moto logs every Fail state and task failure at ERROR; the run record and report carry them.
        logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
        self.prewarm()
        definition = (
            self.project.ingest_definition()
            if machine == INGEST_MACHINE
            else self.project.maintenance_definition()
        )
        crash = CrashInjector.from_env()  # tests only: kill this process between two states
        sm = LocalStateMachine(
            definition,
            name=machine,
            substitutions=self.substitutions(machine),
            # Each task is checked against the machine's role, then runs as its own (docs/IAM.md).
            lambda_handlers=crash.wrap(
                {k: enforce.lambda_as(machine, k, h) for k, h in self.lambda_handlers().items()}
            ),
            service_handlers=crash.wrap(
                {k: enforce.service_as(machine, k, h) for k, h in self.service_handlers().items()}
            ),
            time_scale=self.options.time_scale,
        )
        with sm:
            yield sm

    # -- runs --------------------------------------------------------------------------------------

    def _exclusive(self) -> contextlib.AbstractContextManager[None]:
        """One executor per home at a time (watch + run in two terminals): the second waits its turn."""
        return file_lock(self.home / "state" / "executor.lock")

    def drain(
        self,
        *,
        on_start: Callable[[QueuedRun], None] | None = None,
        on_done: Callable[[RunRecord], None] | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Execute every queued run, oldest first; a run leaves the queue only once it is recorded."""
        records: list[RunRecord] = []
        with self._exclusive():
            pending = self.queue.pending()
            if not pending:
                return records
            with self.state_machine(INGEST_MACHINE) as sm:
                for queued in pending[:limit] if limit else pending:
                    if on_start:
                        on_start(queued)
                    record = self._execute(sm, queued.name, queued.payload)
                    self.queue.done(queued)
                    records.append(record)
                    if on_done:
                        on_done(record)
        return records

    def _execute(self, sm: LocalStateMachine, name: str, payload: Mapping[str, Any]) -> RunRecord:
        started = time.monotonic()
        with contextlib.redirect_stdout(sys.stderr):
            arn = sm.start(dict(payload), execution_name=name)
            result = sm.wait(arn, timeout=self.options.execution_timeout_s)
        return self.record(result, name, dict(payload), time.monotonic() - started)

    def record(
        self, result: ExecutionResult, name: str, payload: dict[str, Any], elapsed_s: float
    ) -> RunRecord:
        """Merge what the execution did into the run ledger (the stages have written their parts)."""
        state = final_state(result)
        visited = result.visited_names
        commit: dict[str, Any] = state["commit"] if isinstance(state.get("commit"), dict) else {}
        inspection: dict[str, Any] = state["inspection"] if isinstance(state.get("inspection"), dict) else {}
        status: RunStatus
        if result.succeeded:
            status = "DUPLICATE" if commit.get("status") == "duplicate" else "SUCCEEDED"
        else:
            status = "QUARANTINED" if "Quarantine" in visited else "FAILED"
        route = inspection.get("route") or ("glue" if "TransformWithGlue" in visited else None)
        if "CommitWithLambda" in visited:
            route = "lambda"
        dataset = str(payload.get("dataset", ""))
        version_now = None
        with contextlib.suppress(Exception):
            version_now = tables.table_version(self.rt.table_uri(dataset), self.rt.storage_options)
        error = state.get("error") if isinstance(state.get("error"), dict) else None
        ledger = self.rt.adapters.ledger
        existing = ledger.get(name) or {}
        states = [
            {
                "name": v.name,
                "entered": _iso(v.entered),
                "exited": _iso(v.exited),
                "duration_ms": None if v.duration_s is None else round(v.duration_s * 1000, 1),
            }
            for v in result.states_visited
        ]
        data: dict[str, Any] = {
            **existing,
            **{k: v for k, v in payload.items() if k not in existing},
            "run_id": name,
            "status": status,
            "execution_status": result.status,
            "execution_arn": result.execution_arn,
            "route": route,
            "path": visited,
            "states": states,
            "duration_ms": round(elapsed_s * 1000, 1),
            "inspection": {k: v for k, v in inspection.items() if k != "checks_query"}
            or existing.get("inspection"),
            "checks_query": inspection.get("checks_query"),
            "commit": commit or existing.get("commit"),
            "checks": state.get("checks") or existing.get("checks"),
            "rollback": state.get("rollback") or existing.get("rollback"),
            "quarantine": state.get("quarantine") or existing.get("quarantine"),
            "table_version": version_now,
            "version_before": inspection.get("version_before", commit.get("version_before")),
            "version_after": commit.get("version_after"),
            "error": _error_summary(error, result) if status in FAILED_STATUSES else None,
            "finished_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "updated_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        if self.options.reports:
            from lakehouse.local.report import write_reports

            definition = json.loads(self.project.ingest_definition())
            data["report"] = str(write_reports(self.home, data, definition, ledger.list(limit=1000)))
        ledger.put(name, LedgerRecord.model_validate(data).model_dump(mode="json"))
        return RunRecord(name, status, data)

    # -- arrivals ----------------------------------------------------------------------------------

    def dataset_for_file(self, path: Path, dataset: str | None = None) -> str:
        """The dataset a user's file belongs to: `--dataset`, else the contract its name starts with."""
        if dataset:
            self.rt.contract(dataset)  # a clear error for an unknown name
            return dataset
        names = sorted(self.rt.contracts.names(), key=len, reverse=True)
        stem = path.name.lower()
        for name in names:
            if stem.startswith(name.lower()):
                return name
        raise ValueError(
            f"{path.name}: cannot tell its dataset from the name; pass --dataset (one of {', '.join(names)})"
        )

    def land_file(self, path: Path, dataset: str | None = None) -> str:
        """Copy a file into the landing bucket at `<landing_prefix><file name>`; return the key.

        The landing bucket is versioned: the copy is a new object version (the same bytes as the key's
        current version are not). `submit(key)` then starts the run for exactly that version, even if
        another process lands a different file under the same name in between.
        """
        name = self.dataset_for_file(path, dataset)
        self.prewarm()
        key = self.rt.contract(name).landing_prefix + path.name
        bucket = self.rt.settings.landing_bucket
        info = self.rt.adapters.objects.put_file(bucket, key, path)
        if info is not None:
            self._landed[(bucket, key)] = info
        return key

    def submit(
        self, key: str, bucket: str | None = None, info: ObjectInfo | None = None
    ) -> dict[str, Any] | None:
        """What on_object_created does for one arrival: deterministic name, queued (once) run.

        `info` names the object version (as an S3 event does); by default the version this process
        landed last under `key`, else the key's current version.
        """
        from lakehouse.events import ObjectCreated
        from lakehouse.stages.start import default_starter, start_run

        self.prewarm()
        bucket = bucket or self.rt.settings.landing_bucket
        info = info or self._landed.pop((bucket, key), None) or self.rt.adapters.objects.head(bucket, key)
        obj = ObjectCreated(
            bucket=bucket,
            key=key,
            size=info.size,
            etag=info.etag,
            version_id=info.version_id,
            event_time=datetime.now(UTC).isoformat(timespec="milliseconds"),
        )
        role = enforce.as_role(enforce.function_role("OnObjectCreatedFunction"), "OnObjectCreatedFunction")
        with environment(self.base_env()), role, contextlib.redirect_stdout(sys.stderr):
            return start_run(self.rt, obj, default_starter(self.rt))

    # -- maintenance -------------------------------------------------------------------------------

    def run_maintenance(self, datasets: Sequence[str] | None = None) -> ExecutionResult:
        """MaintenanceStateMachine over `datasets` (all by default), through the same routing."""
        payload: dict[str, Any] = {"datasets": list(datasets)} if datasets else {}
        with (
            self._exclusive(),
            self.state_machine(MAINTENANCE_MACHINE) as sm,
            contextlib.redirect_stdout(sys.stderr),
        ):
            arn = sm.start(payload, execution_name=f"maintenance-{uuid.uuid4().hex[:12]}")
            return sm.wait(arn, timeout=self.options.execution_timeout_s)


def final_state(result: ExecutionResult) -> dict[str, Any]:
    """The state data as the execution left it: the output of the last state that exited."""
    if isinstance(result.output, dict):
        return result.output
    for event in reversed(result.history):
        details = event.get("stateExitedEventDetails")
        if details and details.get("output"):
            with contextlib.suppress(ValueError, TypeError):
                value = json.loads(details["output"])
                if isinstance(value, dict):
                    return value
    return {}


def _error_summary(error: Mapping[str, Any] | None, result: ExecutionResult) -> dict[str, Any]:
    """The error that sent the run down the failure path, with the handler's message when there is one."""
    if not error:
        return {"error": result.error, "message": result.cause}
    cause: Any = error.get("Cause")
    with contextlib.suppress(TypeError, ValueError):
        cause = json.loads(cause)
    message = cause
    if error.get("Error") == "ChecksFailedError" and isinstance(cause, list):
        failed = [
            c for c in cause if isinstance(c, dict) and not c.get("passed") and c.get("severity") == "fail"
        ]
        message = "checks failed: " + ", ".join(
            f"{c.get('name')} (metric {c.get('metric')}, min {c.get('min')}, max {c.get('max')})"
            + (f": {c['note']}" if c.get("note") else "")
            for c in failed
        )
        return {"error": "ChecksFailedError", "message": message, "checks": cause}
    if isinstance(cause, dict):
        message = (
            cause.get("errorMessage") or cause.get("ErrorMessage") or cause.get("StateChangeReason") or cause
        )
    if isinstance(cause, dict) and cause.get("errorType") and error.get("Error") == "States.TaskFailed":
        return {"error": cause["errorType"], "message": message, "state_error": error.get("Error")}
    return {"error": error.get("Error"), "message": message}


def local_execution_arn(name: str, machine: str = INGEST_MACHINE) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT_ID}:execution:{machine}:{name}"


def settings_for(options: LocalOptions) -> Settings:
    """Settings as the handlers will see them (for commands that only read the home)."""
    return LocalPipeline(options).rt.settings


def lambda_context(logical_id: str, timeout_s: float = 900.0) -> LocalLambdaContext:
    return LocalLambdaContext(
        function_name=logical_id,
        invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{logical_id}",
        timeout_s=timeout_s,
    )
