"""Contract → SQL: reasons, action precedence, implicit rules, schema-drift planning, renderings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
import sqlglot

from lakehouse.contracts import Contract, load_contract, parse_contract
from lakehouse.sql.compiler import (
    METADATA_COLUMNS,
    RunMeta,
    accepted_rows,
    compile_ingest,
    parse,
    rejected_rows,
)

REPO = Path(__file__).resolve().parents[2]
META = RunMeta("s3://landing/shop/a.csv", "v7", datetime(2026, 11, 2, 3, 4, 5, 600000, tzinfo=UTC), "run-42")

SHOP = """
name: shop
landing_prefix: shop/
format: {{type: csv}}
columns:
  - {{name: id, type: int, nullable: false}}
  - {{name: sku, source: SKU, type: string, nullable: false}}
  - {{name: qty, type: int}}
  - {{name: price, type: "decimal(8,2)"}}
  - {{name: status, type: string}}
  - {{name: email, type: string}}
primary_key: [id]
write_mode: {mode}
schema_evolution: {evolution}
{rules}
"""


def shop(rules: str = "", mode: str = "append", evolution: str = "strict") -> Contract:
    return parse_contract(SHOP.format(rules=rules, mode=mode, evolution=evolution), "shop.yaml")


def run(contract: Contract, header: list[str], rows: list[tuple[str | None, ...]]) -> list[dict[str, object]]:
    """The transform on DuckDB over `src` (strings + _row); values as text for easy comparison."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    cols = ", ".join(f'"{h}" VARCHAR' for h in header)
    con.execute(f"CREATE TABLE src ({cols}, _row BIGINT)")
    for i, row in enumerate(rows, start=1):
        con.execute(f"INSERT INTO src VALUES ({', '.join('?' * (len(header) + 1))})", [*row, i])
    plan = compile_ingest(contract, header, META)
    cursor = con.execute(f"SELECT CAST(COLUMNS(*) AS VARCHAR) FROM ({plan.sql('duckdb')}) ORDER BY _row")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


HEADER = ["id", "SKU", "qty", "price", "status", "email"]


def test_typed_values_and_metadata() -> None:
    [row] = run(shop(), HEADER, [("7", "A-1", " 3 ", "12.5", "new", "a@b.c")])
    assert row["id"] == "7"
    assert row["sku"] == "A-1"  # read from its source name
    assert row["qty"] == "3"
    assert row["price"] == "12.50"
    assert row["_reject_reason"] is None
    assert row["_reject_action"] is None
    assert row["_source_uri"] == "s3://landing/shop/a.csv"
    assert row["_source_version"] == "v7"
    assert row["_ingested_at"] == "2026-11-02 03:04:05.6+00"
    assert row["_run_id"] == "run-42"


@pytest.mark.parametrize(
    ("rule", "values", "reason"),
    [
        (
            "{rule: regex, column: email, pattern: '^[^@]+@[^@]+$'}",
            {"email": "nope"},
            "regex:email: 'nope' does not match ^[^@]+@[^@]+$",
        ),
        ("{rule: range, column: qty, min: 1, max: 10}", {"qty": "11"}, "range:qty: 11 is outside [1, 10]"),
        ("{rule: range, column: price, min: 0.5}", {"price": "0.25"}, "range:price: 0.25 is outside [0.5, ]"),
        (
            "{rule: in_set, column: status, values: [new, done]}",
            {"status": "lost"},
            "in_set:status: 'lost' is not one of new, done",
        ),
        (
            "{rule: not_null, column: email}",
            {"email": None},
            "not_null:email: email is required but empty or missing",
        ),
        ("{name: sane_qty, rule: range, column: qty, max: 5}", {"qty": "6"}, "sane_qty: 6 is outside [, 5]"),
        ("{rule: type}", {"qty": "many"}, "type:qty: 'many' is not a valid int"),
    ],
)
def test_reason_text(rule: str, values: dict[str, str | None], reason: str) -> None:
    good = {"id": "1", "SKU": "S", "qty": "2", "price": "1.00", "status": "new", "email": "a@b.c"}
    row = {**good, **values}
    [out] = run(shop(f"row_rules:\n  - {rule}"), HEADER, [tuple(row[h] for h in HEADER)])
    assert out["_reject_reason"] == reason
    assert out["_reject_action"] == "quarantine"  # the default action


def test_rules_ignore_nulls_except_not_null() -> None:
    rules = (
        "row_rules:\n  - {rule: regex, column: email, pattern: x}\n  - {rule: range, column: qty, min: 1}\n"
        "  - {rule: in_set, column: status, values: [a]}"
    )
    [out] = run(shop(rules), HEADER, [("1", "S", None, None, None, None)])
    assert out["_reject_reason"] is None


def test_action_precedence_fail_over_quarantine_over_drop() -> None:
    rules = """row_rules:
  - {rule: range, column: qty, max: 10, action: drop}
  - {rule: in_set, column: status, values: [new], action: quarantine}
  - {rule: regex, column: email, pattern: '@', action: fail}"""
    rows = [
        ("1", "S", "99", "1", "lost", "nope"),  # all three
        ("2", "S", "99", "1", "lost", "a@b"),  # drop + quarantine
        ("3", "S", "99", "1", "new", "a@b"),  # drop only
        ("4", "S", "1", "1", "new", "nope"),  # fail only
        ("5", "S", "1", "1", "new", "a@b"),  # none
    ]
    out = run(shop(rules), HEADER, rows)
    assert [r["_reject_action"] for r in out] == ["fail", "quarantine", "drop", "fail", None]
    # Every broken rule is named, in declaration order, whatever the action.
    assert out[0]["_reject_reason"] == (
        "range:qty: 99 is outside [, 10]; in_set:status: 'lost' is not one of new; "
        "regex:email: 'nope' does not match @"
    )


def test_implicit_not_null_for_non_nullable_columns() -> None:
    out = run(shop(), HEADER, [(None, "S", "1", "1", "x", "y"), ("2", None, "1", "1", "x", "y")])
    assert out[0]["_reject_reason"] == "not_null:id: id is required but empty or missing"
    assert out[1]["_reject_reason"] == "not_null:sku: sku is required but empty or missing"
    assert [r["_reject_action"] for r in out] == ["quarantine", "quarantine"]


def test_explicit_not_null_replaces_the_implicit_one() -> None:
    out = run(
        shop("row_rules:\n  - {rule: not_null, column: sku, action: drop}"),
        HEADER,
        [("1", None, "1", "1", "x", "y")],
    )
    assert out[0]["_reject_action"] == "drop"
    assert out[0]["_reject_reason"].count("sku is required") == 1


def test_implicit_type_rule_and_its_override() -> None:
    row = ("1", "S", "1.5", "abc", "x", "y")
    [implicit] = run(shop(), HEADER, [row])
    assert implicit["_reject_action"] == "quarantine"
    assert implicit["_reject_reason"] == (
        "type:qty: '1.5' is not a valid int; type:price: 'abc' is not a valid decimal(8,2)"
    )
    [explicit] = run(shop("row_rules:\n  - {rule: type, action: drop}"), HEADER, [row])
    assert explicit["_reject_action"] == "drop"
    assert implicit["qty"] is None


def test_a_not_null_failure_is_not_also_a_type_failure() -> None:
    [out] = run(shop(), HEADER, [("x", "S", "1", "1", "a", "b")])
    assert out["_reject_reason"] == "type:id: 'x' is not a valid int"


def test_long_values_are_cut_in_reasons() -> None:
    [out] = run(shop(), HEADER, [("1", "S", "9" * 200, "1", "a", "b")])
    assert out["_reject_reason"] == f"type:qty: '{'9' * 80}' is not a valid int"


# --- schema drift planning -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("evolution", "extra_out"),
    [("strict", []), ("add_columns", ["coupon", "note"]), ("rescue", ["_rescued"])],
)
def test_plan_columns_per_policy(evolution: str, extra_out: list[str]) -> None:
    header = ["id", "SKU", "coupon", "qty", "note"]
    plan = compile_ingest(shop(evolution=evolution), header, META)
    assert plan.extra_columns == ["coupon", "note"]
    assert plan.missing_columns == ["price", "status", "email"]
    assert plan.added_columns == (["coupon", "note"] if evolution == "add_columns" else [])
    expected = ["id", "sku", "qty", "price", "status", "email", *extra_out, *METADATA_COLUMNS]
    assert plan.data_columns == expected


def test_rescue_json_and_missing_columns_are_null() -> None:
    header = ["id", "SKU", "coupon"]
    [out] = run(shop(evolution="rescue"), header, [("1", "S", 'X "1"')])
    assert out["_rescued"] == '{"coupon":"X \\"1\\""}'
    assert out["price"] is None
    [none] = run(shop(evolution="rescue"), HEADER, [("1", "S", "1", "1", "a", "b")])
    assert none["_rescued"] is None


def test_merge_keeps_the_last_row_per_key_in_file_order() -> None:
    contract = shop(mode="merge")
    plan = compile_ingest(contract, HEADER, META)
    con = duckdb.connect()
    columns = ", ".join(f'"{h}" VARCHAR' for h in HEADER)
    con.execute(f"CREATE TABLE src ({columns}, _row BIGINT)")
    con.execute(
        "INSERT INTO src VALUES ('1','a','1','1','x','e',1), ('2','b','1','1','x','e',2), "
        "('1','c','1','1','x','e',3), ('1','d','bad','1','x','e',4)"
    )
    con.execute(f"CREATE VIEW transformed AS {plan.sql('duckdb')}")
    accepted = con.execute(
        f"SELECT id, sku FROM ({accepted_rows(plan).sql('duckdb')}) ORDER BY id"
    ).fetchall()
    assert accepted == [(1, "c"), (2, "b")]  # row 4 is rejected, so row 3 is the last good row for key 1
    rejected = con.execute(
        f"SELECT _row, _reject_action FROM ({rejected_rows(plan).sql('duckdb')})"
    ).fetchall()
    assert rejected == [(4, "quarantine")]


# --- renderings ----------------------------------------------------------------------------------

CONTRACTS = sorted(
    [*(REPO / "datasets").glob("*.yaml"), *(REPO / "tests" / "vectors").glob("*/contract.yaml")]
)


@pytest.mark.parametrize(
    "path", CONTRACTS, ids=lambda p: p.parent.name if p.name == "contract.yaml" else p.stem
)
@pytest.mark.parametrize("dialect", ["duckdb", "spark", "athena"])
def test_renderings_parse_back(path: Path, dialect: str) -> None:
    text = path.read_text()
    contract = load_contract(path) if path.name != "contract.yaml" else parse_contract(text, str(path))
    header = [c.source_name for c in contract.columns] + ["surplus"]
    plan = compile_ingest(contract, header, META)
    for tree in (plan.select, accepted_rows(plan), rejected_rows(plan)):
        sql = tree.sql(dialect=dialect)
        parsed = parse(sql, dialect)  # type: ignore[arg-type]
        assert isinstance(parsed, sqlglot.exp.Select)
        # Round trip: the parsed tree renders to the same text.
        assert parsed.sql(dialect=dialect) == sql
        assert len(parsed.selects) == len(tree.selects)


def test_dialect_specific_spellings() -> None:
    plan = compile_ingest(shop("row_rules:\n  - {rule: regex, column: email, pattern: '@'}"), HEADER, META)
    assert "TRY_CAST(" in plan.sql("duckdb")
    assert "REGEXP_MATCHES(" in plan.sql("duckdb")
    assert "TRY_CAST(" in plan.sql("athena")
    assert "REGEXP_LIKE(" in plan.sql("athena")
    assert "TIMESTAMP WITH TIME ZONE" in plan.sql("athena")
    assert " RLIKE " in plan.sql("spark")
    assert "`sku`" in plan.sql("spark")
