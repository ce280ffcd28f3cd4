"""Exactly once per object version, through the CLI: a failed first commit, and reruns."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from e2e_helpers import DATASETS, Cli, write_lineitem

pytestmark = pytest.mark.e2e


def _rows(cli: Cli, table: str) -> int:
    tables = {t["table"]: t for t in cli("tables", "--json").json()}
    return int(tables[table]["rows"]) if table in tables else 0


def _count(cli: Cli, table: str) -> int:
    result = cli("query", f"SELECT count(*) AS n FROM {table}", "--format", "json")
    assert result.exit_code == 0, result.stderr
    return int(result.json()[0]["n"])


def test_a_failed_first_commit_of_a_new_append_table_leaves_no_rows(cli: Cli, tmp_path: Path) -> None:
    bad = write_lineitem(tmp_path / "lineitem_bad.csv", 1, 20, quantity=0)  # fails quantity_positive

    result = cli("run", str(bad), "--no-spark", "--json")

    assert result.exit_code == 1
    run = result.json()["runs"][0]
    assert run["status"] == "QUARANTINED"
    assert _rows(cli, "lineitem") == 0
    assert _count(cli, "lineitem") == 0
    history = cli("history", "lineitem", "--json").json()
    assert [c["operation"] for c in history] == ["DELETE", "WRITE"]


def test_rerun_after_a_rollback_ingests_the_object_exactly_once_more(cli: Cli, tmp_path: Path) -> None:
    good = write_lineitem(tmp_path / "lineitem_good.csv", 1, 10)
    bad = write_lineitem(tmp_path / "lineitem_zero.csv", 100, 20, quantity=0)
    assert cli("run", str(good), "--no-spark").exit_code == 0
    failed = cli("run", str(bad), "--no-spark", "--json").json()["runs"][0]
    assert failed["status"] == "QUARANTINED"
    assert _count(cli, "lineitem") == 10

    # A plain duplicate of the object still adds nothing.
    again = cli("run", str(bad), "--no-spark", "--json").json()["runs"][0]
    assert again["run_id"] == failed["run_id"]
    assert _count(cli, "lineitem") == 10

    # Zero quantities are fine after all: fix the contract, rerun the quarantined object.
    fixed = tmp_path / "datasets"
    shutil.copytree(DATASETS, fixed)
    contract = fixed / "lineitem.yaml"
    contract.write_text(
        contract.read_text().replace("range_min: 1, range_max: 50", "range_min: 0, range_max: 50")
    )
    fixed_cli = Cli(cli.home, fixed)
    rerun = fixed_cli("rerun", failed["run_id"], "--no-spark", "--json")
    assert rerun.exit_code == 0, rerun.stdout + rerun.stderr
    rerun_run = rerun.json()["runs"][0]
    assert rerun_run["status"] == "SUCCEEDED"
    assert rerun_run["run_id"] != failed["run_id"]
    assert _count(fixed_cli, "lineitem") == 30

    # Once more is once: rerunning the same quarantined run again is refused, duplicates add nothing.
    refused = fixed_cli("rerun", failed["run_id"], "--no-spark")
    assert refused.exit_code == 1
    assert "ingested again by run" in refused.stderr
    duplicate = fixed_cli("run", str(bad), "--no-spark", "--json").json()["runs"][0]
    assert duplicate["run_id"] == failed["run_id"]  # the quarantined run's record, nothing new ran
    assert _count(fixed_cli, "lineitem") == 30

    # A run whose rows are in the table cannot be rerun by mistake.
    good_run = next(r for r in fixed_cli("runs", "--json").json() if r["key"].endswith("lineitem_good.csv"))
    refused = fixed_cli("rerun", good_run["run_id"], "--no-spark")
    assert refused.exit_code == 1
    assert "would add them twice" in refused.stderr
