"""Dataset contracts: valid examples load; every kind of error names the file, the line and the field."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lakehouse.contracts import Contract, ContractRegistry, load_contract, parse_contract
from lakehouse.contracts.loader import contract_json_schema
from lakehouse.errors import ContractError

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "vectors"

BASE = """\
name: shop
landing_prefix: shop/
format: {type: csv}
columns:
  - {name: id, type: int, nullable: false}
  - {name: price, type: "decimal(10,2)"}
  - {name: status, type: string}
primary_key: [id]
"""


def error_of(text: str, source: str = "datasets/shop.yaml") -> str:
    with pytest.raises(ContractError) as info:
        parse_contract(text, source)
    return str(info.value)


@pytest.mark.parametrize("path", sorted((REPO / "datasets").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_datasets_load(path: Path) -> None:
    contract = load_contract(path)
    assert contract.name == path.stem
    assert contract.columns


@pytest.mark.parametrize("path", sorted(VECTORS.glob("*/contract.yaml")), ids=lambda p: p.parent.name)
def test_vector_contracts_are_valid(path: Path) -> None:
    assert isinstance(parse_contract(path.read_text(), str(path)), Contract)


def test_defaults_of_a_minimal_contract() -> None:
    c = parse_contract(
        "name: m\nlanding_prefix: m/\nformat: {type: csv}\ncolumns: [{name: a, type: STRING}]\n"
    )
    assert c.write_mode == "append"
    assert c.schema_evolution == "strict"
    assert c.format.delimiter == ","
    assert c.format.header is True
    assert c.format.null_markers == ("",)
    assert c.columns[0].type == "string"  # normalised to lower case
    assert c.columns[0].nullable is True
    assert c.primary_key == ()
    assert c.row_rules == c.checks == c.derived == ()


def test_decimal_type_is_normalised() -> None:
    c = parse_contract(BASE.replace('"decimal(10,2)"', '"DECIMAL(10, 2)"'))
    assert c.column("price").type == "decimal(10,2)"


@pytest.mark.parametrize(
    ("text", "line", "field", "says"),
    [
        pytest.param(
            BASE.replace('"decimal(10,2)"', "money"),
            6,
            "columns[1].type",
            "unknown type 'money'",
            id="unknown-type",
        ),
        pytest.param(
            BASE.replace('"decimal(10,2)"', '"decimal(40,2)"'),
            6,
            "columns[1].type",
            "decimal(40,2)",
            id="decimal-p",
        ),
        pytest.param(
            BASE.replace('"decimal(10,2)"', '"decimal(5,6)"'),
            6,
            "columns[1].type",
            "decimal(5,6)",
            id="decimal-s",
        ),
        pytest.param(
            BASE + "write_mode: upsert\n", 9, "write_mode", "'upsert' is not one of", id="bad-write-mode"
        ),
        pytest.param(
            BASE.replace("primary_key: [id]\n", "") + "write_mode: merge\n",
            8,
            "write_mode",
            "'merge' needs a primary_key",
            id="merge-without-key",
        ),
        pytest.param(
            BASE + "write_mode: overwrite_partitions\n",
            9,
            "write_mode",
            "needs partition_by",
            id="overwrite-without-partitions",
        ),
        pytest.param(
            BASE.replace("primary_key: [id]", "primary_key: [id, sku]"),
            8,
            "primary_key[1]",
            "unknown column 'sku'",
            id="unknown-key-column",
        ),
        pytest.param(
            BASE + "partition_by: [region]\n", 9, "partition_by[0]", "unknown column 'region'", id="partition"
        ),
        pytest.param(
            BASE + "row_rules:\n  - {rule: not_null, column: colour}\n",
            10,
            "row_rules[0].column",
            "unknown column 'colour'",
            id="rule-column",
        ),
        pytest.param(
            BASE + "checks:\n  - {name: full, type: completeness, column: colour}\n",
            10,
            "checks[0]",
            "check 'full' names unknown columns: colour",
            id="check-column",
        ),
        pytest.param(
            BASE + "row_rules:\n  - {rule: regex, column: status}\n",
            10,
            "row_rules[0]",
            "needs 'pattern'",
            id="regex",
        ),
        pytest.param(
            BASE + "checks:\n  - {name: Bad-Name, type: row_count}\n",
            10,
            "checks[0].name",
            "does not match",
            id="name",
        ),
        pytest.param(BASE + "colour: red\n", 9, "colour", "'colour' was unexpected", id="unknown-field"),
        pytest.param(
            BASE.replace("{type: csv}", "{type: csv, delim: ';'}"),
            3,
            "format.delim",
            "'delim' was unexpected",
            id="unknown-format-option",
        ),
        pytest.param(
            BASE.replace("type: csv", "type: xml"), 3, "format.type", "'xml' is not one of", id="format"
        ),
        pytest.param(
            BASE + "  - {name: id, type: int}\n".replace("  - ", "columns_dup: "),
            9,
            "columns_dup",
            "unexpected",
            id="unknown-top-level-mapping",
        ),
        pytest.param(
            BASE.replace("  - {name: status, type: string}", "  - {name: id, type: string}"),
            7,
            "columns[2].name",
            "duplicate column name 'id'",
            id="duplicate-columns",
        ),
        pytest.param(
            BASE.replace("name: shop", "name: Shop Data"), 1, "name", "does not match", id="bad-name"
        ),
    ],
)
def test_errors_name_file_line_and_field(text: str, line: int, field: str, says: str) -> None:
    message = error_of(text)
    assert f"datasets/shop.yaml:{line}: {field}: " in message, message
    assert says in message, message


def test_invalid_yaml_names_the_line() -> None:
    message = error_of(BASE + "checks: [\n  - oops: : :\n")
    assert message.startswith("datasets/shop.yaml:")
    assert "not valid YAML" in message


# The classic "billion laughs": nine levels of ten aliases, 10^9 strings once expanded, under 1 KB of YAML,
# in a field the JSON Schema validates item by item.
BILLION_LAUGHS = BASE.replace(
    "primary_key: [id]\n", "primary_key:\n  - &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
) + "".join(
    f"  - &{level} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
    for prev, level in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_billion_laughs_is_refused_fast_with_file_and_line(tmp_path: Path) -> None:
    """Nested aliases used to expand during JSON Schema validation: minutes and gigabytes."""
    assert len(BILLION_LAUGHS.encode()) < 1400
    path = tmp_path / "shop.yaml"
    path.write_text(BILLION_LAUGHS)
    started = time.perf_counter()
    with pytest.raises(ContractError) as info:
        load_contract(path)
    assert time.perf_counter() - started < 1.0
    message = str(info.value)
    # &e holds ten *d, each 1,111 values: the first line over the bound.
    line = BILLION_LAUGHS.splitlines().index("  - &e [" + ", ".join(["*d"] * 10) + "]") + 1
    assert message.startswith(f"{path}:{line}: alias *d makes the contract expand to more than "), message


def test_recursive_alias_is_refused() -> None:
    message = error_of(BASE + "description: &loop [a, *loop]\n")
    assert message.startswith("datasets/shop.yaml:9: alias *loop refers to its own anchor"), message


def test_modest_aliases_still_load() -> None:
    text = BASE.replace(
        "  - {name: status, type: string}",
        "  - &text {name: status, type: string}\n  - {<<: *text, name: note}",
    )
    contract = parse_contract(text, "datasets/shop.yaml")
    assert [c.name for c in contract.columns] == ["id", "price", "status", "note"]


def test_not_a_mapping() -> None:
    assert "datasets/shop.yaml:1: a contract must be a YAML mapping" in error_of("- a\n- b\n")


def test_file_name_must_match(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text(BASE)
    with pytest.raises(ContractError, match=r"other\.yaml:1: name: 'shop' must match the file name 'other'"):
        load_contract(path)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="cannot read contract"):
        load_contract(tmp_path / "missing.yaml")


def test_shipped_json_schema_never_drifts() -> None:
    shipped = json.loads((REPO / "src" / "lakehouse" / "schemas" / "contract.schema.json").read_text())
    assert shipped == contract_json_schema(), (
        "regenerate src/lakehouse/schemas/contract.schema.json from contract_json_schema()"
    )


def test_thresholds_defaults() -> None:
    c = parse_contract(
        BASE
        + "checks:\n"
        + "  - {name: rows, type: row_count}\n"
        + "  - {name: fresh, type: freshness, column: status}\n"
        + "  - {name: sql, type: custom_sql, sql: 'SELECT 1'}\n"
        + "  - {name: full, type: completeness, column: status}\n"
        + "  - {name: explicit, type: completeness, column: status, max: 0.5}\n"
    )
    assert [ch.thresholds() for ch in c.checks] == [
        (1, None),
        (None, 24),
        (None, 0),
        (1.0, None),
        (None, 0.5),
    ]


# --- registry ------------------------------------------------------------------------------------


def _contract(name: str, prefix: str) -> Contract:
    return parse_contract(BASE.replace("name: shop", f"name: {name}").replace("shop/", prefix))


def test_registry_resolves_by_longest_prefix() -> None:
    registry = ContractRegistry([_contract("sales", "sales/"), _contract("sales_eu", "sales/eu/")])
    assert registry.for_key("sales/eu/2024/file.csv").name == "sales_eu"
    assert registry.for_key("sales/us/file.csv").name == "sales"
    assert registry.for_key("sales/eu.csv").name == "sales"
    with pytest.raises(
        ContractError, match=r"no dataset contract has a landing prefix matching key 'other/x\.csv'"
    ):
        registry.for_key("other/x.csv")
    with pytest.raises(ContractError, match="no contract for dataset 'nope'; known: sales, sales_eu"):
        registry.get("nope")


def test_registry_from_the_shipped_folder() -> None:
    registry = ContractRegistry.from_dir(REPO / "datasets")
    assert {"orders", "lineitem"} <= set(registry.names())
    assert registry.for_key("orders/2024/orders.csv").name == "orders"
    with pytest.raises(ContractError, match="no such contracts folder"):
        ContractRegistry.from_dir(REPO / "no-such-folder")


def test_every_problem_of_a_contract_is_reported_with_its_line() -> None:
    text = (
        BASE.replace("primary_key: [id]", "primary_key: [id, sku]")
        + "partition_by: [region]\n"
        + "row_rules:\n  - {rule: not_null, column: colour}\n"
    )
    message = error_of(text)
    assert "datasets/shop.yaml:8: primary_key[1]: names unknown column 'sku'" in message, message
    assert "datasets/shop.yaml:9: partition_by[0]: names unknown column 'region'" in message, message
    assert "datasets/shop.yaml:11: row_rules[0].column: " in message, message


def test_every_bad_contract_in_a_folder_is_reported(tmp_path: Path) -> None:
    (tmp_path / "shop.yaml").write_text(BASE.replace("primary_key: [id]", "primary_key: [sku]"))
    (tmp_path / "other.yaml").write_text(BASE.replace("name: shop", "name: other") + "colour: red\n")
    with pytest.raises(ContractError) as caught:
        ContractRegistry.from_dir(tmp_path)
    assert f"{tmp_path / 'shop.yaml'}:8: primary_key[0]" in str(caught.value)
    assert f"{tmp_path / 'other.yaml'}:9: colour" in str(caught.value)
