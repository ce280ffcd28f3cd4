"""Run reports: one static HTML page per run and an index, under `<home>/reports/`.

The state-machine graph is drawn from the ASL itself as inline SVG (no JavaScript, no network): states
are laid out in layers by their longest distance from StartAt, the path the run took is highlighted and
each visited state shows its time.
"""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lakehouse import identifiers

NODE_W = 190
NODE_H = 44
GAP_X = 26
GAP_Y = 34
MARGIN = 20

_STATUS_COLOURS = {
    "SUCCEEDED": "#1a7f37",
    "DUPLICATE": "#6e7781",
    "QUARANTINED": "#cf222e",
    "FAILED": "#cf222e",
}


def _targets(state: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(target, kind) of every transition out of a state."""
    out: list[tuple[str, str]] = []
    if state.get("Next"):
        out.append((str(state["Next"]), "next"))
    for choice in state.get("Choices") or []:
        if choice.get("Next"):
            out.append((str(choice["Next"]), "choice"))
    if state.get("Default"):
        out.append((str(state["Default"]), "choice"))
    for catch in state.get("Catch") or []:
        if catch.get("Next"):
            out.append((str(catch["Next"]), "catch"))
    seen: set[str] = set()
    unique = []
    for target, kind in out:
        if target not in seen:
            seen.add(target)
            unique.append((target, kind))
    return unique


def layout(definition: Mapping[str, Any]) -> tuple[dict[str, tuple[int, int]], list[tuple[str, str, str]]]:
    """Grid positions (column, layer) of the top-level states, and the edges (source, target, kind)."""
    states: Mapping[str, Any] = definition.get("States") or {}
    start = str(definition.get("StartAt"))
    edges = [
        (name, target, kind)
        for name, st in states.items()
        for target, kind in _targets(st)
        if target in states
    ]
    # Longest-path layering over the DAG of forward edges (a DFS back edge would be a loop; none is followed).
    order: list[str] = []
    state_of: dict[str, int] = {}

    def visit(node: str) -> None:
        state_of[node] = 1
        for target, _ in _targets(states.get(node, {})):
            if target in states and state_of.get(target, 0) == 0:
                visit(target)
        state_of[node] = 2
        order.append(node)

    if start in states:
        visit(start)
    for name in states:
        if state_of.get(name, 0) == 0:
            visit(name)
    order.reverse()
    rank = {name: i for i, name in enumerate(order)}
    layer = dict.fromkeys(states, 0)
    for name in order:
        for target, _ in _targets(states.get(name, {})):
            if target in states and rank[target] > rank[name]:
                layer[target] = max(layer[target], layer[name] + 1)
    columns: dict[int, int] = {}
    positions: dict[str, tuple[int, int]] = {}
    for name in order:
        column = columns.get(layer[name], 0)
        columns[layer[name]] = column + 1
        positions[name] = (column, layer[name])
    return positions, edges


def render_svg(
    definition: Mapping[str, Any], path: Sequence[str], timings: Mapping[str, float], status: str
) -> str:
    """The state machine as SVG, the run's path in colour, each visited state with its time."""
    states: Mapping[str, Any] = definition.get("States") or {}
    positions, edges = layout(definition)
    if not positions:
        return "<svg xmlns='http://www.w3.org/2000/svg'/>"
    width = MARGIN * 2 + (max(c for c, _ in positions.values()) + 1) * (NODE_W + GAP_X)
    height = MARGIN * 2 + (max(layer for _, layer in positions.values()) + 1) * (NODE_H + GAP_Y)
    visited = set(path)
    taken = {(a, b) for a, b in itertools.pairwise(path)}
    failed = status in ("FAILED", "QUARANTINED")

    def box(name: str) -> tuple[float, float]:
        column, layer = positions[name]
        return MARGIN + column * (NODE_W + GAP_X), MARGIN + layer * (NODE_H + GAP_Y)

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='graph' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='state machine graph'>",
        "<defs>"
        "<marker id='arrow' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='7' markerHeight='7' "
        "orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' fill='#8c959f'/></marker>"
        "<marker id='arrow-taken' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='7' markerHeight='7' "
        "orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' fill='#0969da'/></marker>"
        "</defs>",
    ]
    for source, target, kind in edges:
        (sx, sy), (tx, ty) = box(source), box(target)
        x1, y1 = sx + NODE_W / 2, sy + NODE_H
        x2, y2 = tx + NODE_W / 2, ty
        is_taken = (source, target) in taken
        colour = "#0969da" if is_taken else "#d0d7de"
        dash = " stroke-dasharray='5,4'" if kind == "catch" and not is_taken else ""
        mid = (y1 + y2) / 2
        if y2 <= y1:  # a transition to an earlier layer: loop around the side
            mid_x = max(x1, x2) + NODE_W / 2 + GAP_X / 2
            d = f"M{x1},{y1} C{mid_x},{y1 + 40} {mid_x},{y2 - 40} {x2},{y2}"
        else:
            d = f"M{x1},{y1} C{x1},{mid} {x2},{mid} {x2},{y2}"
        marker = "arrow-taken" if is_taken else "arrow"
        parts.append(
            f"<path class='edge{' taken' if is_taken else ''}' d='{d}' fill='none' stroke='{colour}' "
            f"stroke-width='{3 if is_taken else 1.2}'{dash} marker-end='url(#{marker})'/>"
        )
    for name, (_column, _layer) in positions.items():
        x, y = box(name)
        kind = str(states[name].get("Type", ""))
        if name in visited:
            end_fail = failed and kind == "Fail"
            fill, stroke = ("#ffebe9", "#cf222e") if end_fail else ("#dafbe1", "#1a7f37")
        else:
            fill, stroke = "#f6f8fa", "#d0d7de"
        rx = 22 if kind == "Choice" else 6
        label = html.escape(name)
        timing = timings.get(name)
        sub = f"{kind} · {timing:.0f} ms" if timing is not None else kind
        parts.append(
            f"<g class='state{' visited' if name in visited else ''}' data-state='{label}'>"
            f"<rect x='{x}' y='{y}' width='{NODE_W}' height='{NODE_H}' rx='{rx}' fill='{fill}' "
            f"stroke='{stroke}' stroke-width='{2 if name in visited else 1}'/>"
            f"<text x='{x + NODE_W / 2}' y='{y + 18}' text-anchor='middle' font-size='12' "
            f"font-weight='{600 if name in visited else 400}'>{label}</text>"
            f"<text x='{x + NODE_W / 2}' y='{y + 34}' text-anchor='middle' font-size='10' "
            f"fill='#57606a'>{html.escape(sub)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1f2328}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left}
th{background:#f6f8fa} .status{font-weight:700} .pass{color:#1a7f37} .fail{color:#cf222e} .warn{color:#9a6700}
.layout{display:flex;gap:32px;align-items:flex-start;flex-wrap:wrap} pre{background:#f6f8fa;padding:8px;
font-size:12px;max-width:900px;overflow:auto;white-space:pre-wrap} svg text{font-family:inherit}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _rows(pairs: Sequence[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs)


def timings_by_state(record: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for visit in record.get("states") or []:
        if visit.get("duration_ms") is not None:
            out[visit["name"]] = out.get(visit["name"], 0.0) + float(visit["duration_ms"])
    return out


def render_run(record: Mapping[str, Any], definition: Mapping[str, Any]) -> str:
    status = str(record.get("status", ""))
    colour = _STATUS_COLOURS.get(status, "#1f2328")
    commit = record.get("commit") or {}
    checks = (record.get("checks") or {}).get("results") or []
    error = record.get("error") or {}
    summary = [
        ("run id", record.get("run_id")),
        ("dataset", record.get("dataset")),
        ("object", f"s3://{record.get('bucket')}/{record.get('key')}"),
        ("route", record.get("route")),
        ("duration", f"{record.get('duration_ms')} ms"),
        ("rows read", commit.get("rows_read")),
        ("rows written", commit.get("rows_written")),
        ("rows rejected", commit.get("rows_rejected")),
        ("table version before", record.get("version_before")),
        ("version committed", record.get("version_after")),
        ("table version now", record.get("table_version")),
        ("finished", record.get("finished_at")),
    ]
    check_rows = "".join(
        f"<tr class='check'><td>{_e(c.get('name'))}</td><td>{_e(c.get('metric'))}</td>"
        f"<td>{_e(c.get('min'))}</td><td>{_e(c.get('max'))}</td><td>{_e(c.get('severity'))}</td>"
        f"<td class='{'pass' if c.get('passed') else ('warn' if c.get('severity') == 'warn' else 'fail')}'>"
        f"{'passed' if c.get('passed') else 'FAILED'}</td></tr>"
        for c in checks
    )
    timing_rows = "".join(
        f"<tr class='timing' data-state='{_e(v.get('name'))}'><td>{_e(v.get('name'))}</td>"
        f"<td>{_e(v.get('duration_ms'))}</td><td>{_e(v.get('entered'))}</td></tr>"
        for v in record.get("states") or []
    )
    error_html = ""
    if error:
        error_html = (
            "<h2>Error</h2><table>"
            + _rows([("error", error.get("error")), ("message", error.get("message"))])
            + "</table>"
        )
        quarantine = record.get("quarantine") or {}
        if quarantine:
            error_html += (
                "<table>"
                + _rows(
                    [
                        ("quarantined object", quarantine.get("object_uri")),
                        ("reason file", quarantine.get("reason_uri")),
                    ]
                )
                + "</table>"
            )
        rollback = record.get("rollback") or {}
        if rollback:
            error_html += (
                "<table>"
                + _rows(
                    [
                        ("rolled back", rollback.get("restored")),
                        ("restored to version", rollback.get("restored_to")),
                    ]
                )
                + "</table>"
            )
    svg = render_svg(definition, list(record.get("path") or []), timings_by_state(record), status)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>lakehouse run {_e(record.get('run_id'))}</title><style>{_CSS}</style></head><body>"
        f"<p><a href='index.html'>&larr; all runs</a></p>"
        f"<h1>Run {_e(record.get('run_id'))}</h1>"
        f"<p class='status' style='color:{colour}' id='status'>{_e(status)}</p>"
        f"<div class='layout'><div><h2>Summary</h2><table id='summary'>{_rows(summary)}</table>"
        f"<h2>Checks</h2><table id='checks'><tr><th>check</th><th>metric</th><th>min</th><th>max</th>"
        f"<th>severity</th><th>result</th></tr>{check_rows}</table>"
        f"{error_html}"
        f"<h2>State timings</h2><table id='timings'><tr><th>state</th><th>ms</th><th>entered</th></tr>"
        f"{timing_rows}</table></div>"
        f"<div><h2>Path through IngestStateMachine</h2>{svg}</div></div>"
        f"<h2>Checks query</h2><pre>{_e(record.get('checks_query'))}</pre>"
        f"<h2>Commit</h2><pre>{_e(json.dumps(commit, indent=2, default=str))}</pre>"
        "</body></html>"
    )


def render_index(records: Sequence[Mapping[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td><a href='{_e(r.get('run_id'))}.html'>{_e(r.get('run_id'))}</a></td>"
        f"<td>{_e(r.get('dataset'))}</td><td>{_e(r.get('key'))}</td>"
        f"<td style='color:{_STATUS_COLOURS.get(str(r.get('status')), '#1f2328')}'>{_e(r.get('status'))}</td>"
        f"<td>{_e(r.get('route'))}</td><td>{_e((r.get('commit') or {}).get('rows_written'))}</td>"
        f"<td>{_e(r.get('table_version'))}</td><td>{_e(r.get('duration_ms'))}</td>"
        f"<td>{_e(r.get('finished_at') or r.get('updated_at'))}</td></tr>"
        for r in records
        if r.get("path")  # only runs this executor recorded have a report
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>lakehouse runs</title>"
        f"<style>{_CSS}</style></head><body><h1>Local pipeline runs</h1><table id='runs'>"
        "<tr><th>run</th><th>dataset</th><th>key</th><th>status</th><th>route</th><th>rows written</th>"
        f"<th>table version</th><th>ms</th><th>finished</th></tr>{rows}</table></body></html>"
    )


def write_reports(
    home: Path, record: Mapping[str, Any], definition: Mapping[str, Any], records: Sequence[Mapping[str, Any]]
) -> Path:
    """Write `<home>/reports/<run_id>.html` and refresh `index.html`; return the run's page."""
    folder = Path(home).resolve() / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / f"{identifiers.run_id(record['run_id'])}.html"
    page.write_text(render_run(record, definition), encoding="utf-8")
    others = [r for r in records if r.get("run_id") != record.get("run_id")]
    merged = sorted(
        [dict(record), *others],
        key=lambda r: str(r.get("finished_at") or r.get("updated_at") or ""),
        reverse=True,
    )
    (folder / "index.html").write_text(render_index(merged), encoding="utf-8")
    return page
