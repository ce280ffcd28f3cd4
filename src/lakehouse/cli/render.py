"""Rendering for the CLI: Rich consoles and tables on the terminal, JSON for scripts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from lakehouse.state import RunStatus


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


def _url(path: str | Path | None) -> str:
    return "" if not path else Path(path).resolve().as_uri()


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
