"""The state data models (lakehouse.state) against the state machines and docs/ARCHITECTURE.md."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from lakehouse import layout
from lakehouse.errors import ContractError, InvalidInputError
from lakehouse.stages.runtime import RunState
from lakehouse.state import (
    RUN_STATUS_MEANING,
    RUN_STATUSES,
    CommitResult,
    IngestState,
    MaintenanceItemState,
    MaintenanceState,
    PlannedTable,
    RunInput,
    RunRecord,
    _models_in,
)

ROOT = Path(__file__).resolve().parents[2]
STATEMACHINE = ROOT / "statemachine"
_PATH = re.compile(r"\$\$?(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\*\])*")


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("state_table", ROOT / "scripts" / "state_table.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- which model each state's input is ----------------------------------------------------------------

MAP_STATES = {"MaintainTables"}


def _states(asl: dict[str, Any], scope: str = "") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(scope, name, state) of every state, inside Map iterators too (scope: the Map's name)."""
    for name, state in asl["States"].items():
        yield scope, name, state
        inner = state.get("ItemProcessor") or state.get("Iterator")
        if inner:
            yield from _states(inner, name)


def _input_model(machine: str, scope: str) -> type[BaseModel]:
    if machine == "ingest":
        return IngestState
    return MaintenanceItemState if scope in MAP_STATES else MaintenanceState


def _parameter_paths(value: Any, key: str = "") -> Iterator[str]:
    """The JSONPaths a Parameters block reads (`key.$` values, inside intrinsic functions too)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _parameter_paths(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _parameter_paths(v, key)
    elif isinstance(value, str) and key.endswith(".$"):
        yield from _PATH.findall(value)


def _choice_variables(rule: dict[str, Any]) -> Iterator[str]:
    if "Variable" in rule:
        yield rule["Variable"]
    for sub in rule.get("And", []) + rule.get("Or", []) + ([rule["Not"]] if "Not" in rule else []):
        yield from _choice_variables(sub)


def asl_paths(machine: str) -> list[tuple[str, str, str]]:
    """(state, what, path) of every path the machine reads or writes in its own state data."""
    asl = json.loads((STATEMACHINE / f"{machine}.asl.json").read_text())
    out: list[tuple[str, str, str]] = []
    for scope, name, state in _states(asl):
        where = f"{scope}/{name}" if scope else name
        for field in ("InputPath", "OutputPath", "ResultPath", "ItemsPath"):
            if isinstance(state.get(field), str):
                out.append((where, field, state[field]))
        for catch in state.get("Catch", []):
            if isinstance(catch.get("ResultPath"), str):
                out.append((where, "Catch.ResultPath", catch["ResultPath"]))
        for rule in state.get("Choices", []):
            out += [(where, "Variable", v) for v in _choice_variables(rule)]
        # ItemSelector/Parameters of a Map read the outer state; a Task's Parameters its input.
        for block in ("Parameters", "ItemSelector"):
            out += [(where, block, p) for p in _parameter_paths(state.get(block))]
    return out


def _resolve(model: type[BaseModel], path: str) -> bool:
    """Whether `path` ($.a.b[*].c) names a field of `model`, through nested models and lists."""
    steps = [s for s in re.split(r"\.|(?=\[)", path.removeprefix("$")) if s and s != "[*]"]
    current: list[type[BaseModel]] = [model]
    for step in steps:
        found = [m.model_fields[step] for m in current if step in m.model_fields]
        if not found:
            return False
        current = [sub for info in found for sub in _models_in(info.annotation)]
        if not current and step != steps[-1]:
            # A field typed dict[str, Any] (a service's result): nothing below it is checked.
            return all(_is_open_dict(info.annotation) for info in found)
    return True


def _is_open_dict(annotation: Any) -> bool:
    return "dict" in str(annotation)


def _context_model(path: str) -> tuple[type[BaseModel], str] | None:
    """`$$.Map.Item.Value.x` reads an item of `$.tables`; other context paths name no state data."""
    prefix = "$$.Map.Item.Value"
    if path.startswith(prefix):
        return PlannedTable, "$" + path[len(prefix) :]
    return None


@pytest.mark.parametrize("machine", ["ingest", "maintenance"])
def test_every_asl_path_exists_in_the_models(machine: str) -> None:
    paths = asl_paths(machine)
    assert len(paths) > 20  # the walk found the machine's paths
    missing = []
    for where, what, path in paths:
        scope = where.split("/")[0] if "/" in where else ""
        model = _input_model(machine, scope)
        if what == "ItemSelector" or (what == "Parameters" and where in MAP_STATES):
            model = MaintenanceState  # a Map's selector reads the state the Map got
        if path.startswith("$$"):
            context = _context_model(path)
            if context is None:
                continue  # $$.Execution.Name etc.: Step Functions' context object
            model, path = context
        if not _resolve(model, path):
            missing.append(f"{where} {what} {path} (not in {model.__name__})")
    assert not missing, "\n".join(missing)


def test_the_path_check_catches_a_path_the_models_lack() -> None:
    assert _resolve(IngestState, "$.inspection.route")
    assert _resolve(IngestState, "$.commit.status")
    assert _resolve(MaintenanceState, "$.results[*].status")
    assert not _resolve(IngestState, "$.inspection.rout")
    assert not _resolve(IngestState, "$.commits.status")
    assert not _resolve(MaintenanceState, "$.results[*].state")


def test_the_ingest_asl_reads_the_choices_the_models_define() -> None:
    found = {p for _, what, p in asl_paths("ingest") if what == "Variable"}
    assert {"$.inspection.route", "$.commit.status", "$.inspection.has_checks", "$.checks.passed"} <= found


def test_architecture_tables_are_generated_from_the_models() -> None:
    script = _load_script()
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for name, table in script.TABLES.items():
        assert script.current(text, name) == table(), f"run python scripts/state_table.py --write ({name})"
    assert "`$.inspection`" in script.TABLES["state-table"]()
    assert '"committed"\\|"duplicate"' in script.TABLES["state-table"]()


def test_every_status_has_a_meaning_and_the_cli_styles_known_ones() -> None:
    assert set(RUN_STATUS_MEANING) == set(RUN_STATUSES)
    from lakehouse.cli.render import _STATUS_STYLE
    from lakehouse.local.report import _STATUS_COLOURS

    assert set(_STATUS_STYLE) <= set(RUN_STATUSES)
    assert set(_STATUS_COLOURS) <= set(RUN_STATUSES)


# -- parsing -------------------------------------------------------------------------------------------


def test_run_input_keeps_the_start_execution_shape() -> None:
    event = {
        "run_id": "orders-" + "a" * 40,
        "dataset": "orders",
        "bucket": "landing",
        "key": "orders/a.csv",
        "version_id": None,
        "etag": "e",
        "size": 3,
        "sequencer": "s",
        "event_time": "2026-01-01T00:00:00Z",
    }
    assert RunInput.model_validate(event).model_dump(mode="json") == event
    rerun = {**event, "txn_version": 2, "rerun_of": "orders-" + "b" * 40}
    assert RunInput.model_validate(rerun).model_dump(mode="json") == rerun


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"run_id": "../x", "dataset": "orders"}, InvalidInputError),
        ({"run_id": "r1", "dataset": "Orders/.."}, InvalidInputError),
        ({"run_id": "r1", "dataset": "orders", "txn_version": "x"}, InvalidInputError),
        ({"run_id": "r1", "dataset": "orders", "size": "big"}, InvalidInputError),
        ({"run_id": "r1"}, ContractError),
        ({"run": "r1"}, InvalidInputError),
    ],
)
def test_stage_input_is_rejected_with_a_lakehouse_error(event: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        RunState.parse(event)


def test_state_keeps_sections_the_asl_adds() -> None:
    state = {
        "run_id": "r1",
        "dataset": "orders",
        "lease": {"table": "orders", "owner": "r1", "expires_at": 1.5},
        "inspection": {
            "format": "csv",
            "compression": None,
            "size_bytes": 10,
            "route": "lambda",
            "table_uri": "/x",
            "app_id": "a",
            "version_before": -1,
            "has_checks": False,
            "checks_query": None,
            "missing_references": {},
            "has_derived": False,
            "derived_models": [],
        },
        "commit": {"status": "committed", "rows_written": 3, "engine": "spark"},
        "glue": {"job_run_id": "j", "job_run_state": "SUCCEEDED"},
        "error": {"Error": "X", "Cause": "y"},
        "something_new": {"a": 1},
    }
    parsed = IngestState.model_validate(state)
    assert parsed.inspection is not None
    assert parsed.inspection.route == "lambda"
    assert parsed.commit is not None
    assert parsed.commit.model_extra == {"engine": "spark"}
    assert parsed.model_extra == {"something_new": {"a": 1}}
    run = RunState.parse(state)
    assert run.inspection is not None
    assert run.inspection.app_id == "a"
    assert run.error.Error == "X"


def test_a_bad_section_is_an_invalid_input_error_naming_the_field() -> None:
    run = RunState.parse({"run_id": "r1", "dataset": "orders", "commit": {"status": "maybe"}})
    with pytest.raises(InvalidInputError, match=r"\$commit: status"):
        _ = run.commit


def test_commit_and_run_record_statuses_are_closed_sets() -> None:
    assert set(get_args(CommitResult.model_fields["status"].annotation)) == {"committed", "duplicate"}
    with pytest.raises(ValueError, match="status"):
        RunRecord.model_validate({"run_id": "r1", "status": "DONE"})


# -- layout --------------------------------------------------------------------------------------------


def test_layout_keys() -> None:
    where = layout.Layout("lake", "quarantine")
    assert where.table("orders") == layout.Location("lake", "tables/orders")
    assert where.derived("daily") == layout.Location("lake", "derived/daily")
    assert where.commit_result("r-1").s3_uri == "s3://lake/runs/r-1/commit.json"
    assert where.rejects("orders", "r-1").s3_uri == "s3://quarantine/rows/orders/r-1/rejects.parquet"
    assert where.quarantined_object("orders", "r-1", "a.csv").key == "objects/orders/r-1/a.csv"
    assert where.quarantine_reason("orders", "r-1", "a.csv").key == "objects/orders/r-1/a.csv.reason.json"
    for bad in (lambda: where.table("../x"), lambda: where.commit_result("../x")):
        with pytest.raises(InvalidInputError):
            bad()


def test_s3_and_local_paths_map_both_ways(tmp_path: Path) -> None:
    loc = layout.parse_s3_uri("s3a://lake/tables/orders")
    assert loc == layout.Location("lake", "tables/orders")
    assert layout.parse_s3_uri("/tmp/x") is None
    path = loc.local_path(tmp_path)
    assert path == tmp_path / "buckets" / "lake" / "tables" / "orders"
    assert layout.local_location(tmp_path, str(path)) == loc
    assert layout.local_location(tmp_path, str(path) + "/") == layout.Location("lake", "tables/orders/")
    assert layout.local_location(tmp_path, "/elsewhere/file") is None


def _stage_events() -> list[Path]:
    """The sample events (events/*.json) that are a state machine's state (they name a run)."""
    found = []
    for path in sorted((ROOT / "events").glob("*.json")):
        event = json.loads(path.read_text())
        if "run_id" in event.get("run", event):
            found.append(path)
    return found


@pytest.mark.parametrize("path", _stage_events(), ids=lambda p: p.stem)
def test_the_sample_stage_events_parse_as_the_state(path: Path) -> None:
    event = json.loads(path.read_text())
    state = event.get("run", event)
    model = MaintenanceItemState if "plan" in state else IngestState
    parsed = model.model_validate(state)
    assert parsed.model_dump(mode="json", exclude_unset=True) == state
