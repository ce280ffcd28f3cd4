"""The local executor: the real `statemachine/*.asl.json`, every Task routed to a local stand-in
(docs/ARCHITECTURE.md, "The local runtime").

`LocalPipeline` composes the parts of the local runtime:

- `environment.LocalEnvironment`: each function's environment (template.yaml + local overrides);
- `services`: the local Lambda, Glue, EMR, Athena and SNS/EventBridge (outbox) stand-ins;
- `recorder.RunRecorder`: a finished run's outcome in the run ledger and the HTML report;
- `starter.LocalQueue`: runs are started through a persistent queue, so a run survives a restart.

Control flow (Retry, Catch, Choice, Wait) is moto's ASL interpreter via `LocalStateMachine`; each task is
checked against the machine's role and runs as its own (local IAM, docs/IAM.md).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse import workdirs
from lakehouse.adapters.local import file_lock
from lakehouse.local import enforce
from lakehouse.local.athena import LocalAthena
from lakehouse.local.environment import NO_SPARK_ROUTE_MAX_BYTES, LocalEnvironment
from lakehouse.local.faults import CrashInjector
from lakehouse.local.jobs import LocalJobs, SparkMissing, spark_status
from lakehouse.local.project import Project, environment
from lakehouse.local.recorder import RunRecord, RunRecorder
from lakehouse.local.services import (
    AthenaService,
    LocalEmr,
    LocalGlue,
    LocalLambdas,
    Outbox,
    service_handlers,
)
from lakehouse.local.sfn import ExecutionResult, LocalStateMachine
from lakehouse.local.starter import LocalQueue, QueuedRun
from lakehouse.local.worker import shared_pool
from lakehouse.ports import ObjectInfo
from lakehouse.stages.runtime import Runtime, get_runtime
from lakehouse.state import FAILED_STATUSES
from lakehouse.state import RunRecord as LedgerRecord

__all__ = ["NO_SPARK_ROUTE_MAX_BYTES", "LocalOptions", "LocalPipeline", "RunRecord"]

INGEST_MACHINE = "IngestStateMachine"
# What an object's record takes from its drain's record (the local executor's view of the execution).
_FROM_DRAIN = (
    "path",
    "states",
    "duration_ms",
    "execution_status",
    "execution_arn",
    "route",
    "inspection",
    "checks_query",
    "checks",
    "rollback",
    "quarantine",
    "rollback_error",
    "quarantine_error",
    "table_version",
    "version_before",
    "version_after",
    "report",
    "finished_at",
)
_OBJECT_KEYS = ("bucket", "key", "version_id", "etag", "size")
_FINAL = frozenset({"SUCCEEDED", "DUPLICATE", "QUARANTINED", "FAILED"})
MAINTENANCE_MACHINE = "MaintenanceStateMachine"


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


def _spark(options: LocalOptions) -> tuple[bool, str]:
    """Whether runs use local Spark, and why (or why not)."""
    if options.spark is False:
        return False, "disabled (--no-spark)"
    ok, detail = spark_status()
    if not ok and options.spark:
        raise SparkMissing(f"local Spark is unavailable: {detail}")
    return ok, detail


class LocalPipeline:
    """Runs IngestStateMachine / MaintenanceStateMachine executions in this process."""

    def __init__(self, options: LocalOptions) -> None:
        self.options = options
        self.home = Path(options.home).resolve()
        self.datasets_dir = Path(options.datasets_dir).resolve()
        self.project = Project.load(options.project_root)
        enforce.use_project(self.project.root)  # the roles of this project's template (docs/IAM.md)
        self.use_spark, self.spark_detail = _spark(options)
        self.home.mkdir(parents=True, exist_ok=True)
        # What a crashed run left: work folders of dead processes, half-written temp objects.
        workdirs.sweep()
        workdirs.sweep_tmp_files(self.home / "buckets", self.home / "state")
        self.queue = LocalQueue(self.home)
        # The object versions this process landed and has not submitted yet (see `land_file`).
        self._landed: dict[tuple[str, str], ObjectInfo] = {}
        self.env = LocalEnvironment(
            self.project,
            self.home,
            self.datasets_dir,
            log_level=options.log_level,
            route_max_bytes=self.route_max_bytes,
            parameter_overrides=dict(options.parameters),
        )
        with environment(self.env.base_env()):
            self.rt: Runtime = get_runtime()
        self.athena = LocalAthena(self.rt)
        self.jobs = LocalJobs(self.rt, self.project.root, use_spark=self.use_spark)
        self.workers = shared_pool() if options.isolate_tasks else None
        self.recorder = RunRecorder(self.rt, self.home, self.project, reports=options.reports)

    def prewarm(self) -> None:
        """Start a task worker in the background (a run is coming); commands that only read never do."""
        if self.workers is not None:
            self.workers.prewarm()

    @property
    def route_max_bytes(self) -> int | None:
        if self.options.lambda_route_max_bytes is not None:
            return self.options.lambda_route_max_bytes
        return None if self.use_spark else NO_SPARK_ROUTE_MAX_BYTES

    # -- routing -----------------------------------------------------------------------------------

    def lambda_handlers(self) -> dict[str, Callable[[dict[str, Any], Any], Any]]:
        return LocalLambdas(self.env, self.workers).handlers()

    def service_handlers(self) -> dict[str, Callable[[str, dict[str, Any]], Any]]:
        env = self.env.base_env()
        return service_handlers(
            LocalGlue(self.jobs, env),
            LocalEmr(self.jobs, env, self.project.root, self.workers),
            AthenaService(self.athena),
            Outbox(self.rt.adapters.notifier),
        )

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
            substitutions=self.env.substitutions(machine),
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
        """Execute every queued run, oldest first, until none is left (a drain that ends starts the next
        one); a run leaves the queue only once it is recorded. The records are per object."""
        records: list[RunRecord] = []
        executed = 0
        with self._exclusive():
            if not self.queue.pending():
                return records
            with self.state_machine(INGEST_MACHINE) as sm:
                while (pending := self.queue.pending()) and (limit is None or executed < limit):
                    queued = pending[0]
                    if on_start:
                        on_start(queued)
                    done = self._execute(sm, queued.name, queued.payload)
                    self.queue.done(queued)
                    executed += 1
                    records.extend(done)
                    for record in done:
                        if on_done:
                            on_done(record)
        return records

    def _execute(self, sm: LocalStateMachine, name: str, payload: Mapping[str, Any]) -> list[RunRecord]:
        started = time.monotonic()
        with contextlib.redirect_stdout(sys.stderr):
            arn = sm.start(dict(payload), execution_name=name)
            result = sm.wait(arn, timeout=self.options.execution_timeout_s)
        from lakehouse.local.recorder import final_state

        # A drain's input names no object; a batch of one has it in its state (its report shows it).
        state = final_state(result)
        one = {k: state[k] for k in _OBJECT_KEYS if state.get(k) is not None and not payload.get(k)}
        record = self.record(result, name, {**payload, **one}, time.monotonic() - started)
        return self._settle(state, record)

    def _settle(self, state: Mapping[str, Any], record: RunRecord) -> list[RunRecord]:
        """What settle_drain does at the end of every execution (the execution-status rule in AWS);
        the records of the objects the execution finished."""
        from lakehouse.stages.drain import settle_drain
        from lakehouse.stages.start import default_starter

        dataset = str(record.data.get("dataset") or "")
        with environment(self.env.base_env()), contextlib.redirect_stdout(sys.stderr):
            if dataset:
                settle_drain(self.rt, dataset, record.run_id, record.status, default_starter(self.rt))
        batch = state.get("batch")
        objects = batch.get("objects") if isinstance(batch, dict) else None
        if not isinstance(objects, list):
            return [record]
        ids = [str(o.get("object_id") or "") for o in objects if isinstance(o, dict)]
        if not ids:
            # A drain resumed after FinishBatch finds its objects settled already: report them.
            ledger = self.rt.adapters.ledger.list(limit=100_000)
            ids = [str(r["run_id"]) for r in ledger if r.get("batch_id") == record.run_id]
        return [r for r in (self._object_record(record, i) for i in ids) if r is not None]

    def _object_record(self, drain: RunRecord, object_id: str) -> RunRecord | None:
        """An object's final ledger record with what its drain's execution did (path, timings, report),
        so `lakehouse runs` shows each object as it showed a run; None while it waits for another drain."""
        if object_id == drain.run_id:
            return drain
        ledger = self.rt.adapters.ledger
        data = ledger.get(object_id) or {}
        status = data.get("status")
        if status not in _FINAL:
            return None  # requeued by SplitBatch: a later drain finishes it
        merged = {k: drain.data.get(k) for k in _FROM_DRAIN}
        merged.update({k: v for k, v in data.items() if v is not None})
        merged["batch_id"] = drain.run_id
        if status in FAILED_STATUSES and drain.status in FAILED_STATUSES:
            merged["error"] = drain.data.get("error") or data.get("error")
        ledger.put(object_id, LedgerRecord.model_validate(merged).model_dump(mode="json"))
        return RunRecord(object_id, status, merged)

    def record(
        self, result: ExecutionResult, name: str, payload: dict[str, Any], elapsed_s: float
    ) -> RunRecord:
        """Merge what the execution did into the run ledger (`RunRecorder.record`)."""
        return self.recorder.record(result, name, payload, elapsed_s)

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
        obj = ObjectCreated.seen_now(bucket, key, info)
        role = enforce.as_role(enforce.function_role("OnObjectCreatedFunction"), "OnObjectCreatedFunction")
        with environment(self.env.base_env()), role, contextlib.redirect_stdout(sys.stderr):
            return start_run(self.rt, obj, default_starter(self.rt))

    def backfill(self, request: Any, on_page: Callable[[list[Any]], None] | None = None) -> Any:
        """What BackfillLandingFunction does (`lakehouse.stages.backfill`), every page, as its role."""
        from lakehouse.stages.backfill import backfill
        from lakehouse.stages.start import default_starter

        self.prewarm()
        role = enforce.as_role(enforce.function_role("BackfillLandingFunction"), "BackfillLandingFunction")
        with environment(self.env.base_env()), role, contextlib.redirect_stdout(sys.stderr):
            return backfill(self.rt, request, default_starter(self.rt), on_page=on_page)

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
