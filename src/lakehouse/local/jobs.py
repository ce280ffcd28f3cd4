"""Glue and EMR Serverless job runs, locally: the same job code on a shared local SparkSession.

`glue:startJobRun.sync` runs `jobs/glue/ingest_large_object.py`; `emr-serverless:startJobRun.sync` runs
the entry point its `EntryPoint` names under `jobs/emr/`. When a script exposes
`run(spark, args)`, it is called with the local session (no second JVM); otherwise its `main(argv)` is
called with the arguments AWS would pass. If a script is absent the library call it makes is made
(`lakehouse.spark.runs.ingest_manifest`, `lakehouse.spark.derived.refresh_derived`).

Derived models are refreshed with DuckDB (the contract's Spark SQL transpiled by sqlglot, spark ->
duckdb, written with deltalake) unless `LAKEHOUSE_DERIVED_ENGINE=spark` and local Spark is available,
in which case `jobs/emr/refresh_derived.py` runs on the shared session as EMR Serverless would run it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import os
import re
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

from lakehouse import access, tables
from lakehouse.errors import InvalidInputError
from lakehouse.layout import local_location
from lakehouse.local.paths import LocalPaths
from lakehouse.local.sfn import TaskFailed
from lakehouse.local.worker import current_slot
from lakehouse.stages.runtime import Runtime
from lakehouse.state import GlueManifest, ManifestObject

DERIVED_ENGINE_ENV = "LAKEHOUSE_DERIVED_ENGINE"  # duckdb (default) | spark: how RefreshDerived runs locally


class SparkMissing(RuntimeError):  # noqa: N818 - reads as a condition, like SparkUnavailableError
    """Local Spark was asked for but cannot run; the message says what is missing and how to get it."""


def spark_status() -> tuple[bool, str]:
    """(available, detail): pyspark importable, Java present, Delta jars cached. Starts no JVM."""
    try:
        from lakehouse.spark.session import spark_available
    except ImportError as exc:  # the spark package is optional at install time
        return (
            False,
            f"lakehouse.spark cannot be imported ({exc}); install the local extra: pip install -e '.[local]'",
        )
    ok, detail = spark_available()
    return bool(ok), str(detail)


_SPARK_LOCK = threading.Lock()
_SESSION: list[Any] = []


def shared_spark() -> Any:
    """The process's local SparkSession (started once; later calls return the running one)."""
    with _SPARK_LOCK:
        if _SESSION:
            return _SESSION[0]
        try:
            from lakehouse.spark import SparkUnavailableError
            from lakehouse.spark.session import get_spark
        except ImportError as exc:
            raise SparkMissing(f"lakehouse.spark cannot be imported: {exc}") from exc
        try:
            session = get_spark("lakehouse-local", extra_conf=_local_jvm_conf())
        except SparkUnavailableError as exc:
            raise SparkMissing(str(exc)) from exc
        _SESSION.append(session)
        return session


def _local_jvm_conf() -> dict[str, str]:
    """Driver JVM options for short local jobs.

    C1-only JIT (`TieredStopAtLevel=1`): the pipeline's Spark jobs are seconds long, so the time C2 spends
    optimising is never paid back; measured on 2 cores it halves the first Delta write (33 s -> 17 s)
    and a warm derived refresh (5.4 s -> 2.1 s).
    """
    try:
        from lakehouse.spark.session import LOCAL_CONFS

        base = str(LOCAL_CONFS.get("spark.driver.extraJavaOptions", ""))
    except ImportError:
        base = ""
    return {"spark.driver.extraJavaOptions": f"{base} -XX:TieredStopAtLevel=1".strip()}


# How long a timed-out Spark state waits for its cancelled job to return, so Rollback sees any commit.
SPARK_CANCEL_GRACE_S = 60.0


@contextlib.contextmanager
def cancellable_spark_jobs(use_spark: bool) -> Iterator[None]:
    """Run a Glue/EMR job so that its state's timeout cancels it.

    Spark jobs share this process's SparkSession, so they cannot be killed like a worker. The job's
    Spark actions run in a job group of their own; a timeout cancels the group (`cancelJobGroup`, with
    `interruptOnCancel`), then waits up to SPARK_CANCEL_GRACE_S for the job's thread to return, so that
    a Delta commit already under way in the JVM lands before Rollback looks for it. Python code between
    Spark actions runs on until its next action.
    """
    slot = current_slot()
    context = None
    if slot is not None and use_spark:
        with contextlib.suppress(Exception):  # no session: the job itself reports it as a failed run
            context = shared_spark().sparkContext
    if slot is None or context is None:
        yield
        return
    group = f"lakehouse-{slot.state}-{uuid.uuid4().hex[:12]}"
    context.setJobGroup(group, f"local {slot.state}", interruptOnCancel=True)
    finished = threading.Event()

    def cancel() -> None:
        context.cancelJobGroup(group)
        finished.wait(SPARK_CANCEL_GRACE_S)

    unregister = slot.on_cancel(cancel)
    try:
        yield
    finally:
        unregister()
        finished.set()
        with contextlib.suppress(Exception):
            context.setLocalProperty("spark.jobGroup.id", None)


def emr_job_without_spark(project_root: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Worker target (local/worker.py): an EMR job run on DuckDB + delta-rs, in the worker's runtime."""
    from lakehouse.stages.runtime import get_runtime

    return LocalJobs(get_runtime(), Path(project_root), use_spark=False).emr_start_job_run(parameters)


def warm_spark() -> threading.Thread:
    """Start the JVM and load the Delta classes in the background.

    A cold local Spark spends ~8 s starting and ~20 s more in its first Delta write (class loading, JIT);
    `demo` overlaps that with data generation and the Lambda-route runs.
    """

    def work() -> None:
        try:
            spark = shared_spark()
            with tempfile.TemporaryDirectory(prefix="lakehouse-warm-") as folder:
                target = str(Path(folder) / "t")
                frame = spark.createDataFrame([(1, "a")], "id BIGINT, v STRING")
                frame.write.format("delta").mode("overwrite").save(target)
                spark.read.format("delta").load(target).groupBy("v").count().collect()
        except Exception:  # the run that needs Spark reports the problem properly
            pass

    thread = threading.Thread(target=work, name="spark-warmup", daemon=True)
    thread.start()
    return thread


def _load_script(path: Path) -> ModuleType:
    name = "lakehouse_job_" + re.sub(r"\W", "_", f"{path.parent.name}_{path.stem}")
    cached = sys.modules.get(name)
    if cached is not None and getattr(cached, "__file__", None) == str(path):
        return cached
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import job script {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _call_script(module: ModuleType, spark: Any, argv: list[str]) -> Any:
    """Call the job script's local entry: `run(spark, argv)` if it has one, else `main(argv)`."""
    run = getattr(module, "run", None)
    if callable(run):
        params = list(inspect.signature(run).parameters)
        return run(spark, argv) if len(params) > 1 else run(argv)
    main = getattr(module, "main", None)
    if callable(main):
        return main(argv)
    raise RuntimeError(f"{module.__file__} has neither run(spark, argv) nor main(argv)")


class LocalJobs:
    """Service handlers for the Glue and EMR Serverless `.sync` integrations."""

    def __init__(self, rt: Runtime, project_root: Path, *, use_spark: bool) -> None:
        self.rt = rt
        self.root = project_root
        self.use_spark = use_spark
        # Derived (gold) models are refreshed with DuckDB unless LAKEHOUSE_DERIVED_ENGINE=spark: on a laptop
        # the EMR job on local Spark costs ~40 s per refresh for the same few rows. The Spark job itself
        # is tested on its own (tests/functional/spark) and through the executor with the variable set.
        self.derived_on_spark = use_spark and os.environ.get(DERIVED_ENGINE_ENV, "duckdb").lower() == "spark"

    # -- Glue --------------------------------------------------------------------------------------

    def glue_start_job_run(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        job_name = str(parameters.get("JobName") or "glue-job")
        arguments = dict(parameters.get("Arguments") or {})
        job_run_id = "jr_" + uuid.uuid4().hex
        started = datetime.now(UTC)
        try:
            if not self.use_spark:
                raise SparkMissing(
                    "this object took the Glue route but local Spark is off (--no-spark); raise "
                    "LAMBDA_ROUTE_MAX_BYTES or run without --no-spark"
                )
            self._run_glue(arguments)
        except (Exception, SystemExit) as exc:  # argparse in a job script exits on bad arguments
            # What Step Functions reports for a failed job run: States.TaskFailed with the JobRun as cause.
            raise TaskFailed(
                "States.TaskFailed",
                json.dumps(
                    {
                        "JobName": job_name,
                        "Id": job_run_id,
                        "JobRunState": "FAILED",
                        "ErrorMessage": f"{type(exc).__name__}: {exc}",
                        "errorType": type(exc).__name__,
                        "errorMessage": str(exc),
                    }
                ),
            ) from exc
        return {
            "Id": job_run_id,
            "JobName": job_name,
            "JobRunState": "SUCCEEDED",
            "StartedOn": started.isoformat(),
            "CompletedOn": datetime.now(UTC).isoformat(),
            "ExecutionTime": int((datetime.now(UTC) - started).total_seconds()),
        }

    def _glue_argv(self, arguments: Mapping[str, Any], manifest: GlueManifest) -> list[str]:
        """The job's arguments as Glue passes them, plus where the local objects, result and rejects live."""
        rt = self.rt
        objects = rt.adapters.objects
        result = rt.layout.commit_result(manifest.run_id)
        argv = ["ingest_large_object.py"]
        for key, value in arguments.items():
            argv += [str(key), str(value)]
        sources = {o.object_id: self._pinned_source(o) for o in manifest.objects}
        rejects = {}
        for o in manifest.objects:
            where = rt.layout.rejects(manifest.dataset, o.object_id)  # the object's own rows, as on Lambda
            rejects[o.object_id] = objects.uri(where.bucket, where.key)
        argv += [
            "--datasets_dir", str(rt.settings.datasets_dir),
            "--source_uris", json.dumps(sources),
            "--result_uri", objects.uri(result.bucket, result.key),
            "--rejects_uris", json.dumps(rejects),
        ]  # fmt: skip
        return argv

    def _pinned_source(self, obj: ManifestObject) -> str:
        """The object version as a local path Spark can read: its immutable snapshot."""
        objects = self.rt.adapters.objects
        # The local store, possibly behind the IAM-checking wrapper (which checks the read).
        pinned_path = getattr(objects, "pinned_path", None)
        if pinned_path is not None:
            return str(pinned_path(obj.bucket, obj.key, version_id=obj.version_id, etag=obj.etag))
        return objects.uri(obj.bucket, obj.key)

    def _manifest(self, arguments: Mapping[str, Any]) -> GlueManifest:
        """The job run's manifest (read as the job's role: Inspect wrote it to the lake)."""
        uri = str(arguments.get("--manifest_uri") or "")
        if not uri:
            raise InvalidInputError("the Glue job run has no --manifest_uri")
        found = local_location(self.rt.settings.home, uri)
        if found is None:
            raise InvalidInputError(f"--manifest_uri {uri!r} is outside the local object store")
        data = self.rt.adapters.objects.read_bytes(found.bucket, found.key)
        return GlueManifest.model_validate_json(data)

    def _run_glue(self, arguments: Mapping[str, Any]) -> None:
        manifest = self._manifest(arguments)
        spark = shared_spark()
        script = self.root / "jobs" / "glue" / "ingest_large_object.py"
        argv = self._glue_argv(arguments, manifest)
        if script.is_file():
            _call_script(_load_script(script), spark, argv)
            return
        # No job script (an installed package without jobs/): the library call the script makes.
        from lakehouse.spark.runs import ingest_manifest

        options = _options(argv)
        ingest_manifest(
            spark,
            options["--manifest_uri"],
            run_id=options.get("--run_id"),
            datasets_dir=options["--datasets_dir"],
            result_uri=options["--result_uri"],
            source_uris=json.loads(options["--source_uris"]),
            rejects_uris=json.loads(options["--rejects_uris"]),
        )

    # -- EMR Serverless ----------------------------------------------------------------------------

    def emr_start_job_run(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        driver = (parameters.get("JobDriver") or {}).get("SparkSubmit") or {}
        entry = PurePosixPath(str(driver.get("EntryPoint") or "")).name
        argv = [str(a) for a in driver.get("EntryPointArguments") or []]
        job_run_id = uuid.uuid4().hex[:16]
        try:
            self._run_emr(entry, argv)
        except (Exception, SystemExit) as exc:  # argparse in a job script exits on bad arguments
            raise TaskFailed(
                "States.TaskFailed",
                json.dumps(
                    {
                        "JobRunId": job_run_id,
                        "State": "FAILED",
                        "StateDetails": f"{type(exc).__name__}: {exc}",
                        "errorType": type(exc).__name__,
                        "errorMessage": str(exc),
                    }
                ),
            ) from exc
        return {
            "ApplicationId": str(parameters.get("ApplicationId") or "local"),
            "JobRunId": job_run_id,
            "Arn": f"arn:aws:emr-serverless:local:job-run/{job_run_id}",
            "State": "SUCCESS",
        }

    def lake_root(self) -> str:
        return str(LocalPaths(self.rt.settings.home).bucket_dir(self.rt.settings.lake_bucket))

    def _emr_argv(self, entry: str, options: Mapping[str, str]) -> list[str]:
        """The script's own arguments. The ASL passes `--dataset/--run_id`; the scripts want locations too
        (`--lake_root`, `--table_uri`), which locally are folders under the home."""
        dataset = options.get("--dataset", "")
        if entry.startswith("refresh_derived"):
            return [
                "--dataset", dataset, "--lake_root", self.lake_root(),
                "--models_uri", str(self._derived_models_file()), "--local",
            ]  # fmt: skip
        if entry.startswith("maintain_table"):
            return ["--table_uri", self.rt.table_uri(dataset), "--local"]
        return [f"{k}={v}" for k, v in options.items()]

    def _derived_models_file(self) -> Path:
        """The derived-models JSON of the contracts, as scripts/upload_artifacts.sh uploads it to AWS."""
        from lakehouse.sql.derived import derived_document

        path = Path(self.rt.settings.home) / "state" / "derived_models.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(derived_document(self.rt.contracts), sort_keys=True), encoding="utf-8")
        return path

    def _run_emr(self, entry: str, argv: Sequence[str]) -> None:
        options = _options(argv)
        dataset = options.get("--dataset", "")
        script = self.root / "jobs" / "emr" / entry
        derived = entry.startswith("refresh_derived")
        on_spark = self.derived_on_spark if derived else self.use_spark
        if on_spark and script.is_file():
            _call_script(_load_script(script), shared_spark(), self._emr_argv(entry, options))
            return
        if derived:
            if on_spark:  # no job script: the library call it makes
                from lakehouse.spark.derived import refresh_derived

                refresh_derived(shared_spark(), self.rt.contract(dataset), self.lake_root())
            else:
                refresh_derived_duckdb(self.rt, dataset)
            return
        if entry.startswith("maintain_table"):
            # delta-rs does the same checkpoint/compact/vacuum as the Spark job, locally and quickly.
            tables.maintain(self.rt.table_uri(dataset), storage_options=self.rt.storage_options)
            return
        raise InvalidInputError(f"no local equivalent for the EMR entry point {entry!r}")


def _options(argv: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    items = list(argv)
    for index, item in enumerate(items):
        if item.startswith("--") and index + 1 < len(items):
            out[item] = items[index + 1]
    return out


def _sources(rt: Runtime) -> dict[str, str]:
    from lakehouse.duckdb_engine.delta import open_table

    found = {}
    for name in rt.contracts.names():
        uri = rt.table_uri(name)
        if open_table(uri, rt.storage_options) is not None:
            found[name] = uri
    return found


def refresh_derived_duckdb(rt: Runtime, dataset: str) -> list[dict[str, Any]]:
    """The same refresh without Spark: sqlglot spark -> duckdb, deltalake write (overwrite)."""
    import duckdb
    import sqlglot
    from deltalake import write_deltalake

    from lakehouse.local.athena import delta_dataset

    contract = rt.contract(dataset)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, uri in _sources(rt).items():
            con.register(f"__delta_{name}", delta_dataset(uri, rt.storage_options))
            con.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM "__delta_{name}"')
        out = []
        for model in contract.derived:
            sql = sqlglot.transpile(model.sql, read="spark", write="duckdb")[0]
            data = con.sql(sql).to_arrow_table()
            target = rt.derived_uri(model.name)
            access.require_table(target, write=True)
            write_deltalake(
                target,
                data,
                mode="overwrite",
                schema_mode="overwrite",
                storage_options=rt.storage_options or None,
                configuration=tables.TABLE_CONFIGURATION,
            )
            out.append({"model": model.name, "uri": target, "engine": "duckdb", "rows": data.num_rows})
        return out
    finally:
        con.close()
