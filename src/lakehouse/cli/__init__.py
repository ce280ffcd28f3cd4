"""`lakehouse`: run the pipeline on a laptop, query its tables, look after them.

Every command works on a local home (`--home`, default `./.lakehouse`, env `LAKEHOUSE_HOME`) and a folder
of dataset contracts (`--datasets`, default `./datasets`, env `LAKEHOUSE_DATASETS`). Human output goes
to the terminal (progress on stderr); `--json` prints one JSON document on stdout for scripts.

The commands live in one module per group (`ingest`, `invoke`, `tables`, `ledger`); `base` holds what
they share and `render` the Rich tables and JSON printing. They are registered here, in `--help` order.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from lakehouse.cli import ingest, invoke, ledger, tables
from lakehouse.cli.base import Globals, _runtime_for_home
from lakehouse.cli.ingest import _run_note
from lakehouse.cli.render import _err, _styled, run_summary

__all__ = ["_run_note", "_runtime_for_home", "app", "main", "run_summary"]

app = typer.Typer(
    name="lakehouse",
    help="Serverless Delta lakehouse, locally: the real state machine, handlers and jobs on your laptop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


app.command()(ingest.demo)
app.command()(ingest.run)
app.command()(ingest.watch)
app.command()(ingest.backfill)
app.command()(invoke.invoke)
app.command()(tables.query)
app.command("tables")(tables.tables_command)
app.command()(tables.history)
app.command()(tables.rollback)
app.command()(tables.maintain)
app.command()(tables.checks)
app.command()(ledger.runs)
app.command()(ingest.resume)
app.command()(ingest.rerun)
app.command()(ledger.quarantine)


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
