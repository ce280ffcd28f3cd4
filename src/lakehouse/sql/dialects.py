"""Athena (Trino) SQL → DuckDB, with the semantic fixes plain transpilation misses.

sqlglot maps names and syntax; these transforms fix meaning (docs/ARCHITECTURE.md,
"Facts this design relies on"):
- `date_diff(unit, a, b)`: Trino counts whole elapsed units, DuckDB's `date_diff` counts boundaries
  crossed. DuckDB's `date_sub` counts whole elapsed units, so we call that.
- `regexp_extract` with no match: NULL in Trino, '' in DuckDB. We guard it with `regexp_matches`.
- Integer division: bigint / bigint truncates in Trino and yields a double in DuckDB. With a schema
  (or literal integers) we know both sides are integers and emit an explicit truncating division.
- `format_datetime(ts, 'yyyy-MM-dd')`: a Joda pattern, translated to strftime.
- `approx_percentile(x, ARRAY[...])` returns an array (sqlglot casts it to a scalar double).
- `cardinality(m)` of a map (DuckDB's `cardinality` takes lists and maps; `array_length` only lists).
- `split_part` past the last field: NULL in Trino, '' in DuckDB.
- `map_agg(k, v)`: no such aggregate in DuckDB; `map_from_entries(list(...))` builds the map.
Athena functions with no local equivalent fail with `UnsupportedFunctionError`, naming the function and
what to use instead.
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


class UnsupportedFunctionError(ValueError):
    """An Athena function (or argument form) that has no DuckDB equivalent locally; says what to use."""


# Athena (Trino) functions DuckDB lacks -> what to write instead (the message of UnsupportedFunctionError).
ALTERNATIVES = {
    "approx_set": "approx_distinct(x)",
    "at_timezone": "x AT TIME ZONE 'zone'",
    "with_timezone": "CAST(x AS timestamp with time zone) or x AT TIME ZONE 'zone'",
    "to_iso8601": "date_format(x, '%Y-%m-%dT%H:%i:%s')",
    "from_iso8601_timestamp_nanos": "from_iso8601_timestamp(x)",
    "url_extract_host": "regexp_extract(url, '^[a-z]+://([^/:?#]+)', 1)",
    "url_extract_path": "regexp_extract(url, '^[a-z]+://[^/]+(/[^?#]*)', 1)",
    "multimap_agg": "map_agg(k, v) over distinct keys, or array_agg(v) grouped by k",
    "map_union": "map_concat(...) over the rows' maps",
    "numeric_histogram": "histogram(x) or width_bucket(...) with count(*)",
    "word_stem": "lower(x) (no stemming locally)",
    "try_cast": "TRY_CAST(x AS type)",
}

# Joda pattern letters (Trino's format_datetime) -> strftime; runs of a letter pick the entry by length.
_JODA = {
    "y": {1: "%Y", 2: "%y", 3: "%Y", 4: "%Y"},
    "Y": {1: "%Y", 2: "%y", 4: "%Y"},
    "M": {1: "%-m", 2: "%m", 3: "%b", 4: "%B"},
    "d": {1: "%-d", 2: "%d"},
    "D": {1: "%-j", 3: "%j"},
    "H": {1: "%-H", 2: "%H"},
    "h": {1: "%-I", 2: "%I"},
    "m": {1: "%-M", 2: "%M"},
    "s": {1: "%-S", 2: "%S"},
    "S": {3: "%g", 6: "%f"},
    "a": {1: "%p"},
    "E": {1: "%a", 2: "%a", 3: "%a", 4: "%A"},
    "z": {1: "%Z", 2: "%Z", 3: "%Z"},
}


def joda_to_strftime(pattern: str) -> str:
    """A Joda-Time pattern as a strftime format; UnsupportedFunctionError for letters without one."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":  # quoted literal text; '' is a single quote
            end = pattern.find("'", i + 1)
            if end == i + 1:
                out.append("'")
                i += 2
                continue
            end = len(pattern) if end == -1 else end
            out.append(pattern[i + 1 : end].replace("%", "%%"))
            i = end + 1
            continue
        if not char.isalpha():
            out.append("%%" if char == "%" else char)
            i += 1
            continue
        run = len(pattern[i:]) - len(pattern[i:].lstrip(char))
        forms = _JODA.get(char, {})
        form = forms.get(run) or (
            forms[max(forms)] if forms and run > max(forms) and char in "yMEz" else None
        )
        if form is None:
            raise UnsupportedFunctionError(
                f"format_datetime: the Joda pattern {char * run!r} has no local equivalent; use "
                "date_format(x, '<MySQL pattern>') (e.g. '%Y-%m-%d %H:%i:%s') instead"
            )
        out.append(form)
        i += run
    return "".join(out)


def _fixed(node: exp.Expr) -> exp.Expr:
    """A copy of `node` with `_fix_functions` applied inside (transform does not revisit replacements)."""
    return node.copy().transform(_fix_functions)


def _fix_functions(node: exp.Expr) -> exp.Expr:
    """Athena functions whose DuckDB rendering is missing or means something else."""
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower()
        if name == "format_datetime":
            args = node.expressions
            if len(args) != 2 or not isinstance(args[1], exp.Literal) or not args[1].is_string:  # noqa: PLR2004 (arity)
                raise UnsupportedFunctionError(
                    "format_datetime: locally the pattern must be a string literal; "
                    "or use date_format(x, '<MySQL pattern>')"
                )
            fmt = exp.Literal.string(joda_to_strftime(args[1].this))
            return exp.Anonymous(this="STRFTIME", expressions=[_fixed(args[0]), fmt])
        if name == "map_agg" and len(node.expressions) == 2:  # noqa: PLR2004 (arity: key, value)
            key, value = (_fixed(e) for e in node.expressions)
            entry = exp.Anonymous(
                this="STRUCT_PACK",
                expressions=[
                    exp.PropertyEQ(this=exp.to_identifier("k"), expression=key),
                    exp.PropertyEQ(this=exp.to_identifier("v"), expression=value),
                ],
            )
            entries = exp.Filter(
                this=exp.Anonymous(this="LIST", expressions=[entry]),
                expression=exp.Where(this=exp.Not(this=exp.Is(this=key.copy(), expression=exp.Null()))),
            )
            return exp.Anonymous(this="MAP_FROM_ENTRIES", expressions=[entries])
        if name in ALTERNATIVES:
            raise UnsupportedFunctionError(
                f"{name}: this Athena function has no local (DuckDB) equivalent; use {ALTERNATIVES[name]}"
            )
    if isinstance(node, exp.ApproxQuantile):
        if node.args.get("weight") is not None:
            raise UnsupportedFunctionError(
                "approx_percentile(x, w, p): weighted percentiles have no local equivalent; "
                "use approx_percentile(x, p)"
            )
        quantile = node.args.get("quantile")
        if isinstance(quantile, exp.Array):
            return exp.Anonymous(this="APPROX_QUANTILE", expressions=[_fixed(node.this), _fixed(quantile)])
    if isinstance(node, exp.ArraySize):  # Trino cardinality(array | map)
        return exp.Anonymous(this="CARDINALITY", expressions=[_fixed(node.this)])
    if isinstance(node, exp.SplitPart) and not isinstance(node.parent, exp.If):
        text, delimiter, index = (_fixed(node.args[k]) for k in ("this", "delimiter", "part_index"))
        fields = exp.Anonymous(
            this="LEN",
            expressions=[exp.Anonymous(this="STRING_SPLIT", expressions=[text.copy(), delimiter.copy()])],
        )
        split = exp.SplitPart(this=text.copy(), delimiter=delimiter.copy(), part_index=index.copy())
        return exp.If(this=exp.LTE(this=index.copy(), expression=fields), true=split, false=exp.Null())
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
    tree = tree.transform(_fix_functions)
    return tree.sql(dialect="duckdb")
