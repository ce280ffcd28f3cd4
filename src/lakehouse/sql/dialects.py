"""Athena (Trino) SQL → DuckDB, with the semantic fixes plain transpilation misses.

sqlglot maps names and syntax; these transforms fix meaning (DESIGN §7):
- `date_diff(unit, a, b)`: Trino counts whole elapsed units, DuckDB's `date_diff` counts boundaries
  crossed. DuckDB's `date_sub` counts whole elapsed units, so we call that.
- `regexp_extract` with no match: NULL in Trino, '' in DuckDB. We guard it with `regexp_matches`.
- Integer division: bigint / bigint truncates in Trino and yields a double in DuckDB. With a schema
  (or literal integers) we know both sides are integers and emit an explicit truncating division.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

_INTEGER_TYPES = {
    exp.DataType.Type.TINYINT,
    exp.DataType.Type.SMALLINT,
    exp.DataType.Type.INT,
    exp.DataType.Type.BIGINT,
}


def _is_integer(node: exp.Expr) -> bool:
    node_type = node.type
    return node_type is not None and node_type.this in _INTEGER_TYPES


def _fix_date_diff(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.DateDiff):
        unit = node.args.get("unit")
        unit_name = unit.name if unit is not None else "day"
        # Trino: date_diff(unit, start, end); sqlglot stores this=end, expression=start.
        return exp.Anonymous(
            this="DATE_SUB",
            expressions=[exp.Literal.string(unit_name.lower()), node.expression.copy(), node.this.copy()],
        )
    return node


def _fix_regexp_extract(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.RegexpExtract) and not isinstance(node.parent, exp.If):
        matches = exp.RegexpLike(this=node.this.copy(), expression=node.expression.copy())
        return exp.If(this=matches, true=node.copy(), false=exp.Null())
    return node


def _fix_integer_division(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Div) and _is_integer(node.this) and _is_integer(node.expression):
        # Trino truncates toward zero; DuckDB's `//` floors, so divide as doubles and truncate.
        quotient = exp.Div(
            this=exp.Cast(this=node.this.copy(), to=exp.DataType.build("double")),
            expression=node.expression.copy(),
        )
        return exp.Cast(
            this=exp.Anonymous(this="TRUNC", expressions=[quotient]), to=exp.DataType.build("bigint")
        )
    return node


def athena_to_duckdb(sql: str, schema: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """Transpile one Athena statement to DuckDB with the fixes above.

    `schema` maps table → column → type (Trino type names); it lets integer division be detected
    on columns, not only on literals.
    """
    tree = sqlglot.parse_one(sql, read="athena")
    if schema:
        # Unknown tables: type what we can from literals alone.
        with contextlib.suppress(sqlglot.errors.OptimizeError):
            tree = qualify(tree, schema=dict(schema), dialect="athena", validate_qualify_columns=False)
    tree = annotate_types(tree, schema=dict(schema) if schema else None, dialect="athena")
    tree = tree.transform(_fix_integer_division)
    tree = tree.transform(_fix_date_diff)
    tree = tree.transform(_fix_regexp_extract)
    return tree.sql(dialect="duckdb")
