"""`lakehouse`: run the pipeline on a laptop, query its tables, look after them.

Every command works on a local home (`--home`, default `./.lakehouse`, env `LAKEHOUSE_HOME`) and a folder
of dataset contracts (`--datasets`, default `./datasets`, env `LAKEHOUSE_DATASETS`). Human output goes
to the terminal (progress on stderr); `--json` prints one JSON document on stdout for scripts.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import sys
import time
import traceback
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

app = typer.Typer(
    name="lakehouse",
    help="Serverless Delta lakehouse, locally: the real state machine, handlers and jobs on your laptop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

if TYPE_CHECKING:
    from lakehouse.state import RunStatus

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (for scripts).")]
NoSparkOpt = Annotated[
    bool,
    typer.Option("--no-spark", help="Route everything through the Lambda engine (no Java/Spark needed)."),
]


@dataclass
class Globals:
    home: Path
    datasets: Path


def _out() -> Console:
    # Piped output gets room for the tables instead of rich's 80-column default. Markup is off: file
    # names, messages and values are data (a regex like `^[a-z_]*$` must print as it is); styled
    # text is built with `Text`.
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 150, markup=False)


def _err() -> Console:
    return Console(stderr=True, width=None if sys.stderr.isatty() else 150, markup=False)


def _styled(*parts: str | tuple[str, str]) -> Text:
    """Text from plain strings and (text, style) pairs: styles without parsing markup in data."""
    return Text.assemble(*parts)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def _fail(message: str, code: int = 2) -> typer.Exit:
    _err().print(_styled(("error:", "red"), f" {message}"), highlight=False)
    return typer.Exit(code)


@app.callback()
def main_options(
    ctx: typer.Context,
    home: Annotated[
        Path,
        typer.Option("--home", envvar="LAKEHOUSE_HOME", help="The local home (buckets, state, reports)."),
    ] = Path(".lakehouse"),
    datasets: Annotated[
        Path,
        typer.Option("--datasets", envvar="LAKEHOUSE_DATASETS", help="Folder of dataset contracts (*.yaml)."),
    ] = Path("datasets"),
) -> None:
    ctx.obj = Globals(home=home.resolve(), datasets=datasets.resolve())


def _globals(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    assert isinstance(obj, Globals)
    return obj


def _route_max_bytes(route: str, no_spark: bool) -> int | None:
    """`--route`: lambda (nothing is large), glue (everything is), auto (LAMBDA_ROUTE_MAX_BYTES if set)."""
    from lakehouse.local.executor import NO_SPARK_ROUTE_MAX_BYTES

    if route not in ("lambda", "glue", "auto"):
        raise _fail(f"--route must be lambda, glue or auto, not {route!r}")
    if route == "glue" and no_spark:
        raise _fail("--route glue needs local Spark; drop --no-spark")
    if route == "lambda" or no_spark:
        return NO_SPARK_ROUTE_MAX_BYTES
    if route == "glue":
        return 0  # Inspect sends objects larger than this to Glue: every non-empty object
    value = os.environ.get("LAMBDA_ROUTE_MAX_BYTES")
    if value is None:
        return None  # the template's LambdaRouteMaxBytes
    if not value.isdigit():
        raise _fail(f"LAMBDA_ROUTE_MAX_BYTES must be a number of bytes, not {value!r}")
    return int(value)


def _pipeline(
    ctx: typer.Context,
    *,
    no_spark: bool = False,
    route_max_bytes: int | None = None,
    route: str | None = None,
) -> Any:
    from lakehouse.local.executor import LocalOptions, LocalPipeline
    from lakehouse.local.project import ProjectError

    g = _globals(ctx)
    if route is not None or route_max_bytes is None:
        route_max_bytes = _route_max_bytes(route or "auto", no_spark)
    try:
        pipeline = LocalPipeline(
            LocalOptions(
                home=g.home,
                datasets_dir=g.datasets,
                # --route glue: Spark is required (a clear error now, not a failed run later).
                spark=False if no_spark else (True if route == "glue" else None),
                lambda_route_max_bytes=route_max_bytes,
            )
        )
    except ProjectError as exc:
        raise _fail(str(exc)) from exc
    _ = pipeline.rt.contracts  # bad contracts stop the command here, every problem listed
    return pipeline


def _runtime(ctx: typer.Context) -> Any:
    """The local runtime only (no template needed): for commands that read or maintain tables."""
    g = _globals(ctx)
    return _runtime_for_home(g.home, g.datasets)


def _runtime_for_home(home: Path, datasets: Path) -> Any:
    from lakehouse.settings import Settings
    from lakehouse.stages.runtime import Runtime

    settings = Settings.model_validate(
        {"LAKEHOUSE_BACKEND": "local", "LAKEHOUSE_HOME": str(home), "DATASETS_DIR": str(datasets)}
    )
    return Runtime.create(settings)


def _contract_or_exit(rt: Any, table: str) -> Any:
    from lakehouse.errors import ContractError

    try:
        return rt.contract(table)
    except ContractError as exc:
        raise _fail(str(exc)) from exc


@dataclass(frozen=True)
class _Target:
    """A table a verb works on: a dataset's table, or a derived (gold) model refreshed from `source`."""

    name: str
    uri: str
    contract: Any  # the dataset's contract; None for a derived model
    source: str  # the dataset whose lease guards the table (itself, or the model's source)


def _target_or_exit(rt: Any, name: str) -> _Target:
    from lakehouse.errors import ContractError

    try:
        return _Target(name, rt.table_uri(name), rt.contract(name), name)
    except ContractError as exc:
        for dataset in rt.contracts.names():
            if any(m.name == name for m in rt.contract(dataset).derived):
                return _Target(name, rt.derived_uri(name), None, dataset)
        raise _fail(str(exc)) from exc


def _url(path: str | Path | None) -> str:
    return "" if not path else Path(path).resolve().as_uri()


# -- run summaries --------------------------------------------------------------------------------


def run_summary(record: Any) -> dict[str, Any]:
    """The figures people look at for one run (also the --json shape)."""
    data = record.data if hasattr(record, "data") else record
    commit = _as_dict(data.get("commit"))
    checks = _as_dict(data.get("checks"))
    results = [r for r in checks.get("results") or [] if isinstance(r, dict)]
    # The executor records {"error": class, "message": ...}; a stage invoked on its own (`invoke
    # QuarantineObjectFunction`) records the class in "error" and the text in "message".
    raw_error = data.get("error")
    error = raw_error if isinstance(raw_error, dict) else {"error": raw_error, "message": data.get("message")}
    return {
        "run_id": data.get("run_id"),
        "dataset": data.get("dataset"),
        "key": data.get("key"),
        "status": data.get("status"),
        "route": data.get("route"),
        "rows_read": commit.get("rows_read"),
        "rows_written": commit.get("rows_written"),
        "rows_rejected": commit.get("rows_rejected"),
        "rows_dropped": commit.get("rows_dropped"),
        "checks_passed": sum(1 for r in results if r.get("passed")),
        "checks_failed": [r.get("name") for r in results if not r.get("passed")],
        "check_notes": {str(r.get("name")): r["note"] for r in results if r.get("note")},
        "version_before": data.get("version_before"),
        "version_committed": commit.get("version_after") if commit.get("status") == "committed" else None,
        "table_version": data.get("table_version"),
        "duration_ms": data.get("duration_ms"),
        "error": error.get("error"),
        "message": error.get("message"),
        "rejects_uri": commit.get("rejects_uri"),
        "quarantine": _as_dict(data.get("quarantine")).get("reason_uri"),
        "report": _url(data.get("report")),
    }


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


_STATUS_STYLE: dict[RunStatus, str] = {
    "SUCCEEDED": "green",
    "DUPLICATE": "dim",
    "QUARANTINED": "red",
    "FAILED": "red",
}


def _runs_table(summaries: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("file", "status", "route", "written", "rejected", "checks", "version", "seconds"):
        table.add_column(
            column, justify="right" if column in ("written", "rejected", "version", "seconds") else "left"
        )
    for s in summaries:
        checks = f"{s['checks_passed']} passed"
        if s["checks_failed"]:
            checks += f", failed: {', '.join(s['checks_failed'])}"
        style = _STATUS_STYLE.get(s["status"], "")
        version = s["table_version"]
        if s["version_committed"] is not None and s["version_committed"] != version:
            version = f"{s['version_committed']} -> {version}"
        table.add_row(
            str(s["key"]),
            Text(str(s["status"]), style=style),
            str(s["route"] or "-"),
            str(s["rows_written"] if s["rows_written"] is not None else "-"),
            str(s["rows_rejected"] if s["rows_rejected"] is not None else "-"),
            checks if s["status"] != "DUPLICATE" else "-",
            str(version if version is not None else "-"),
            f"{(s['duration_ms'] or 0) / 1000:.1f}",
        )
    return table


def _print_failures(console: Console, summaries: list[dict[str, Any]]) -> None:
    for s in summaries:
        for name, note in (s.get("check_notes") or {}).items():
            console.print(f"{s['key']}: check {name}: {note}", highlight=False)
        if s["status"] in ("FAILED", "QUARANTINED"):
            console.print(_styled((str(s["key"]), "red"), f": {s['error']}: {s['message']}"), highlight=False)
            if s["quarantine"]:
                console.print(f"  quarantined, reason: {s['quarantine']}", highlight=False)


class _RunProgress:
    """A spinner per run on stderr while runs execute (nothing when --json or not a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.progress = (
            Progress(
                SpinnerColumn(),
                TextColumn("{task.description}", markup=False),
                TimeElapsedColumn(),
                console=_err(),
            )
            if enabled
            else None
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _RunProgress:
        if self.progress:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.__exit__(None, None, None)

    def step(self, text: str) -> Any:
        if not self.progress:
            return None
        return self.progress.add_task(text, total=None)

    def done(self, task: Any, text: str) -> None:
        if self.progress and task is not None:
            self.progress.update(task, description=text, total=1, completed=1)

    def started(self, queued: Any) -> None:
        self.tasks[queued.name] = self.step(f"running {queued.payload.get('key')}")

    def finished(self, record: Any) -> None:
        self.done(self.tasks.get(record.run_id), f"{record.data.get('key')}: {record.status}")


def _records_for(pipeline: Any, run_ids: list[str]) -> list[dict[str, Any]]:
    ledger = pipeline.rt.adapters.ledger
    return [ledger.get(run_id) or {"run_id": run_id, "status": "UNKNOWN"} for run_id in run_ids]


# -- demo -----------------------------------------------------------------------------------------


@app.command()
def demo(
    ctx: typer.Context,
    scale: Annotated[float, typer.Option(help="TPC-H scale factor of the sample data.")] = 0.01,
    route_mb: Annotated[
        float, typer.Option("--route-mb", help="Objects above this size (MB) take the Glue route.")
    ] = 2.0,
    keep: Annotated[bool, typer.Option("--keep", help="Keep what an earlier demo left in the home.")] = False,
    no_spark: NoSparkOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Make sample data, run the whole pipeline on it locally, and show what happened."""
    from lakehouse.local import demo as samples
    from lakehouse.local.jobs import spark_status, warm_spark

    started = time.monotonic()
    g = _globals(ctx)
    console = _err()
    if not keep:
        for sub in ("buckets", "state", "outbox", "reports", "samples"):
            shutil.rmtree(g.home / sub, ignore_errors=True)
    spark_note = "disabled (--no-spark)"
    use_spark = False
    if not no_spark:
        use_spark, spark_note = spark_status()
        if not use_spark:
            console.print(
                _styled(("local Spark is unavailable:", "yellow"), f" {spark_note}"), highlight=False
            )
            console.print("continuing with --no-spark: every file takes the Lambda route", highlight=False)
    if use_spark:
        warm_spark()  # overlaps JVM start-up with data generation and the first Lambda-route runs
    pipeline = _pipeline(
        ctx, no_spark=not use_spark, route_max_bytes=int(route_mb * 1024 * 1024) if use_spark else None
    )
    with _RunProgress(not as_json) as progress:
        task = progress.step("generating sample data (tpchgen-cli, Faker)")
        try:
            files = samples.generate_all(g.home / "samples", scale)
        except (FileNotFoundError, OSError) as exc:
            raise _fail(f"cannot generate sample data: {exc}") from exc
        progress.done(task, f"generated {len(files)} sample files")
        run_ids: list[str] = []
        for sample in files:
            key = pipeline.land_file(sample.path, sample.dataset)
            started_run = pipeline.submit(key)
            if started_run:
                run_ids.append(started_run["run_id"])
        pipeline.drain(on_start=progress.started, on_done=progress.finished)
    records = _records_for(pipeline, run_ids)
    summaries = [run_summary(r) for r in records]
    for summary, sample in zip(summaries, files, strict=False):
        summary["file"] = sample.path.name
        summary["description"] = sample.description
        summary["file_rows"] = sample.rows
        summary["expected_good_rows"] = sample.good_rows
        summary["expected_bad_rows"] = sample.bad_rows
        summary["expected_failure"] = sample.expect_failure
    tables_info = _tables_info(pipeline.rt)
    alerts = _outbox(g.home, "alerts")
    result = {
        "home": str(g.home),
        "spark": spark_note if use_spark else f"not used: {spark_note}",
        "lambda_route_max_bytes": pipeline.route_max_bytes,
        "runs": summaries,
        "tables": tables_info,
        "alerts": len(alerts),
        "events": len(_outbox(g.home, "events")),
        "report": _url(g.home / "reports" / "index.html"),
        "duration_s": round(time.monotonic() - started, 1),
    }
    if as_json:
        _print_json(result)
        return
    out = _out()
    out.print(_runs_table(summaries, "Runs"))
    _print_failures(out, summaries)
    out.print(_tables_table(tables_info))
    out.print(f"alerts in the outbox: {len(alerts)} ({g.home / 'outbox' / 'alerts.jsonl'})", highlight=False)
    out.print(f"Spark: {result['spark']}", highlight=False)
    out.print(f"report: {result['report']}", highlight=False)
    out.print(f"demo finished in {result['duration_s']} s", highlight=False)


def _outbox(home: Path, kind: str) -> list[dict[str, Any]]:
    path = home / "outbox" / f"{kind}.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- run ------------------------------------------------------------------------------------------


@app.command()
def run(
    ctx: typer.Context,
    files: Annotated[
        list[Path], typer.Argument(help="Files to land and ingest.", exists=True, dir_okay=False)
    ],
    dataset: Annotated[
        str | None, typer.Option(help="The dataset of every file (default: from each file name).")
    ] = None,
    route: Annotated[
        str,
        typer.Option(
            "--route",
            help="lambda | glue | auto. auto: objects above LAMBDA_ROUTE_MAX_BYTES (env; default the "
            "template's LambdaRouteMaxBytes, 512 MiB) take the Glue route on local Spark.",
        ),
    ] = "auto",
    no_spark: NoSparkOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy files into the local landing area and run the pipeline for each (exit 1 if any failed)."""
    pipeline = _pipeline(ctx, no_spark=no_spark, route=route)
    run_ids: list[str] = []
    duplicates: list[dict[str, Any]] = []
    for path in files:
        try:
            key = pipeline.land_file(path, dataset)
        except Exception as exc:
            raise _fail(str(exc)) from exc
        started = pipeline.submit(key)
        if started is None:
            raise _fail(f"{path}: no dataset contract claims key {key!r}")
        run_ids.append(started["run_id"])
        if not started.get("started"):
            duplicates.append(started)
    with _RunProgress(not as_json) as progress:
        executed = {r.run_id for r in pipeline.drain(on_start=progress.started, on_done=progress.finished)}
    records = _records_for(pipeline, run_ids)
    summaries = [run_summary(r) for r in records]
    for summary, record in zip(summaries, records, strict=True):
        if any(d["run_id"] == summary["run_id"] for d in duplicates) and summary["run_id"] not in executed:
            summary["already_run"] = True  # this very run finished earlier: nothing was done now
        summary["note"] = _run_note(pipeline.rt, record, summary)
    failed = [s for s in summaries if s["status"] in ("FAILED", "QUARANTINED")]
    if as_json:
        _print_json({"runs": summaries, "failed": len(failed)})
    else:
        out = _out()
        out.print(_runs_table(summaries, "Runs"))
        for s in summaries:
            if s["note"]:
                out.print(f"{s['key']}: {s['note']}", highlight=False)
        _print_failures(out, summaries)
        out.print(f"report: {_url(pipeline.home / 'reports' / 'index.html')}", highlight=False)
    if failed:
        raise typer.Exit(1)


def _run_note(rt: Any, record: dict[str, Any], summary: dict[str, Any]) -> str | None:
    """What a run that committed nothing new, or resumed, did; None for an ordinary run."""
    commit = _as_dict(record.get("commit"))
    if summary.get("already_run"):
        return f"already run as {summary['run_id']} ({summary['status']}); nothing was done now"
    if commit.get("resumed"):
        return f"resumed after its own commit (version {commit.get('version_after')})"
    if commit.get("status") != "duplicate":
        return None
    by_run, version = _ingested_by(rt, record)
    if by_run == summary["run_id"]:  # its own earlier attempt committed (a crash in between)
        return f"resumed after its own commit (version {version})"
    if by_run:
        return f"already ingested by run {by_run} (version {version}); nothing new committed"
    return "already in the table (its app transaction is there); nothing new committed"


def _ingested_by(rt: Any, record: dict[str, Any]) -> tuple[str | None, int | None]:
    """The run (and version) whose commit carries this object's app transaction, read from the local
    Delta log; else the oldest commit from the same source key."""
    uri = Path(rt.table_uri(str(record.get("dataset"))))
    app_id = _as_dict(record.get("inspection")).get("app_id")
    source = f"s3://{record.get('bucket')}/{record.get('key')}"
    by_source: tuple[str | None, int | None] = (None, None)
    for log in sorted((uri / "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
        info: dict[str, Any] = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
        run_id = info.get("lakehouse.run_id")
        if app_id and any(_as_dict(a.get("txn")).get("appId") == app_id for a in actions):
            return run_id, int(log.stem)
        if by_source[0] is None and run_id and info.get("lakehouse.source") == source:
            by_source = (str(run_id), int(log.stem))
    return by_source


# -- watch ----------------------------------------------------------------------------------------


@app.command()
def watch(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Process what is there now, then exit.")] = False,
    max_runs: Annotated[int | None, typer.Option("--max-runs", help="Stop after this many runs.")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Stop after this many seconds.")] = None,
    debounce_ms: Annotated[
        int, typer.Option("--debounce-ms", help="A file is complete once its size is stable this long.")
    ] = 500,
    no_spark: NoSparkOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Watch the landing area (<home>/buckets/landing/) and run the pipeline for each new complete file."""
    from lakehouse.local.watch import LandingWatcher

    pipeline = _pipeline(ctx, no_spark=no_spark)
    console = _err()

    def on_event(kind: str, info: dict[str, Any]) -> None:
        if as_json:
            sys.stderr.write(json.dumps({"event": kind, **info}, default=str) + "\n")
        else:
            console.print(
                _styled((kind, "bold"), " " + " ".join(f"{k}={v}" for k, v in info.items())), highlight=False
            )

    watcher = LandingWatcher(pipeline, debounce_ms=debounce_ms, on_event=on_event)
    if not as_json and not once:
        console.print(f"watching {watcher.root} (Ctrl-C to stop)", highlight=False)
    try:
        stats = watcher.run(once=once, max_runs=max_runs, timeout_s=timeout)
    except KeyboardInterrupt:
        return
    summaries = [run_summary(r) for r in stats.runs]
    if as_json:
        _print_json({"runs": summaries, "skipped": stats.skipped})
    elif summaries:
        _out().print(_runs_table(summaries, "Runs"))
    if any(s["status"] in ("FAILED", "QUARANTINED") for s in summaries) and (once or max_runs):
        raise typer.Exit(1)


# -- invoke ---------------------------------------------------------------------------------------


@app.command()
def invoke(
    ctx: typer.Context,
    function: Annotated[str, typer.Argument(help="The template logical id, e.g. InspectObjectFunction.")],
    event: Annotated[
        Path, typer.Option("--event", "-e", help="The event JSON file ('-' for stdin).", allow_dash=True)
    ],
    env_vars: Annotated[
        Path | None, typer.Option("--env-vars", "-n", help="SAM env-vars JSON file.", exists=True)
    ] = None,
    drain: Annotated[
        bool, typer.Option("--drain/--no-drain", help="Run the pipeline runs the handler started.")
    ] = True,
    local_uris: Annotated[
        bool,
        typer.Option(
            "--local-uris/--keep-uris", help="Point s3://<local bucket>/ URIs in the event at the local home."
        ),
    ] = True,
    seed: Annotated[
        Path | None,
        typer.Option(
            "--seed",
            exists=True,
            dir_okay=False,
            help="Put this file at every object the event names that is not in the home yet.",
        ),
    ] = None,
    allow_missing: Annotated[
        bool,
        typer.Option(
            "--allow-missing",
            help="Invoke OnObjectCreatedFunction even if the event's objects do not exist "
            "(their runs will find nothing and quarantine them).",
        ),
    ] = False,
    metrics: Annotated[
        bool, typer.Option("--metrics", help="Also print the handler's EMF metrics and Powertools warnings.")
    ] = False,
    no_spark: NoSparkOpt = False,
) -> None:
    """Call one Lambda handler in-process, like `sam local invoke` (no Docker).

    The handler's return value is the only thing on stdout; its logs go to stderr."""
    from lakehouse.local.executor import lambda_context
    from lakehouse.local.project import Project, ProjectError, environment, handler_of

    g = _globals(ctx)
    try:
        project = Project.load()
        spec = project.function(function)
    except ProjectError as exc:
        raise _fail(str(exc)) from exc
    try:
        text = sys.stdin.read() if str(event) == "-" else event.read_text(encoding="utf-8")
        payload = json.loads(text)
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read the event {event}: {exc}") from exc
    overrides: dict[str, Any] = {}
    if env_vars is not None:
        try:
            overrides = json.loads(env_vars.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise _fail(f"{env_vars}: not JSON: {exc}") from exc
    if local_uris:
        payload = _localise_uris(payload, g.home, project)
    _seed_event_objects(ctx, function, payload, seed, allow_missing)
    env = project.function_environment(function, {})
    # SAM's env-vars file: "Parameters" applies to every function, "<LogicalId>" to that one.
    for section in (overrides.get("Parameters") or {}, overrides.get(function) or {}):
        env.update({str(k): str(v) for k, v in section.items()})
    env.update(
        {
            "LAKEHOUSE_BACKEND": "local",
            "LAKEHOUSE_HOME": str(g.home),
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": env.get("POWERTOOLS_METRICS_NAMESPACE") or "Lakehouse",
            "AWS_LAMBDA_FUNCTION_NAME": function,
        }
    )
    if not metrics:  # the EMF blob is CloudWatch's input, not something to read in a terminal
        env.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    if not overrides.get(function, {}).get("DATASETS_DIR") and not (overrides.get("Parameters") or {}).get(
        "DATASETS_DIR"
    ):
        env["DATASETS_DIR"] = str(g.datasets)  # the template's /opt/datasets is the layer path in Lambda
    context = lambda_context(function, spec.timeout_s)
    context.memory_limit_in_mb = spec.memory_mb
    start = time.monotonic()
    try:
        # Handler logs and metrics go to stderr, as `sam local invoke` shows them; stdout is the response.
        with environment(env), contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            if not metrics:  # "No application metrics to publish", once per flush
                warnings.simplefilter("ignore", UserWarning)
            result = handler_of(spec)(payload, context)
    except Exception as exc:
        _print_json(
            {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc)[1:],
            }
        )
        _err().print(_styled((f"{function} raised {type(exc).__name__}", "red")), highlight=False)
        raise typer.Exit(1) from None
    _err().print(
        f"REPORT RequestId: {context.aws_request_id} Duration: {(time.monotonic() - start) * 1000:.2f} ms",
        highlight=False,
    )
    _print_json(result)
    from lakehouse.local.starter import LocalQueue

    if drain and LocalQueue(g.home).pending():
        records = _pipeline(ctx, no_spark=no_spark).drain()
        for record in records:
            _err().print(f"run {record.run_id}: {record.status}", highlight=False)


def _event_objects(function: str, payload: Any) -> list[tuple[str, str, str | None]]:
    """(bucket, key, version id) of the objects an event names: OnObjectCreated events, or a run's state."""
    from lakehouse.errors import InvalidInputError
    from lakehouse.events import is_sqs_event, iter_sqs_bodies, parse_message

    if not isinstance(payload, dict):
        return []
    if function == "OnObjectCreatedFunction":
        try:
            messages = [body for _, body in iter_sqs_bodies(payload)] if is_sqs_event(payload) else [payload]
            return [(o.bucket, o.key, o.version_id) for m in messages for o in parse_message(m)]
        except InvalidInputError:
            return []  # the handler reports a malformed event itself
    state = payload.get("run", payload)
    if isinstance(state, dict) and isinstance(state.get("bucket"), str) and isinstance(state.get("key"), str):
        version = state.get("version_id")
        return [(state["bucket"], state["key"], version if isinstance(version, str) else None)]
    return []


def _seed_event_objects(
    ctx: typer.Context, function: str, payload: Any, seed: Path | None, allow_missing: bool
) -> None:
    """`--seed`: put the file at each object the event names that is missing. Without it, refuse to start
    runs for objects that do not exist (they would be quarantined and clutter the home)."""
    objects = _runtime(ctx).adapters.objects
    missing = [(b, k, v) for b, k, v in _event_objects(function, payload) if not objects.exists(b, k)]
    if not missing:
        return
    if seed is not None:
        for bucket, key, version_id in missing:
            objects.put_file(bucket, key, seed)
            if version_id:
                # The event pins its reads to this version id: the seeded bytes become that version.
                objects.snapshot(bucket, key, version_id=version_id)
            _err().print(f"seeded {objects.uri(bucket, key)} from {seed}", highlight=False)
        return
    if function != "OnObjectCreatedFunction" or allow_missing:
        return
    names = ", ".join(f"s3://{b}/{k}" for b, k, _ in missing)
    raise _fail(
        f"the event names objects that are not in {_globals(ctx).home}: {names}. Each would start a run that "
        "finds no object and quarantines it. Pass --seed FILE to put FILE there first (e.g. a CSV of the "
        "dataset), or --allow-missing to start those runs anyway."
    )


def _localise_uris(value: Any, home: Path, project: Any) -> Any:
    """`s3://lake/tables/orders` in a sample event -> the same object under `<home>/buckets/lake/`.

    Sample events carry the S3 URIs a deployed stack produces; the local backend's URIs are paths.
    Only buckets the template defines (by their local names) are rewritten.
    """
    from lakehouse import layout
    from lakehouse.local.project import LOCAL_RESOURCE_NAMES

    buckets = {v for k, v in LOCAL_RESOURCE_NAMES.items() if k.endswith("Bucket")}
    if isinstance(value, dict):
        return {k: _localise_uris(v, home, project) for k, v in value.items()}
    if isinstance(value, list):
        return [_localise_uris(v, home, project) for v in value]
    if isinstance(value, str) and value.startswith("s3://"):
        where = layout.parse_s3_uri(value)
        if where is not None and where.bucket in buckets:
            return str(where.local_path(home))
    return value


# -- query ----------------------------------------------------------------------------------------


@app.command()
def query(
    ctx: typer.Context,
    sql: Annotated[
        str, typer.Argument(help="Athena (Trino) SQL; tables by dataset or <database>.<dataset>.")
    ],
    output: Annotated[str, typer.Option("--format", "-f", help="table | csv | json")] = "table",
    show_sql: Annotated[bool, typer.Option("--show-sql", help="Also print the DuckDB SQL.")] = False,
) -> None:
    """Run Athena SQL over the local Delta tables (DuckDB, transpiled with sqlglot)."""
    from lakehouse.local.athena import LocalQueryEngine, QueryError

    if output not in ("table", "csv", "json"):
        raise _fail(f"--format must be table, csv or json, not {output!r}")
    engine = LocalQueryEngine(_runtime(ctx))
    try:
        result = engine.query(sql)
    except QueryError as exc:
        raise _fail(str(exc), 1) from exc
    if show_sql:
        _err().print(result.duckdb_sql, highlight=False)
    if output == "json":
        _print_json(result.as_dicts())
    elif output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows(["" if v is None else v for v in row] for row in result.rows)
        sys.stdout.write(buffer.getvalue())
    else:
        _print_result_table(result)
        _err().print(f"{len(result.rows)} row(s) in {result.duration_ms} ms", highlight=False)


def _print_result_table(result: Any) -> None:
    """A query result as a table. Piped output gets the table's natural width (a wide `SELECT *` is not
    squeezed into 150 columns); values are data, never Rich markup."""
    cells = [["NULL" if v is None else str(v) for v in row] for row in result.rows]
    table = Table()
    for column in result.columns:
        table.add_column(column)
    for row in cells:
        table.add_row(*(Text(v) for v in row))
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(result.columns)]
    natural = sum(w + 3 for w in widths) + 1
    console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else max(150, natural), markup=False)
    console.print(table)


# -- tables ---------------------------------------------------------------------------------------


def _tables_info(rt: Any) -> list[dict[str, Any]]:
    from lakehouse import tables
    from lakehouse.duckdb_engine.delta import open_table

    out = []
    for name in rt.contracts.names():
        contract = rt.contract(name)
        entries = [(name, rt.table_uri(name), "table")]
        entries += [(m.name, rt.derived_uri(m.name), f"derived from {name}") for m in contract.derived]
        for table_name, uri, kind in entries:
            dt = open_table(uri, rt.storage_options)
            info: dict[str, Any] = {"table": table_name, "kind": kind, "uri": uri, "exists": dt is not None}
            if dt is not None:
                info.update(
                    version=dt.version(),
                    versions=len(tables.versions(uri, rt.storage_options)),
                    rows=tables.row_count(uri, rt.storage_options),
                    files=len(dt.file_uris()),
                    registered=rt.adapters.catalog.get_table(rt.settings.glue_database, table_name)
                    is not None,
                )
            out.append(info)
    return out


def _tables_table(info: list[dict[str, Any]]) -> Table:
    table = Table(title="Tables", title_justify="left")
    for column in ("table", "kind", "rows", "version", "versions", "files", "in catalog"):
        table.add_column(
            column, justify="right" if column in ("rows", "version", "versions", "files") else "left"
        )
    for t in info:
        if not t["exists"]:
            table.add_row(t["table"], t["kind"], "-", "-", "-", "-", "no table yet")
            continue
        table.add_row(
            t["table"], t["kind"], str(t["rows"]), str(t["version"]), str(t["versions"]), str(t["files"]),
            "yes" if t.get("registered") else "no",
        )  # fmt: skip
    return table


@app.command("tables")
def tables_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The dataset tables and derived models: rows, versions, files."""
    info = _tables_info(_runtime(ctx))
    if as_json:
        _print_json(info)
    else:
        _out().print(_tables_table(info))


@app.command()
def history(
    ctx: typer.Context,
    table: str,
    limit: Annotated[int | None, typer.Option(help="Newest commits only.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The table's commits, newest first."""
    from lakehouse import tables
    from lakehouse.errors import InvalidInputError

    rt = _runtime(ctx)
    target = _target_or_exit(rt, table)
    try:
        commits = tables.history(target.uri, rt.storage_options, limit)
    except InvalidInputError as exc:
        raise _fail(str(exc), 1) from exc
    if as_json:
        _print_json(commits)
        return
    out = Table(title=f"History of {table}", title_justify="left")
    for column in ("version", "timestamp", "operation", "rows", "run / reason"):
        out.add_column(column)
    for c in commits:
        metrics = c.get("metrics") or {}
        rows = metrics.get("num_added_rows", metrics.get("numOutputRows", ""))
        meta = c.get("metadata") or {}
        note = meta.get("lakehouse.run_id") or meta.get("lakehouse.reason") or meta.get("run_id") or ""
        out.add_row(str(c["version"]), str(c["timestamp"]), str(c["operation"]), str(rows), str(note))
    _out().print(out)


@contextlib.contextmanager
def _table_lease(rt: Any, table: str) -> Any:
    """Hold the table's writer lease (as a pipeline run would) while the CLI changes the table."""
    from lakehouse.errors import LeaseHeldError

    owner = f"cli-{uuid.uuid4().hex[:12]}"
    try:
        rt.adapters.leases.acquire(table, owner, rt.settings.lease_ttl_seconds)
    except LeaseHeldError as exc:
        raise _fail(f"{exc}; try again when that run has finished", 1) from exc
    try:
        yield
    finally:
        rt.adapters.leases.release(table, owner)


@app.command()
def rollback(
    ctx: typer.Context,
    table: str,
    version: Annotated[int, typer.Option("--version", help="The version to restore.")],
    as_json: JsonOpt = False,
) -> None:
    """Restore the table to an earlier version (Delta RESTORE, a new commit), under the table lease."""
    from lakehouse import tables
    from lakehouse.errors import LakehouseError

    rt = _runtime(ctx)
    target = _target_or_exit(rt, table)
    with _table_lease(rt, target.source):
        try:
            result = tables.rollback(
                target.uri,
                version,
                storage_options=rt.storage_options,
                reason="lakehouse rollback (CLI)",
            )
            # What derives from the table follows it, as after a pipeline run (RefreshDerived).
            if result.get("restored") and target.contract is not None and target.contract.derived:
                result["derived"] = _refresh_derived(rt, table)
        except LakehouseError as exc:
            raise _fail(str(exc), 1) from exc
    if as_json:
        _print_json(result)
        return
    if result.get("restored"):
        _out().print(f"{table}: restored to version {version} (new version {result['version_after']})")
    else:
        _out().print(f"{table}: nothing to do ({result.get('reason')})")
    for model in result.get("derived") or []:
        _out().print(f"{model['model']}: refreshed from {table} ({model.get('rows')} rows)", highlight=False)


def _refresh_derived(rt: Any, dataset: str) -> list[dict[str, Any]]:
    """Refresh the dataset's derived models (DuckDB, as the local RefreshDerived does) and register them."""
    from lakehouse.local.jobs import refresh_derived_duckdb
    from lakehouse.stages.ingest import register_table

    refreshed = refresh_derived_duckdb(rt, dataset)
    register_table(rt, {"dataset": dataset, "models": [m["model"] for m in refreshed]})
    return refreshed


@app.command()
def maintain(
    ctx: typer.Context,
    table: str,
    retention_hours: Annotated[
        int, typer.Option(help="VACUUM keeps files removed within this window.")
    ] = 168,
    as_json: JsonOpt = False,
) -> None:
    """Compact (OPTIMIZE), checkpoint and vacuum one table, under its lease."""
    from lakehouse import tables
    from lakehouse.errors import LakehouseError

    rt = _runtime(ctx)
    target = _target_or_exit(rt, table)
    with _table_lease(rt, target.source):
        try:
            result = tables.maintain(
                target.uri, retention_hours=retention_hours, storage_options=rt.storage_options
            )
        except LakehouseError as exc:
            raise _fail(str(exc), 1) from exc
    if as_json:
        _print_json(result)
        return
    _out().print(
        f"{table}: files {result['files_before']} -> {result['files_after']}, "
        f"checkpoint at version {result['checkpoint_version']}, vacuumed {result['vacuumed_files']} file(s), "
        f"now at version {result['version_after']}",
        highlight=False,
    )


@app.command()
def checks(ctx: typer.Context, table: str, as_json: JsonOpt = False) -> None:
    """Run the dataset's table checks now (the same Athena SQL the pipeline runs) and show the results."""
    from lakehouse.local.athena import LocalQueryEngine, QueryError
    from lakehouse.sql.checks import athena_table, compile_checks, evaluate, missing_references

    rt = _runtime(ctx)
    target = _target_or_exit(rt, table)
    contract = target.contract
    # As Inspect does: a referential check whose reference table does not exist fails, named.
    engine = LocalQueryEngine(rt)
    available = set(engine.tables())
    compiled = (
        compile_checks(contract, athena_table(rt.settings.glue_database), available=available)
        if contract is not None
        else None
    )
    if compiled is None:
        if as_json:
            _print_json({"table": table, "passed": True, "results": []})
        elif contract is None:
            _out().print(f"{table} is derived from {target.source} and declares no checks")
        else:
            _out().print(f"{table} declares no checks")
        return
    try:
        result = engine.query(compiled.athena())
    except QueryError as exc:
        raise _fail(str(exc), 1) from exc
    metrics = [None if v is None else float(v) for v in result.rows[0]] if result.rows else []
    missing = missing_references(contract, available)
    results = [r.as_dict() for r in evaluate(contract.checks, metrics, missing)]
    passed = all(r["passed"] or r["severity"] == "warn" for r in results)
    if as_json:
        _print_json({"table": table, "passed": passed, "results": results})
    else:
        out = Table(title=f"Checks of {table}", title_justify="left")
        for column in ("check", "metric", "min", "max", "severity", "result", "note"):
            out.add_column(column)
        for r in results:
            verdict = Text("passed", style="green") if r["passed"] else Text("FAILED", style="red")
            row = (r["name"], str(r["metric"]), str(r["min"]), str(r["max"]), r["severity"])
            out.add_row(*row, verdict, r.get("note") or "")
        _out().print(out)
    if not passed:
        raise typer.Exit(1)


@app.command()
def runs(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Option("--id", help="Show one run in detail.")] = None,
    limit: Annotated[int, typer.Option(help="How many recent runs.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The run ledger: status, path taken and per-state timings."""
    rt = _runtime(ctx)
    ledger = rt.adapters.ledger
    if run_id:
        record = ledger.get(run_id)
        if record is None:
            matches = [r for r in ledger.list(limit=10_000) if str(r.get("run_id", "")).startswith(run_id)]
            if len(matches) != 1:
                raise _fail(f"no run {run_id!r} in {rt.settings.home}", 1)
            record = matches[0]
        if as_json:
            _print_json(record)
            return
        out = _out()
        summary = run_summary(record)
        out.print(_runs_table([summary], f"Run {record['run_id']}"))
        _print_failures(out, [summary])
        timings = Table(title="States", title_justify="left")
        for column in ("state", "ms", "entered"):
            timings.add_column(column)
        for visit in record.get("states") or []:
            timings.add_row(str(visit["name"]), str(visit.get("duration_ms")), str(visit.get("entered")))
        out.print(timings)
        if record.get("report"):
            out.print(f"report: {_url(record['report'])}", highlight=False)
        return
    records = ledger.list(limit=limit)
    if as_json:
        _print_json(records)
        return
    table = Table(title=f"Runs in {rt.settings.home}", title_justify="left")
    for column in ("run", "dataset", "key", "status", "route", "path", "ms", "updated"):
        table.add_column(column)
    for r in records:
        path = r.get("path") or []
        table.add_row(
            str(r.get("run_id")), str(r.get("dataset")), str(r.get("key")), str(r.get("status")),
            str(r.get("route") or "-"), f"{len(path)} states" if path else "-",
            str(r.get("duration_ms") or "-"), str(r.get("updated_at") or ""),
        )  # fmt: skip
    _out().print(table)


# -- resume and rerun ------------------------------------------------------------------------------


def _report_runs(pipeline: Any, run_ids: list[str], title: str, as_json: bool) -> None:
    summaries = [run_summary(r) for r in _records_for(pipeline, run_ids)]
    failed = [s for s in summaries if s["status"] in ("FAILED", "QUARANTINED")]
    if as_json:
        _print_json({"runs": summaries, "failed": len(failed)})
    else:
        out = _out()
        out.print(_runs_table(summaries, title))
        _print_failures(out, summaries)
    if failed:
        raise typer.Exit(1)


@app.command()
def resume(ctx: typer.Context, no_spark: NoSparkOpt = False, as_json: JsonOpt = False) -> None:
    """Finish the runs a crash interrupted (they stay queued); each resumes after its own commit."""
    pipeline = _pipeline(ctx, no_spark=no_spark)
    with _RunProgress(not as_json) as progress:
        records = pipeline.drain(on_start=progress.started, on_done=progress.finished)
    if not records and not as_json:
        _out().print("no interrupted runs")
    _report_runs(pipeline, [r.run_id for r in records], "Resumed runs", as_json)


@app.command()
def rerun(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run whose object to ingest once more.")],
    force: Annotated[
        bool, typer.Option(help="Rerun even if that run succeeded (its rows would be added twice).")
    ] = False,
    no_spark: NoSparkOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Ingest a rolled-back or quarantined run's object version exactly once more (e.g. after fixing
    its contract). Plain duplicate events of that object still add nothing."""
    from lakehouse.errors import LakehouseError
    from lakehouse.stages.start import default_starter
    from lakehouse.stages.start import rerun as start_rerun

    pipeline = _pipeline(ctx, no_spark=no_spark)
    try:
        started = start_rerun(pipeline.rt, run_id, default_starter(pipeline.rt), force=force)
    except LakehouseError as exc:
        raise _fail(str(exc), 1) from exc
    with _RunProgress(not as_json) as progress:
        pipeline.drain(on_start=progress.started, on_done=progress.finished)
    _report_runs(pipeline, [started["run_id"]], f"Rerun of {run_id}", as_json)


# -- quarantine -----------------------------------------------------------------------------------


@app.command()
def quarantine(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Argument(help="Only this dataset.")] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run (an id or its prefix).")] = None,
    limit: Annotated[int, typer.Option(help="Rejected rows shown per run.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Quarantined files with their reasons, and the rows each run rejected (column `reason`)."""
    from lakehouse.local.quarantine import list_quarantine

    rt = _runtime(ctx)
    if dataset is not None:
        _target_or_exit(rt, dataset)  # a derived table is fine: nothing of it is ever quarantined
    listing = list_quarantine(rt, dataset, run_id, limit)
    if run_id and not listing.files and not listing.row_sets:
        raise _fail(f"nothing quarantined for run {run_id!r} in {rt.settings.home}", 1)
    if as_json:
        _print_json(listing.as_dict())
        return
    out = _out()
    files = Table(title="Quarantined files", title_justify="left")
    for column in ("dataset", "run", "file", "error", "reason"):
        files.add_column(column, overflow="fold")
    for f in listing.files:
        files.add_row(f["dataset"], f["run_id"], f["file"], str(f["error"]), f["reason"])
    out.print(files if listing.files else "no quarantined files", highlight=False)
    for rows in listing.row_sets:
        table = Table(
            title=f"Rejected rows of {rows['dataset']} run {rows['run_id']}: {rows['count']} ({rows['uri']})",
            title_justify="left",
        )
        columns = ("source_row", "source_line", "reason", "raw_line")
        for column in columns:
            table.add_column(column)
        for r in rows["rows"]:
            table.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in columns))
        out.print(table)


def main() -> None:
    """Console-script entry point."""
    # Spark and py4j log through the root logger at INFO; the CLI prints what matters itself.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        # No traceback reaches a user: the error's own message (they name the file, line, table...).
        # LAKEHOUSE_DEBUG=1 re-raises, for a bug report.
        if os.environ.get("LAKEHOUSE_DEBUG"):
            raise
        _err().print(_styled(("error:", "red"), f" {_describe(exc)}"), highlight=False)
        if not _is_user_error(exc):
            _err().print("(an unexpected error: LAKEHOUSE_DEBUG=1 shows the traceback)", highlight=False)
        sys.exit(1)


def _is_user_error(exc: BaseException) -> bool:
    from lakehouse.errors import LakehouseError
    from lakehouse.local.athena import QueryError
    from lakehouse.local.jobs import SparkMissing
    from lakehouse.local.project import ProjectError

    return isinstance(exc, LakehouseError | ProjectError | QueryError | SparkMissing | OSError | ValueError)


def _describe(exc: BaseException) -> str:
    """The message a user sees: the error's own text; the class name too when it is not ours."""
    if _is_user_error(exc) and not isinstance(exc, OSError | ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
