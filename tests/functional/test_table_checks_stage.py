"""The maintenance stage's table checks: PlanTableChecks compiles only the table-scoped checks,
EvaluateTableChecks compares Athena's row with their thresholds, and bad input is a named error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lakehouse.errors import InvalidInputError
from lakehouse.settings import Settings
from lakehouse.stages import maintenance
from lakehouse.stages.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
TABLE_CHECKS = """
  - {name: at_most_15, type: row_count, max: 15, scope: table}
  - name: lines_have_orders
    type: referential_integrity
    column: l_orderkey
    reference: {dataset: orders, column: o_orderkey}
    scope: table
    severity: warn
"""


def _runtime(tmp_path: Path, extra: str = TABLE_CHECKS) -> Runtime:
    datasets = tmp_path / "datasets"
    shutil.copytree(ROOT / "datasets", datasets)
    contract = datasets / "lineitem.yaml"
    contract.write_text(contract.read_text().replace("\nchecks:\n", "\nchecks:\n" + extra.lstrip("\n"), 1))
    return Runtime.create(
        Settings(LAKEHOUSE_BACKEND="local", LAKEHOUSE_HOME=tmp_path / "home", DATASETS_DIR=datasets)
    )


def _rows(*values: str | None) -> dict[str, object]:
    header = {"Data": [{"VarCharValue": f"c{i}"} for i in range(len(values))]}
    return {"Rows": [header, {"Data": [{} if v is None else {"VarCharValue": v} for v in values]}]}


def test_plan_compiles_only_the_table_checks_and_names_a_missing_reference(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    write_deltalake(rt.table_uri("lineitem"), pa.table({"l_orderkey": pa.array([1, 2], pa.int64())}))

    plan = maintenance.maintenance_task(rt, {"action": "plan_checks", "dataset": "lineitem"})

    assert plan["has_checks"] is True
    assert plan["checks"] == ["at_most_15", "lines_have_orders"]
    assert plan["missing_references"] == {"lines_have_orders": "orders"}
    assert "_run_id" not in plan["checks_query"]  # the whole table
    assert "line_unique" not in plan["checks_query"]  # batch checks run at ingest, not here


def test_a_dataset_without_table_checks_plans_nothing(tmp_path: Path) -> None:
    rt = _runtime(tmp_path, extra="")
    plan = maintenance.plan_table_checks(rt, {"dataset": "lineitem"})
    assert plan == {"has_checks": False, "checks_query": None, "checks": [], "missing_references": {}}


def test_evaluate_compares_the_metrics_with_the_thresholds(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    plan = {"has_checks": True, "checks_query": "SELECT 1", "checks": ["at_most_15", "lines_have_orders"]}
    plan["missing_references"] = {"lines_have_orders": "orders"}
    event = {
        "action": "evaluate_checks",
        "dataset": "lineitem",
        "table_checks": plan,
        "check_rows": _rows("20.0", None),
    }

    outcome = maintenance.maintenance_task(rt, event)

    assert outcome["passed"] is False
    assert outcome["failed"] == ["at_most_15"]
    assert outcome["warnings"] == ["lines_have_orders"]
    first, second = outcome["results"]
    assert (first["metric"], first["max"], first["passed"]) == (20.0, 15.0, False)
    assert second["note"] == "reference table 'orders' does not exist yet"


def test_bad_input_is_a_named_error(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    with pytest.raises(InvalidInputError, match="unknown action 'compact'"):
        maintenance.maintenance_task(rt, {"action": "compact", "dataset": "lineitem"})
    with pytest.raises(InvalidInputError, match="lacks 'dataset'"):
        maintenance.plan_table_checks(rt, {})
    gone = {"has_checks": True, "checks_query": "SELECT 1", "checks": ["renamed_check"]}
    with pytest.raises(InvalidInputError, match="no longer declares the table check"):
        maintenance.evaluate_table_checks(
            rt, {"dataset": "lineitem", "table_checks": gone, "check_rows": _rows("1")}
        )
    with pytest.raises(InvalidInputError, match=r"\$.table_checks"):
        maintenance.evaluate_table_checks(rt, {"dataset": "lineitem", "table_checks": {"checks": 3}})
