"""`run --route` and LAMBDA_ROUTE_MAX_BYTES; `lakehouse quarantine` lists files, reasons and rejected rows."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from e2e_helpers import Cli, write_lineitem, write_orders

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
