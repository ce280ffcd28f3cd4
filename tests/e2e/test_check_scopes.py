"""Check scopes end to end: batch checks (the default) measure each drain's rows after its commit, a
failing one rolls the batch back and quarantines the offending object while the others commit; table
checks do not run at ingest but in maintenance (`lakehouse maintain`), where a failure is reported with
its metric and thresholds and changes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from e2e_helpers import DATASETS, ROOT, Cli, write_lineitem
from test_crash_resume import table_rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _datasets(tmp_path: Path, extra_check: str) -> Path:
    folder = tmp_path / "datasets"
    shutil.copytree(DATASETS, folder)
    contract = folder / "lineitem.yaml"
    text = contract.read_text()
    assert "\nchecks:\n" in text
    contract.write_text(text.replace("\nchecks:\n", f"\nchecks:\n  - {extra_check}\n", 1))
    return folder


def test_a_new_key_equal_to_an_existing_one_quarantines_only_its_object(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    first = write_lineitem(tmp_path / "lineitem_first.csv", 1, 20)
    assert cli("run", str(first), "--no-spark", "--json").exit_code == 0
    good = [write_lineitem(tmp_path / f"lineitem_{n}.csv", 1000 + n * 100, 10) for n in range(4)]
    clash = write_lineitem(tmp_path / "lineitem_clash.csv", 5, 5)  # keys 5..9 exist already

    result = cli("run", *map(str, [*good[:2], clash, *good[2:]]), "--no-spark", "--json")

    runs = {Path(r["key"]).name: r for r in result.json()["runs"]}
    assert {n: r["status"] for n, r in runs.items()} == {
        **{p.name: "SUCCEEDED" for p in good},
        "lineitem_clash.csv": "QUARANTINED",
    }
    run_id = runs["lineitem_clash.csv"]["run_id"]
    reason = (
        cli.home
        / "buckets"
        / "quarantine"
        / "objects"
        / "lineitem"
        / run_id
        / "lineitem_clash.csv.reason.json"
    )
    text = reason.read_text()
    assert "line_unique" in text
    # The batch's metric: none of its 5 rows has a key that occurs once in the table (a whole-table
    # uniqueness would have said 20 distinct / 25 rows = 0.8).
    failed = [r for r in _check_results(text) if r["name"] == "line_unique"]
    assert failed
    assert failed[0]["metric"] == 0.0
    assert failed[0]["passed"] is False
    rows = table_rows(cli.home)
    assert sum(rows.values()) == 20 + 4 * 10
    assert max(rows.values()) == 1


def _check_results(text: str) -> list[dict[str, object]]:
    """Every {"name", "metric", ...} check result found anywhere in the reason document."""
    found: list[dict[str, object]] = []

    def walk(value: object) -> None:
        if isinstance(value, str) and value.startswith("["):
            try:
                value = json.loads(value)
            except ValueError:
                return
        if isinstance(value, dict):
            if "name" in value and "metric" in value:
                found.append(value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(json.loads(text))
    return found


def test_table_checks_run_in_maintenance_not_at_ingest(tmp_path: Path) -> None:
    cli = Cli(
        tmp_path / "home", _datasets(tmp_path, "{name: at_most_15, type: row_count, max: 15, scope: table}")
    )
    source = write_lineitem(tmp_path / "lineitem_a.csv", 1, 20)

    ingested = cli("run", str(source), "--no-spark", "--json")

    assert ingested.exit_code == 0, ingested.stdout + ingested.stderr
    [run] = ingested.json()["runs"]
    assert run["status"] == "SUCCEEDED"
    assert "at_most_15" not in json.dumps(run.get("checks"))  # not evaluated after the commit

    maintained = cli("maintain", "lineitem", "--json")

    assert maintained.exit_code == 1  # a `fail` table check failed: reported, nothing rolled back
    report = maintained.json()
    assert report["checks"]["failed"] == ["at_most_15"]
    [result] = report["checks"]["results"]
    assert (result["metric"], result["min"], result["max"], result["passed"]) == (20.0, None, 15.0, False)
    assert sum(table_rows(cli.home).values()) == 20
    # The human form names the check and says it failed.
    text = cli("maintain", "lineitem")
    assert text.exit_code == 1
    assert "at_most_15" in text.stdout
    assert "FAILED" in text.stdout


def test_the_maintenance_machine_runs_table_checks_on_athena_and_alerts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MaintenanceStateMachine, run locally under IAM enforcement: after the table's maintenance,
    PlanTableChecks / RunTableChecks (Athena) / EvaluateTableChecks; a failed table check fails the
    table's result with its metric and thresholds and the execution alerts."""
    from lakehouse.local.executor import LocalOptions, LocalPipeline

    monkeypatch.setenv("LAKEHOUSE_IAM", "on")
    monkeypatch.setenv("LAKEHOUSE_PROJECT_ROOT", str(ROOT))
    datasets = _datasets(tmp_path, "{name: at_most_15, type: row_count, max: 15, scope: table}")
    pipeline = LocalPipeline(
        LocalOptions(
            home=tmp_path / "home", datasets_dir=datasets, project_root=ROOT, spark=False, reports=False
        )
    )
    key = pipeline.land_file(write_lineitem(tmp_path / "lineitem_a.csv", 1, 20), "lineitem")
    assert pipeline.submit(key) is not None
    [record] = pipeline.drain()
    assert record.status == "SUCCEEDED", record.data.get("error")

    result = pipeline.run_maintenance(["lineitem"])

    assert result.status == "FAILED"
    assert result.error == "MaintenanceFailed"
    visited = [v.name for v in result.states_visited]
    for state in ("MaintainWithLambda", "PlanTableChecks", "RunTableChecks", "EvaluateTableChecks"):
        assert state in visited
    assert "RecordChecksFailed" in visited
    [alert] = [
        json.loads(line) for line in (tmp_path / "home" / "outbox" / "alerts.jsonl").read_text().splitlines()
    ]
    assert alert["subject"] == "lakehouse: maintenance failed"
    message = alert["message"]
    [item] = message["results"]
    assert item["status"] == "failed"
    assert item["error"]["Error"] == "ChecksFailedError"
    [check] = item["checks"]["results"]
    assert (check["name"], check["metric"], check["max"], check["passed"]) == (
        "at_most_15",
        20.0,
        15.0,
        False,
    )
    assert sum(table_rows(tmp_path / "home").values()) == 20  # nothing rolled back
