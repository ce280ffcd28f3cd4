"""`run --route` and LAMBDA_ROUTE_MAX_BYTES; `lakehouse quarantine` lists files, reasons and rejected rows."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from e2e_helpers import Cli, write_lineitem, write_orders
from test_crash_resume import table_rows

from lakehouse.local.jobs import spark_status

pytestmark = pytest.mark.e2e


def test_route_lambda_overrides_a_small_threshold(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMBDA_ROUTE_MAX_BYTES", "10")
    source = write_orders(tmp_path / "orders_a.csv", 1, 5)
    result = cli("run", str(source), "--route", "lambda", "--json")
    assert result.exit_code == 0, result.stderr
    assert [r["route"] for r in result.json()["runs"]] == ["lambda"]


def test_route_glue_without_spark_is_refused(cli: Cli, tmp_path: Path) -> None:
    source = write_orders(tmp_path / "orders_b.csv", 1, 5)
    result = cli("run", str(source), "--route", "glue", "--no-spark")
    assert result.exit_code == 2
    assert "--route glue needs local Spark" in result.stderr
    bad = cli("run", str(source), "--route", "emr")
    assert bad.exit_code == 2
    assert "--route must be lambda, glue or auto" in bad.stderr


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_lambda_route_max_bytes_and_route_glue_are_obeyed(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok, detail = spark_status()
    if not ok:
        pytest.skip(f"local Spark unavailable: {detail}")
    monkeypatch.setenv("LAMBDA_ROUTE_MAX_BYTES", "10")  # every sample file is larger: auto -> glue
    auto = cli("run", str(write_orders(tmp_path / "orders_c.csv", 1, 5)), "--json")
    assert auto.exit_code == 0, auto.stderr
    assert [r["route"] for r in auto.json()["runs"]] == ["glue"]
    monkeypatch.delenv("LAMBDA_ROUTE_MAX_BYTES")
    forced = cli("run", str(write_orders(tmp_path / "orders_d.csv", 10, 5)), "--route", "glue", "--json")
    assert forced.exit_code == 0, forced.stderr
    assert [r["route"] for r in forced.json()["runs"]] == ["glue"]


def test_quarantine_lists_files_reasons_and_rejected_rows(cli: Cli, tmp_path: Path) -> None:
    good = write_orders(tmp_path / "orders_1.csv", 1, 6)
    bad = write_orders(tmp_path / "bad.csv", 100, 4, o_orderstatus="X").read_text().splitlines()[1:]
    messy = write_orders(tmp_path / "orders_2.csv", 200, 3)
    messy.write_text(messy.read_text() + "\n".join(bad) + "\n")  # 3 good rows, 4 that break in_set
    assert cli("run", str(good), "--no-spark").exit_code == 0
    assert cli("run", str(messy), "--no-spark").exit_code == 0
    failing = write_lineitem(tmp_path / "lineitem_q.csv", 1, 4, quantity=500)  # fails quantity_positive
    assert cli("run", str(failing), "--no-spark").exit_code == 1

    listing = cli("quarantine", "--json").json()
    files = {f["dataset"]: f for f in listing["files"]}
    assert files["lineitem"]["file"] == "lineitem_q.csv"
    assert files["lineitem"]["error"] == "ChecksFailedError"
    assert "quantity_positive" in files["lineitem"]["reason"]
    assert Path(files["lineitem"]["object_uri"]).read_bytes() == failing.read_bytes()
    [rows] = [r for r in listing["rejected_rows"] if r["dataset"] == "orders"]
    on_disk = pq.read_table(rows["uri"]).to_pylist()
    assert rows["count"] == len(on_disk) == 4
    assert [r["reason"] for r in rows["rows"]] == [r["reason"] for r in on_disk]
    assert all("o_orderstatus" in r["reason"] for r in rows["rows"])

    only_orders = cli("quarantine", "orders", "--json").json()
    assert only_orders["files"] == []
    assert len(only_orders["rejected_rows"]) == 1
    by_run = cli("quarantine", "--run", files["lineitem"]["run_id"][:20], "--json").json()
    assert [f["file"] for f in by_run["files"]] == ["lineitem_q.csv"]
    assert by_run["rejected_rows"] == []
    human = cli("quarantine")
    assert human.exit_code == 0
    assert "lineitem_q.csv" in human.stdout
    assert "is not one of F, O, P" in human.stdout


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_large_objects_share_one_glue_run_and_a_bad_one_is_isolated(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two large objects and a bad one arrive together: one drain, one Glue batch (a manifest). The bad
    object's error names it, SplitBatch isolates it, and the good two commit in ONE Delta transaction."""
    ok, detail = spark_status()
    if not ok:
        pytest.skip(f"local Spark unavailable: {detail}")
    monkeypatch.setenv("LAMBDA_ROUTE_MAX_BYTES", "10")  # every file is larger: the Glue route
    monkeypatch.setenv("GLUE_BATCH_MAX_OBJECTS", "10")
    first = write_lineitem(tmp_path / "lineitem_g1.csv", 1, 6)
    bad = tmp_path / "lineitem_gbad.csv"
    bad.write_text("l_orderkey,l_partkey\n1,2\n", encoding="utf-8")  # lacks the contract's columns
    second = write_lineitem(tmp_path / "lineitem_g2.csv", 100, 5)

    result = cli("run", str(first), str(bad), str(second), "--json")

    assert result.exit_code == 1, result.stderr  # the bad file failed
    runs = {Path(r["key"]).name: r for r in result.json()["runs"]}
    assert {n: (r["status"], r["route"]) for n, r in runs.items()} == {
        "lineitem_g1.csv": ("SUCCEEDED", "glue"),
        "lineitem_g2.csv": ("SUCCEEDED", "glue"),
        "lineitem_gbad.csv": ("QUARANTINED", "glue"),
    }
    reason_file = (
        cli.home / "buckets" / "quarantine" / "objects" / "lineitem" / runs["lineitem_gbad.csv"]["run_id"]
    ) / "lineitem_gbad.csv.reason.json"
    assert "l_suppkey" in reason_file.read_text()  # the quarantine says what was missing
    # The good objects' rows, once each, in one commit carrying both app transactions.
    rows = table_rows(cli.home)
    assert sum(rows.values()) == 11
    assert max(rows.values()) == 1
    log = cli.home / "buckets" / "lake" / "tables" / "lineitem" / "_delta_log"
    commits = [
        json.loads(line) for path in sorted(log.glob("*.json")) for line in path.read_text().splitlines()
    ]
    infos = [c["commitInfo"] for c in commits if "commitInfo" in c]
    ingests = [
        json.loads(i["userMetadata"]) for i in infos if "lakehouse.run_id" in (i.get("userMetadata") or "")
    ]
    assert [len(i["lakehouse.app_ids"]) for i in ingests] == [2]
    assert len([c for c in commits if "txn" in c]) == 2
    # The drain's Glue run got only a manifest: it lists both good objects with their pins.
    manifests = list((cli.home / "buckets" / "lake" / "runs").glob("*/manifest.json"))
    listed = [[o["key"] for o in json.loads(m.read_text())["objects"]] for m in manifests]
    assert sorted(len(keys) for keys in listed) == [1, 2, 3]  # the batch, its good half, the bad one
