"""Commands on the run ledger and the quarantine: runs, quarantine."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from lakehouse.cli.base import JsonOpt, _fail, _runtime, _target_or_exit
from lakehouse.cli.render import _out, _print_failures, _print_json, _runs_table, _url, run_summary


def runs(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Option("--id", help="Show one run in detail.")] = None,
    limit: Annotated[int, typer.Option(help="How many recent runs.")] = 50,
    drains: Annotated[
        bool, typer.Option("--drains", help="Also list the drains (the executions that took the objects).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """The run ledger: each object's status, path taken and per-state timings."""
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
    from lakehouse.stages.drain import is_drain

    records = [r for r in ledger.list(limit=10_000) if drains or not is_drain(str(r.get("run_id", "")))]
    records = records[:limit]
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
