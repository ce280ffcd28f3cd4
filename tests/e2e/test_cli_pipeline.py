"""The local pipeline through the `lakehouse` CLI: run, duplicates, bad files, failing checks, watch..."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from e2e_helpers import Cli, csv_rows, write_lineitem, write_orders

pytestmark = pytest.mark.e2e


def _outbox(home: Path, kind: str) -> list[dict[str, object]]:
    path = home / "outbox" / f"{kind}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def test_run_then_same_file_again_adds_no_version(cli: Cli, tmp_path: Path) -> None:
    source = write_orders(tmp_path / "orders_batch1.csv", 1, 12)

    first = cli("run", str(source), "--no-spark", "--json")
    assert first.exit_code == 0, first.stderr
    run = first.json()["runs"][0]
    assert run["status"] == "SUCCEEDED"
    assert run["route"] == "lambda"
    assert run["rows_written"] == len(csv_rows(source)) == 12
    assert run["checks_failed"] == []
    version = run["table_version"]
    commits = [c["version"] for c in cli("history", "orders", "--json").json()]

    second = cli("run", str(source), "--no-spark", "--json")
    assert second.exit_code == 0, second.stderr
    again = second.json()["runs"][0]
    assert again["run_id"] == run["run_id"]  # the same object maps to the same execution name
    assert again.get("already_run") is True
    assert again["table_version"] == version

    history = cli("history", "orders", "--json").json()
    assert [c["version"] for c in history] == commits  # the second run added no commit
    assert history[0]["version"] == version
    landed = cli.home / "buckets" / "landing" / "orders" / "orders_batch1.csv"
    assert landed.read_bytes() == source.read_bytes()


def test_bad_file_is_quarantined_with_its_reason_and_the_table_is_unchanged(cli: Cli, tmp_path: Path) -> None:
    good = write_orders(tmp_path / "orders_good.csv", 1, 5)
    assert cli("run", str(good), "--no-spark").exit_code == 0
    version_before = cli("tables", "--json").json()[1]["version"]

    bad = tmp_path / "orders_bad.csv"
    bad.write_text("order_id,amount\n1,2\n", encoding="utf-8")  # not the orders schema at all
    result = cli("run", str(bad), "--no-spark", "--json")
    assert result.exit_code == 1
    run = result.json()["runs"][0]
    assert run["status"] == "QUARANTINED"
    assert run["error"] in ("SchemaMismatchError", "InvalidInputError")
    assert "orders_bad.csv" in str(run["message"])
    reason_file = Path(run["quarantine"])
    reason = json.loads(reason_file.read_text())
    assert reason["error"] == run["error"]
    assert reason["source"].endswith("orders/orders_bad.csv")
    assert (reason_file.parent / "orders_bad.csv").read_bytes() == bad.read_bytes()

    tables = {t["table"]: t for t in cli("tables", "--json").json()}
    assert tables["orders"]["version"] == version_before
    assert tables["orders"]["rows"] == 5
    # The human output names the reason too.
    text = cli("runs", "--id", run["run_id"])
    assert run["error"] in text.stdout


def test_failing_table_check_rolls_back_and_alerts(cli: Cli, tmp_path: Path) -> None:
    # lineitem's referential check reads orders: like Athena, the check query fails while orders is absent.
    assert cli("run", str(write_orders(tmp_path / "orders_ref.csv", 1, 9)), "--no-spark").exit_code == 0
    good = write_lineitem(tmp_path / "lineitem_good.csv", 1, 9)
    assert cli("run", str(good), "--no-spark").exit_code == 0
    before = {t["table"]: t for t in cli("tables", "--json").json()}["lineitem"]

    # Rows pass the row rules, but quantity 99 breaks the table check quantity_positive (1..50).
    bad = write_lineitem(tmp_path / "lineitem_bad.csv", 1000, 4, quantity=99)
    result = cli("run", str(bad), "--no-spark", "--json")
    assert result.exit_code == 1
    run = result.json()["runs"][0]
    assert run["status"] == "QUARANTINED"
    assert run["error"] == "ChecksFailedError"
    assert run["checks_failed"] == ["quantity_positive"]
    assert run["version_committed"] == before["version"] + 1  # it did commit, then ...

    history = cli("history", "lineitem", "--json").json()
    assert history[0]["operation"] == "RESTORE"  # ... was restored to the version before the run
    after = {t["table"]: t for t in cli("tables", "--json").json()}["lineitem"]
    assert after["rows"] == before["rows"] == 9
    rows = cli("query", "select count(*) as n from lakehouse.lineitem where l_quantity = 99", "-f", "json")
    assert rows.json() == [{"n": 0}]

    alerts = _outbox(cli.home, "alerts")
    assert len(alerts) == 1
    assert alerts[0]["subject"] == "lakehouse: ingest run failed"
    assert "lineitem_bad.csv" in json.dumps(alerts[0])


def test_query_matches_counts_from_the_source_file(cli: Cli, tmp_path: Path) -> None:
    source = write_orders(tmp_path / "orders_q.csv", 500, 31)
    assert cli("run", str(source), "--no-spark").exit_code == 0
    expected = Counter(row["o_orderstatus"] for row in csv_rows(source))

    by_status = cli(
        "query",
        "SELECT o_orderstatus, count(*) AS n FROM lakehouse.orders GROUP BY o_orderstatus ORDER BY 1",
        "--format",
        "json",
    )
    assert by_status.exit_code == 0, by_status.stderr
    assert {r["o_orderstatus"]: r["n"] for r in by_status.json()} == dict(expected)

    as_csv = cli("query", "SELECT count(*) AS n FROM orders", "--format", "csv")
    assert as_csv.stdout.splitlines() == ["n", str(len(csv_rows(source)))]
    # Trino integer division truncates; the transpiler keeps that meaning on DuckDB.
    division = cli("query", "SELECT 7 / 2 AS q", "-f", "json")
    assert division.json() == [{"q": 3}]
    derived = cli("query", "SELECT sum(orders) AS n FROM orders_by_status", "-f", "json")
    assert derived.json() == [{"n": 31}]  # refreshed by RefreshDerived (DuckDB without Spark)


def test_checks_runs_and_maintain_commands(cli: Cli, tmp_path: Path) -> None:
    for batch in range(3):
        source = write_orders(tmp_path / f"orders_m{batch}.csv", 1 + batch * 10, 10)
        assert cli("run", str(source), "--no-spark").exit_code == 0
    checks = cli("checks", "orders", "--json")
    assert checks.exit_code == 0
    assert checks.json()["passed"] is True
    assert {r["name"] for r in checks.json()["results"]} >= {"has_rows", "orderkey_unique"}

    ledger = cli("runs", "--json").json()
    assert len(ledger) == 3
    assert all(r["status"] == "SUCCEEDED" and r["path"][0] == "AcquireTableLease" for r in ledger)
    assert all(s["duration_ms"] is not None for s in ledger[0]["states"] if s["name"] != "Done")

    maintained = cli("maintain", "orders", "--json")
    assert maintained.exit_code == 0, maintained.stderr
    assert maintained.json()["files_after"] <= maintained.json()["files_before"]
    assert cli("query", "SELECT count(*) AS n FROM orders", "-f", "json").json() == [{"n": 30}]

    rolled = cli("rollback", "orders", "--version", "1", "--json")  # 0 is the empty table
    assert rolled.exit_code == 0
    assert cli("query", "SELECT count(*) AS n FROM orders", "-f", "json").json() == [{"n": 10}]


def test_watch_picks_up_a_dropped_file_and_is_exactly_once_across_restarts(cli: Cli, tmp_path: Path) -> None:
    landing = cli.home / "buckets" / "landing" / "orders"
    landing.mkdir(parents=True)
    proc = cli.subprocess(
        "watch", "--max-runs", "1", "--timeout", "120", "--debounce-ms", "300", "--no-spark", "--json"
    )
    try:
        time.sleep(1.5)  # let it start and scan an empty folder
        partial = landing / "orders_w1.csv.part"
        write_orders(partial, 1, 4)  # a writer still busy: must be ignored
        write_orders(tmp_path / "orders_w1.csv", 1, 4)
        (tmp_path / "orders_w1.csv").rename(landing / "orders_w1.csv")  # complete arrival (atomic rename)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    runs = json.loads(out)["runs"]
    assert [r["key"] for r in runs] == ["orders/orders_w1.csv"]
    assert runs[0]["status"] == "SUCCEEDED"
    assert runs[0]["rows_written"] == 4

    # While the watcher is down, another file lands; the first one must not run again.
    write_orders(landing / "orders_w2.csv", 100, 6)
    again = cli("watch", "--once", "--debounce-ms", "100", "--no-spark", "--json")
    assert again.exit_code == 0, again.stderr
    assert [r["key"] for r in again.json()["runs"]] == ["orders/orders_w2.csv"]
    third = cli("watch", "--once", "--debounce-ms", "100", "--no-spark", "--json")
    assert third.json()["runs"] == []
    assert cli("query", "SELECT count(*) AS n FROM orders", "-f", "json").json() == [{"n": 10}]
