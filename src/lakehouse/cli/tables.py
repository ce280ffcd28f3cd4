"""Commands on tables: query, tables, history, rollback, maintain, checks."""

from __future__ import annotations

import contextlib
import csv
import io
import sys
import uuid
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from lakehouse.cli.base import JsonOpt, _fail, _pipeline, _runtime, _target_or_exit
from lakehouse.cli.render import _err, _out, _print_json, _print_result_table, _tables_table


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


def tables_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The dataset tables and derived models: rows, versions, files."""
    info = _tables_info(_runtime(ctx))
    if as_json:
        _print_json(info)
    else:
        _out().print(_tables_table(info))


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


def maintain(
    ctx: typer.Context,
    table: str,
    retention_hours: Annotated[
        int, typer.Option(help="VACUUM keeps files removed within this window.")
    ] = 168,
    as_json: JsonOpt = False,
) -> None:
    """Compact (OPTIMIZE), checkpoint and vacuum one table, under its lease; then run its table-scoped
    checks (exit status 1 when one of severity `fail` fails)."""
    from lakehouse import tables
    from lakehouse.errors import LakehouseError

    rt = _runtime(ctx)
    target = _target_or_exit(rt, table)
    _sweep_stranded(ctx, rt, target.source)
    with _table_lease(rt, target.source):
        try:
            result = tables.maintain(
                target.uri, retention_hours=retention_hours, storage_options=rt.storage_options
            )
        except LakehouseError as exc:
            raise _fail(str(exc), 1) from exc
    checked = _table_checks(rt, target.source) if target.contract is not None else None
    if as_json:
        _print_json({**result, "checks": checked} if checked is not None else result)
    else:
        _out().print(
            f"{table}: files {result['files_before']} -> {result['files_after']}, "
            f"checkpoint at version {result['checkpoint_version']}, vacuumed {result['vacuumed_files']} "
            f"file(s), now at version {result['version_after']}",
            highlight=False,
        )
        if checked is not None:
            _print_checks(f"Table checks of {table}", checked["results"])
    if checked is not None and not checked["passed"]:
        raise typer.Exit(1)


def _table_checks(rt: Any, dataset: str) -> dict[str, Any] | None:
    """The table-scoped checks of `dataset` on the local query engine (as the maintenance machine runs
    them on Athena); None when it declares none."""
    from lakehouse.local.athena import LocalQueryEngine, QueryError
    from lakehouse.stages.maintenance import run_table_checks

    engine = LocalQueryEngine(rt)

    def metrics(sql: str) -> list[float | None]:
        rows = engine.query(sql).rows
        return [None if v is None else float(v) for v in rows[0]] if rows else []

    try:
        return run_table_checks(rt, dataset, metrics)
    except QueryError as exc:
        raise _fail(f"{dataset}: the table checks' query failed: {exc}", 1) from exc


def _print_checks(title: str, results: list[dict[str, Any]]) -> None:
    out = Table(title=title, title_justify="left")
    for column in ("check", "metric", "min", "max", "severity", "result", "note"):
        out.add_column(column)
    for r in results:
        verdict = Text("passed", style="green") if r["passed"] else Text("FAILED", style="red")
        row = (r["name"], str(r["metric"]), str(r["min"]), str(r["max"]), r["severity"])
        out.add_row(*row, verdict, r.get("note") or "")
    _out().print(out)


def _sweep_stranded(ctx: typer.Context, rt: Any, dataset: str) -> None:
    """What PlanMaintenance does first (lakehouse.stages.sweep): a drain whose end was never settled is
    settled, and objects no drain would take are drained now, before the table's lease is taken."""
    from lakehouse.stages.sweep import sweep_drains

    swept = sweep_drains(rt, [dataset])
    if any(s["kicked"] for s in swept.values()):
        _err().print(f"{dataset}: draining objects no drain had taken ({swept})", highlight=False)
        _pipeline(ctx).drain()


def checks(ctx: typer.Context, table: str, as_json: JsonOpt = False) -> None:
    """Run every check of the dataset now, each over the whole table (the Athena SQL the pipeline and
    maintenance run, batch checks measuring the table as one batch), and show the results."""
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
        _print_checks(f"Checks of {table}", results)
    if not passed:
        raise typer.Exit(1)
