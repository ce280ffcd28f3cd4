"""Every verb works on derived tables, a rollback refreshes what derives from the table, and a missing
reference table fails a referential check the same way, with its name, in the pipeline and in `checks`."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_helpers import Cli, write_lineitem, write_orders

pytestmark = pytest.mark.e2e


def _derived_total(cli: Cli) -> int:
    rows = cli("query", "SELECT sum(orders) AS n FROM orders_by_status", "-f", "json").json()
    return int(rows[0]["n"])


def test_verbs_on_a_derived_table_and_rollback_refreshes_it(cli: Cli, tmp_path: Path) -> None:
    first = cli("run", str(write_orders(tmp_path / "orders_1.csv", 1, 4)), "--no-spark", "--json")
    assert first.exit_code == 0, first.stderr
    version_1 = first.json()["runs"][0]["table_version"]
    assert cli("run", str(write_orders(tmp_path / "orders_2.csv", 100, 6)), "--no-spark").exit_code == 0
    assert _derived_total(cli) == 10

    rolled = cli("rollback", "orders", "--version", str(version_1), "--json")
    assert rolled.exit_code == 0, rolled.stderr
    assert [m["model"] for m in rolled.json()["derived"]] == ["orders_by_status"]
    source_rows = cli("query", "SELECT count(*) AS n FROM orders", "-f", "json").json()[0]["n"]
    assert source_rows == 4
    assert _derived_total(cli) == source_rows  # the gold table follows its source

    history = cli("history", "orders_by_status", "--json")
    assert history.exit_code == 0, history.stderr
    assert len(history.json()) >= 3  # created, refreshed, refreshed after the rollback
    maintained = cli("maintain", "orders_by_status", "--json")
    assert maintained.exit_code == 0, maintained.stderr
    checks = cli("checks", "orders_by_status")
    assert checks.exit_code == 0, checks.stderr
    assert "derived from orders" in checks.stdout
    back = cli("rollback", "orders_by_status", "--version", "0")
    assert back.exit_code == 0, back.stderr
    nothing = cli("quarantine", "orders_by_status", "--json")
    assert nothing.exit_code == 0, nothing.stderr
    assert nothing.json() == {"files": [], "rejected_rows": []}


def test_missing_reference_table_fails_alike_in_the_pipeline_and_in_checks(cli: Cli, tmp_path: Path) -> None:
    # lineitem's `orders_exist` refers to `orders`, which has no table yet in this home.
    run = cli("run", str(write_lineitem(tmp_path / "lineitem_1.csv", 1, 6)), "--no-spark", "--json")
    assert run.exit_code == 0, run.stderr  # orders_exist is a warning
    note = "reference table 'orders' does not exist yet"
    assert run.json()["runs"][0]["check_notes"] == {"orders_exist": note}
    [record] = cli("runs", "--json").json()
    in_pipeline = {r["name"]: r for r in record["checks"]["results"]}["orders_exist"]
    assert in_pipeline["passed"] is False
    assert in_pipeline["note"] == "reference table 'orders' does not exist yet"

    now = cli("checks", "lineitem", "--json")
    assert now.exit_code == 0, now.stderr  # only a warning failed
    in_checks = {r["name"]: r for r in now.json()["results"]}["orders_exist"]
    assert in_checks == in_pipeline
    human = cli("checks", "lineitem")
    assert "reference table 'orders' does not exist yet" in human.stdout
