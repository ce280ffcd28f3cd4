"""Commands that run the pipeline: demo, run, watch, resume, rerun."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from lakehouse.cli.base import (
    BatchBytesOpt,
    BatchSizeOpt,
    JsonOpt,
    NoSparkOpt,
    _fail,
    _globals,
    _pipeline,
    _records_for,
)
from lakehouse.cli.render import (
    _as_dict,
    _err,
    _out,
    _print_failures,
    _print_json,
    _RunProgress,
    _runs_table,
    _styled,
    _tables_table,
    _url,
    run_summary,
)
from lakehouse.cli.tables import _tables_info


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
    batch_size: BatchSizeOpt = None,
    batch_bytes: BatchBytesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy files into the local landing area and ingest them through the pending set and drains (exit 1
    if any failed)."""
    pipeline = _pipeline(ctx, no_spark=no_spark, route=route, batch_size=batch_size, batch_bytes=batch_bytes)
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
        if not started.get("queued"):
            duplicates.append(started)
    _drain_and_report(pipeline, run_ids, duplicates, as_json=as_json)


def _drain_and_report(
    pipeline: Any, run_ids: list[str], duplicates: list[dict[str, Any]], *, as_json: bool
) -> None:
    """Run the drains until nothing is pending, then print each object's outcome (exit 1 if one failed)."""
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


_SHOWN = 5  # unknown keys named on the terminal


def backfill(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Only keys under this prefix of the landing bucket.")] = "",
    no_spark: NoSparkOpt = False,
    batch_size: BatchSizeOpt = None,
    batch_bytes: BatchBytesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest objects that already sit in the landing bucket (their current versions), exactly once with
    respect to what was ingested before: a version already processed is not queued again, and one whose
    app transaction is in the table adds nothing."""
    from lakehouse.errors import LakehouseError
    from lakehouse.stages.backfill import BackfilledObject, BackfillRequest

    pipeline = _pipeline(ctx, no_spark=no_spark, batch_size=batch_size, batch_bytes=batch_bytes)
    objects: list[BackfilledObject] = []
    try:
        result = pipeline.backfill(BackfillRequest(prefix=prefix), on_page=objects.extend)
    except LakehouseError as exc:
        raise _fail(str(exc), 1) from exc
    if result.unknown:
        shown = ", ".join(result.unknown_keys[:_SHOWN]) + (" ..." if result.unknown > _SHOWN else "")
        _err().print(f"skipped {result.unknown} key(s) no dataset contract claims: {shown}", highlight=False)
    if not objects:
        raise _fail(f"no object under s3://{result.bucket}/{prefix} belongs to a dataset", 1)
    run_ids = [o.object_id for o in objects]
    duplicates = [{"run_id": o.object_id} for o in objects if not o.queued]
    _drain_and_report(pipeline, run_ids, duplicates, as_json=as_json)


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


def watch(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Process what is there now, then exit.")] = False,
    max_runs: Annotated[int | None, typer.Option("--max-runs", help="Stop after this many runs.")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Stop after this many seconds.")] = None,
    debounce_ms: Annotated[
        int, typer.Option("--debounce-ms", help="A file is complete once its size is stable this long.")
    ] = 500,
    no_spark: NoSparkOpt = False,
    batch_size: BatchSizeOpt = None,
    batch_bytes: BatchBytesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Watch the landing area (<home>/buckets/landing/) and ingest each new complete file (pending set,
    drains)."""
    from lakehouse.local.watch import LandingWatcher

    pipeline = _pipeline(ctx, no_spark=no_spark, batch_size=batch_size, batch_bytes=batch_bytes)
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


def resume(ctx: typer.Context, no_spark: NoSparkOpt = False, as_json: JsonOpt = False) -> None:
    """Finish the runs a crash interrupted (they stay queued); each resumes after its own commit."""
    pipeline = _pipeline(ctx, no_spark=no_spark)
    with _RunProgress(not as_json) as progress:
        records = pipeline.drain(on_start=progress.started, on_done=progress.finished)
    if not records and not as_json:
        _out().print("no interrupted runs")
    _report_runs(pipeline, [r.run_id for r in records], "Resumed runs", as_json)


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
