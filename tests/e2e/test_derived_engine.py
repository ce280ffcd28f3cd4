"""Locally, RefreshDerived runs on DuckDB by default (fast), and on Spark with LAKEHOUSE_DERIVED_ENGINE=spark
(the EMR job script on local Spark, so that path stays exercised end to end)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e_helpers import Cli, write_orders

from lakehouse.local.jobs import spark_status

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _engines(home: Path) -> list[str]:
    log = home / "buckets" / "lake" / "derived" / "orders_by_status" / "_delta_log"
    out = []
    for path in sorted(log.glob("*.json")):
        for line in path.read_text().splitlines():
            action = json.loads(line)
            if "commitInfo" in action:
                out.append(str(action["commitInfo"].get("engineInfo", "")))
    return out


def _need_spark() -> None:
    ok, detail = spark_status()
    if not ok:
        pytest.skip(f"local Spark unavailable: {detail}")


def test_derived_refresh_uses_duckdb_even_when_spark_is_available(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _need_spark()
    monkeypatch.delenv("LAKEHOUSE_DERIVED_ENGINE", raising=False)
    result = cli("run", str(write_orders(tmp_path / "orders_1.csv", 1, 6)), "--json")
    assert result.exit_code == 0, result.stderr
    [record] = cli("runs", "--json").json()
    assert "RefreshDerived" in record["path"]
    assert [e.split(":")[0] for e in _engines(cli.home)] == ["delta-rs"]
    rows = cli("query", "SELECT sum(orders) AS n FROM orders_by_status", "-f", "json").json()
    assert rows == [{"n": 6}]


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_derived_refresh_on_local_spark_when_asked(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _need_spark()
    monkeypatch.setenv("LAKEHOUSE_DERIVED_ENGINE", "spark")
    result = cli("run", str(write_orders(tmp_path / "orders_1.csv", 1, 6)), "--json")
    assert result.exit_code == 0, result.stderr
    engines = _engines(cli.home)
    assert engines
    assert all("Spark" in e for e in engines), engines
    rows = cli("query", "SELECT sum(orders) AS n FROM orders_by_status", "-f", "json").json()
    assert rows == [{"n": 6}]
