"""The compiled plan is cached per contract and header; a run's metadata is put in when it is rendered.

The cached rendering with the run's literals must be exactly the rendering of a plan compiled for that
run, in every dialect, and the cache must not hand one contract's or header's plan to another.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lakehouse.contracts import Contract, parse_contract
from lakehouse.sql import compiler
from lakehouse.sql.compiler import RunMeta, compile_ingest, render

CONTRACT = """
name: shop
landing_prefix: shop/
format: {{type: csv{fmt}}}
columns:
  - {{name: id, type: int, nullable: false}}
  - {{name: day, type: date}}
  - {{name: at, type: timestamp}}
  - {{name: price, type: "decimal(8,2)"}}
primary_key: [id]
write_mode: append
schema_evolution: {evolution}
row_rules:
  - {{rule: range, column: price, min: {low}, action: quarantine}}
"""


def shop(fmt: str = "", evolution: str = "rescue", low: int = 0) -> Contract:
    return parse_contract(CONTRACT.format(fmt=fmt, evolution=evolution, low=low), "shop.yaml")


HEADER = ["id", "day", "at", "price", "note"]
METAS = [
    RunMeta("s3://landing/shop/a.csv", "v1", datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "run-1"),
    # Quotes, a backslash, non-ASCII, and text that looks like SQL or like another literal of the plan.
    RunMeta("s3://landing/shop/o'brien\\x ü.csv", "v'2", datetime(2026, 12, 31, tzinfo=UTC), "r'); DROP --"),
    RunMeta("s3://landing/shop/'; '.csv", "run-1", datetime(2000, 2, 29, 23, 59, 59, tzinfo=UTC), "v1"),
]


def uncached(contract: Contract, header: list[str], meta: RunMeta) -> compiler._Template:
    """The plan compiled with the run's literals in the tree (what every file got before the cache)."""
    return compiler._compile(contract, header, compiler._meta_literals(meta))


@pytest.mark.parametrize("dialect", ["duckdb", "spark", "athena"])
@pytest.mark.parametrize("meta", METAS, ids=["plain", "quotes", "lookalike"])
def test_the_cached_rendering_is_the_rendering_of_the_runs_own_plan(dialect: str, meta: RunMeta) -> None:
    contract = shop()
    compile_ingest(contract, HEADER, METAS[0]).sql(dialect)  # type: ignore[arg-type]  # fill the cache
    plan = compile_ingest(contract, HEADER, meta)
    expected = render(uncached(contract, HEADER, meta).select, dialect)  # type: ignore[arg-type]
    assert plan.sql(dialect) == expected  # type: ignore[arg-type]
    assert render(plan.select, dialect) == expected  # type: ignore[arg-type]


def test_a_header_or_contract_change_gets_its_own_plan() -> None:
    base = compile_ingest(shop(), HEADER, METAS[0])
    cases = {
        "header": (shop(), HEADER[:-1]),
        "evolution": (shop(evolution="add_columns"), HEADER),
        "rule": (shop(low=5), HEADER),
        "format option": (shop(fmt=", date_format: '%d.%m.%Y'"), HEADER),
    }
    plans = {}
    for name, (contract, header) in cases.items():
        plans[name] = plan = compile_ingest(contract, header, METAS[0])
        assert plan.template is not base.template, name
        assert plan.sql("duckdb") != base.sql("duckdb"), name
        assert plan.sql("duckdb") == render(uncached(contract, header, METAS[0]).select, "duckdb"), name
    assert plans["header"].extra_columns == []
    assert base.extra_columns == ["note"]
    assert plans["evolution"].added_columns == ["note"]
    assert base.added_columns == []


def test_plans_of_one_template_do_not_share_their_lists() -> None:
    first = compile_ingest(shop(evolution="add_columns"), HEADER, METAS[0])
    first.columns.pop()
    first.added_columns.clear()
    second = compile_ingest(shop(evolution="add_columns"), HEADER, METAS[1])
    assert second.template is first.template
    assert second.added_columns == ["note"]
    assert second.data_columns[-1] == "_run_id"
    assert len(second.columns) == len(first.columns) + 1
