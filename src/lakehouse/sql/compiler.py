"""Contract → SQL, built once as sqlglot expression trees and rendered per engine.

The transform reads a relation named `src` whose columns are the file's fields, all as strings
(the engine provides it: DuckDB's CSV reader with all_varchar, a Spark DataFrame of strings...),
plus `_row` (the data row's ordinal in the file). It yields the contract's typed columns, the
metadata columns, the rescued fields, and `_reject_reason` / `_reject_action` for rows that break a
row rule. Every engine runs the same tree; only the rendering differs.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import sqlglot
from sqlglot import exp

from lakehouse.contracts.model import Column, Contract, FormatSpec, RowRule
from lakehouse.names import (
    METADATA_COLUMNS,
    RANK,
    REJECT_ACTION,
    REJECT_REASON,
    REJECTED,
    RESCUED,
    RESERVED_COLUMNS,
    ROW_ORDINAL,
)

__all__ = [
    "METADATA_COLUMNS",
    "REJECTED",
    "REJECT_ACTION",
    "REJECT_REASON",
    "RESCUED",
    "RESERVED_COLUMNS",
    "ROW_ORDINAL",
]

Dialect = Literal["duckdb", "spark", "athena"]
SOURCE = "src"
# The dates and timestamps every reader of the tables handles: Python's datetime (deltalake, the
# CLI), Spark, Athena. DuckDB and Spark parse more (year 0, negative years, `infinity`); such values
# would make the table unreadable elsewhere, so they break the type rule like any bad value.
DATE_RANGE = ("0001-01-01", "9999-12-31")
TIMESTAMP_RANGE = ("0001-01-01 00:00:00+00:00", "9999-12-31 23:59:59.999999+00:00")
_SEVERITY = {"fail": 3, "quarantine": 2, "drop": 1}
_INTEGER_TEXT = r"^\s*[+-]?[0-9]+\s*$"


@dataclass(frozen=True)
class RunMeta:
    """What every row of one run is stamped with (literals, so all engines agree exactly)."""

    source_uri: str
    source_version: str
    ingested_at: datetime  # UTC
    run_id: str


@dataclass(frozen=True)
class OutputColumn:
    name: str
    type: str  # contract type: string, bigint, decimal(15,2), timestamp...
    nullable: bool = True


@dataclass
class IngestPlan:
    """The compiled transform for one file: its columns, and what its header says about drift.

    The tree is compiled once per contract and header (`_Template`, cached) with placeholders for the
    run's metadata literals; `sql()` substitutes them into the template's rendering, and `select` is the
    tree with the real literals (built on first use, for callers that transform the tree).
    """

    contract: Contract
    template: _Template = field(repr=False)
    meta: RunMeta
    columns: list[OutputColumn]
    extra_columns: list[str] = field(default_factory=list)  # in the file, not in the contract
    missing_columns: list[str] = field(default_factory=list)  # in the contract, not in the file
    added_columns: list[str] = field(default_factory=list)  # extra columns kept as new string columns
    _select: exp.Select | None = field(default=None, repr=False)

    @property
    def select(self) -> exp.Select:
        if self._select is None:
            self._select = self.template.select_for(self.meta)
        return self._select

    def sql(self, dialect: Dialect) -> str:
        return self.template.sql_for(self.meta, dialect)

    @property
    def data_columns(self) -> list[str]:
        return [c.name for c in self.columns]


def sql_type(type_name: str) -> exp.DataType:
    """A contract type as a sqlglot type. `timestamp` is UTC-adjusted (TIMESTAMPTZ)."""
    if type_name == "timestamp":
        return exp.DataType.build("timestamptz")
    if type_name == "string":
        return exp.DataType.build("varchar")
    return exp.DataType.build(type_name)


def ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.Column(this=ident(name), table=exp.to_identifier(table) if table else None)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _literal(value: object) -> exp.Expr:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(_number(value))
    return exp.Literal.string(str(value))


def _in_range(value: exp.Expr, type_name: str, raw: exp.Expr) -> exp.Expr:
    """A date or timestamp outside DATE_RANGE / TIMESTAMP_RANGE becomes NULL (a type error).

    So do DuckDB's special values (`infinity`, `-infinity`, `epoch`), which no other engine reads
    from a column (its strptime even reads `infinity` as 1900-01-01): a date has digits.
    """
    low, high = DATE_RANGE if type_name == "date" else TIMESTAMP_RANGE
    bounds = [exp.Cast(this=exp.Literal.string(b), to=sql_type(type_name)) for b in (low, high)]
    has_digit = exp.RegexpLike(this=raw.copy(), expression=exp.Literal.string("[0-9]"))
    within = exp.and_(has_digit, exp.Between(this=value.copy(), low=bounds[0], high=bounds[1]))
    return exp.Case(ifs=[exp.If(this=within, true=value)])


def _type_complaint(value: exp.Expr, type_name: str) -> exp.Expr:
    """The end of a type rule's reason: not the type at all, or out of the accepted range."""
    invalid = exp.Literal.string(f"' is not a valid {type_name}")
    if type_name not in ("date", "timestamp") or not isinstance(value, exp.Case):
        return invalid
    unranged = value.args["ifs"][0].args["true"].copy()
    low, high = DATE_RANGE if type_name == "date" else ("0001-01-01", "9999-12-31 UTC")
    outside = exp.Literal.string(f"' is outside the supported {type_name} range {low}..{high}")
    parsed = exp.Not(this=exp.Is(this=unranged, expression=exp.Null()))
    return exp.Case(ifs=[exp.If(this=parsed, true=outside)], default=invalid)


def _typed_value(column: Column, source_present: bool, spec: FormatSpec | None = None) -> exp.Expr:
    """The column's value cast to its type; NULL when the source lacks it or the cast fails."""
    if not source_present:
        return exp.Cast(this=exp.Null(), to=sql_type(column.type))
    raw = col(column.source_name, SOURCE)
    if column.type == "string":
        return raw
    if spec is not None and column.type == "date" and spec.date_format:
        # strptime patterns; sqlglot renders them per engine (Spark: to_date with a Java pattern).
        parsed_date = exp.StrToDate(this=raw, format=exp.Literal.string(spec.date_format), safe=True)
        return _in_range(parsed_date, "date", raw)
    if spec is not None and column.type == "timestamp" and spec.timestamp_format:
        parsed = exp.StrToTime(this=raw, format=exp.Literal.string(spec.timestamp_format), safe=True)
        # A pattern without an offset reads as UTC (every session runs in UTC).
        return _in_range(exp.Cast(this=parsed, to=sql_type("timestamp")), "timestamp", raw)
    cast = exp.TryCast(this=raw, to=sql_type(column.type))
    if column.type in ("date", "timestamp"):
        return _in_range(cast, column.type, raw)
    if column.type in ("int", "bigint"):
        # Integers must be written as integers: DuckDB's cast rounds '1.5' to 2 (and reads '1e3', '0x10'),
        # Spark's truncates it to 1. Anything else is a type error in every engine.
        digits = exp.RegexpLike(this=raw.copy(), expression=exp.Literal.string(_INTEGER_TEXT))
        return exp.Case(ifs=[exp.If(this=digits, true=cast)])
    return cast


def _as_text(value: exp.Expr) -> exp.Expr:
    return exp.Substring(
        this=exp.Cast(this=value, to=exp.DataType.build("varchar")),
        start=exp.Literal.number(1),
        length=exp.Literal.number(80),
    )


def _concat(*parts: exp.Expr) -> exp.Expr:
    return exp.DPipe(this=parts[0], expression=_concat(*parts[1:]), safe=True) if len(parts) > 1 else parts[0]


def _rule_conditions(
    contract: Contract, typed: dict[str, exp.Expr], present: set[str]
) -> list[tuple[RowRule, exp.Expr, exp.Expr]]:
    """(rule, violated-predicate, reason-text) per concrete rule, implicit ones included."""
    rules: list[RowRule] = list(contract.row_rules)
    # Non-nullable columns get a not-null rule unless the contract says what to do itself.
    explicit_not_null = {r.column for r in rules if r.rule == "not_null"}
    for column in contract.columns:
        if not column.nullable and column.name not in explicit_not_null:
            rules.append(RowRule(rule="not_null", column=column.name, action="quarantine"))
    # Values that do not parse as their type are quarantined unless a type rule says otherwise.
    if not any(r.rule == "type" for r in rules):
        rules.append(RowRule(rule="type", action="quarantine"))

    out: list[tuple[RowRule, exp.Expr, exp.Expr]] = []
    for rule in rules:
        targets = [rule.column] if rule.column else [c.name for c in contract.columns]
        for name in targets:
            assert name is not None
            column = contract.column(name)
            value = typed[name]
            label = exp.Literal.string(f"{rule.label if rule.column else 'type:' + name}: ")
            if rule.rule == "type":
                if column.type == "string" or name not in present:
                    continue
                raw = col(column.source_name, SOURCE)
                cond: exp.Expr = exp.and_(
                    exp.Not(this=exp.Is(this=raw, expression=exp.Null())),
                    exp.Is(this=value.copy(), expression=exp.Null()),
                )
                reason = _concat(
                    label,
                    exp.Literal.string("'"),
                    _as_text(raw),
                    _type_complaint(value, column.type),
                )
            elif rule.rule == "not_null":
                # Test the raw field: a value that fails its cast is reported by the type rule.
                raw_or_value = col(column.source_name, SOURCE) if name in present else value.copy()
                cond = exp.Is(this=raw_or_value, expression=exp.Null())
                reason = exp.Literal.string(f"{rule.label}: {name} is required but empty or missing")
            elif rule.rule == "regex":
                assert rule.pattern is not None
                matches = exp.RegexpLike(
                    this=exp.Cast(this=value.copy(), to=exp.DataType.build("varchar")),
                    expression=exp.Literal.string(rule.pattern),
                )
                cond = exp.and_(
                    exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())), exp.Not(this=matches)
                )
                reason = _concat(
                    label,
                    exp.Literal.string("'"),
                    _as_text(value.copy()),
                    exp.Literal.string(f"' does not match {rule.pattern}"),
                )
            elif rule.rule == "range":
                bounds: list[exp.Expr] = []
                if rule.min is not None:
                    bounds.append(exp.LT(this=value.copy(), expression=_literal(rule.min)))
                if rule.max is not None:
                    bounds.append(exp.GT(this=value.copy(), expression=_literal(rule.max)))
                cond = exp.or_(*bounds)
                low = "" if rule.min is None else _number(rule.min)
                high = "" if rule.max is None else _number(rule.max)
                span = f"[{low}, {high}]"
                reason = _concat(label, _as_text(value.copy()), exp.Literal.string(f" is outside {span}"))
            else:  # in_set
                assert rule.values is not None
                members = [
                    exp.TryCast(this=exp.Literal.string(str(v)), to=sql_type(column.type))
                    for v in rule.values
                ]
                cond = exp.and_(
                    exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())),
                    exp.Not(this=exp.In(this=value.copy(), expressions=members)),
                )
                allowed = ", ".join(str(v) for v in rule.values)
                reason = _concat(
                    label,
                    exp.Literal.string("'"),
                    _as_text(value.copy()),
                    exp.Literal.string(f"' is not one of {allowed}"),
                )
            out.append((rule, exp.paren(cond), reason))
    return out


def _rescue_expression(extra: Sequence[str]) -> exp.Expr:
    """The file's unknown fields as one JSON object (text), NULL when there are none."""
    if not extra:
        return exp.Cast(this=exp.Null(), to=exp.DataType.build("varchar"))
    pairs = [exp.JSONKeyValue(this=exp.Literal.string(name), expression=col(name, SOURCE)) for name in extra]
    return exp.Cast(this=exp.JSONObject(expressions=pairs), to=exp.DataType.build("varchar"))


def _compile(contract: Contract, source_columns: Sequence[str], literals: Sequence[str]) -> _Template:
    """The transform of a file whose header is `source_columns`, under the contract's policy, with
    `literals` (source uri, source version, ingested-at text, run id) as the metadata values."""
    present = {c.name for c in contract.columns if c.source_name in source_columns}
    missing = [c.name for c in contract.columns if c.name not in present]
    known_sources = {c.source_name for c in contract.columns}
    extra = [s for s in source_columns if s not in known_sources and s != ROW_ORDINAL]

    typed = {c.name: _typed_value(c, c.name in present, contract.format) for c in contract.columns}
    columns = [OutputColumn(c.name, c.type, c.nullable) for c in contract.columns]
    projections: list[exp.Expr] = [exp.alias_(typed[c.name].copy(), ident(c.name)) for c in contract.columns]

    added: list[str] = []
    if contract.schema_evolution == "add_columns":
        for name in extra:
            # New fields become nullable string columns; their type can be tightened in the contract later.
            projections.append(exp.alias_(col(name, SOURCE), ident(name)))
            columns.append(OutputColumn(name, "string"))
            added.append(name)
    elif contract.schema_evolution == "rescue":
        projections.append(exp.alias_(_rescue_expression(extra), ident(RESCUED)))
        columns.append(OutputColumn(RESCUED, "string"))

    metadata: list[tuple[str, exp.Expr, str]] = [
        ("_source_uri", exp.Literal.string(literals[0]), "string"),
        ("_source_version", exp.Literal.string(literals[1]), "string"),
        (
            "_ingested_at",
            exp.Cast(this=exp.Literal.string(literals[2]), to=sql_type("timestamp")),
            "timestamp",
        ),
        ("_run_id", exp.Literal.string(literals[3]), "string"),
    ]
    for name, value, type_name in metadata:
        projections.append(exp.alias_(value, ident(name)))
        columns.append(OutputColumn(name, type_name, nullable=False))

    conditions = _rule_conditions(contract, typed, present)
    if conditions:
        reasons = [exp.If(this=cond.copy(), true=reason) for _, cond, reason in conditions]
        # CONCAT_WS skips NULLs in DuckDB, Spark and Trino alike; sqlglot's ConcatWs node would
        # be rendered null-propagating for some targets, so call the function by name.
        reason_expr: exp.Expr = exp.Nullif(
            this=exp.Anonymous(
                this="CONCAT_WS",
                expressions=[exp.Literal.string("; "), *[exp.Case(ifs=[r]) for r in reasons]],
            ),
            expression=exp.Literal.string(""),
        )
        action_case = exp.Case()
        for action in sorted(_SEVERITY, key=_SEVERITY.__getitem__, reverse=True):
            conds = [cond.copy() for rule, cond, _ in conditions if rule.action == action]
            if conds:
                action_case = action_case.when(exp.or_(*conds), exp.Literal.string(action))
        action_expr: exp.Expr = action_case
    else:
        reason_expr = exp.Cast(this=exp.Null(), to=exp.DataType.build("varchar"))
        action_expr = exp.Cast(this=exp.Null(), to=exp.DataType.build("varchar"))
    # A plain boolean too: filtering on it spares the engines building reason strings for good rows.
    rejected_expr: exp.Expr = (
        exp.or_(*[cond.copy() for _, cond, _ in conditions]) if conditions else exp.false()
    )
    projections.append(
        exp.alias_(exp.Coalesce(this=rejected_expr, expressions=[exp.false()]), ident(REJECTED))
    )
    projections.append(exp.alias_(reason_expr, ident(REJECT_REASON)))
    projections.append(exp.alias_(action_expr, ident(REJECT_ACTION)))
    projections.append(exp.alias_(col(ROW_ORDINAL, SOURCE), ident(ROW_ORDINAL)))

    select = exp.select(*projections).from_(exp.to_table(SOURCE))
    return _Template(select, tuple(columns), tuple(extra), tuple(missing), tuple(added))


def _meta_literals(meta: RunMeta) -> tuple[str, str, str, str]:
    """The text of the four metadata literals every row of a run carries."""
    ingested_at = meta.ingested_at.strftime("%Y-%m-%d %H:%M:%S.%f+00:00")
    return (meta.source_uri, meta.source_version, ingested_at, meta.run_id)


# Stand-ins for the metadata literals in a cached template: no contract or header can contain them.
_PLACEHOLDERS = tuple(f"__lakehouse_meta_{n}_{uuid.uuid4().hex}__" for n in range(4))


@dataclass(frozen=True, eq=False)
class _Template:
    """A compiled transform with placeholder metadata literals, and its renderings (never mutated)."""

    select: exp.Select
    columns: tuple[OutputColumn, ...]
    extra: tuple[str, ...]
    missing: tuple[str, ...]
    added: tuple[str, ...]
    rendered: dict[str, list[str]] = field(default_factory=dict)

    def select_for(self, meta: RunMeta) -> exp.Select:
        """The tree with `meta`'s literals (a copy: the template stays as it is)."""
        values = dict(zip(_PLACEHOLDERS, _meta_literals(meta), strict=True))

        def put(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Literal) and node.is_string and node.this in values:
                return exp.Literal.string(values[node.this])
            return node

        tree = self.select.transform(put)  # transform copies the tree first
        assert isinstance(tree, exp.Select)
        return tree

    def sql_for(self, meta: RunMeta, dialect: Dialect) -> str:
        """The template rendered once per dialect, split at the placeholders; `meta`'s literals between."""
        pieces = self.rendered.get(dialect)
        if pieces is None:
            pieces = _split_rendering(render(self.select, dialect), dialect)
            self.rendered[dialect] = pieces
        if len(pieces) != len(_PLACEHOLDERS) + 1:  # a rendering that moved or copied a literal
            return render(self.select_for(meta), dialect)
        out = [pieces[0]]
        for value, piece in zip(_meta_literals(meta), pieces[1:], strict=True):
            out.append(exp.Literal.string(value).sql(dialect=dialect))
            out.append(piece)
        return "".join(out)


def _split_rendering(sql: str, dialect: Dialect) -> list[str]:
    """`sql` cut at each placeholder literal, in order; fewer or more pieces when one is not there once."""
    pieces = [sql]
    for placeholder in _PLACEHOLDERS:
        quoted = exp.Literal.string(placeholder).sql(dialect=dialect)
        head, *rest = pieces[-1].split(quoted)
        if len(rest) != 1:
            return [sql]
        pieces[-1:] = [head, rest[0]]
    return pieces


_TEMPLATES: OrderedDict[tuple[str, tuple[str, ...]], _Template] = OrderedDict()
_TEMPLATES_MAX = 64


def _template(contract: Contract, source_columns: Sequence[str]) -> _Template:
    """The cached template of a contract (its whole definition: version, columns, rules, format options)
    and a header; compiled on a miss."""
    key = (contract.model_dump_json(), tuple(source_columns))
    found = _TEMPLATES.get(key)
    if found is None:
        found = _compile(contract, source_columns, _PLACEHOLDERS)
        _TEMPLATES[key] = found
        while len(_TEMPLATES) > _TEMPLATES_MAX:
            _TEMPLATES.popitem(last=False)
    else:
        _TEMPLATES.move_to_end(key)
    return found


def compile_ingest(contract: Contract, source_columns: Sequence[str], meta: RunMeta) -> IngestPlan:
    """The transform of one file whose header is `source_columns`, under the contract's policy.

    Compiled once per contract and header (a batch of files with one header compiles once); the run's
    metadata literals are put in when the plan is rendered.
    """
    template = _template(contract, source_columns)
    return IngestPlan(
        contract,
        template,
        meta,
        list(template.columns),
        list(template.extra),
        list(template.missing),
        list(template.added),
    )


def accepted_rows(plan: IngestPlan, relation: str = "transformed") -> exp.Select:
    """Rows to commit: no rule broken; merge mode keeps the last row per key in file order."""
    names = [c.name for c in plan.columns]
    inner = (
        exp.select(*[col(n) for n in names]).from_(exp.to_table(relation)).where(exp.Not(this=col(REJECTED)))
    )
    if plan.contract.write_mode != "merge":
        return inner
    ranked = inner.select(
        exp.alias_(
            exp.Window(
                this=exp.RowNumber(),
                partition_by=[col(k) for k in plan.contract.primary_key],
                order=exp.Order(expressions=[exp.Ordered(this=col(ROW_ORDINAL), desc=True)]),
            ),
            ident(RANK),
        )
    )
    return (
        exp.select(*[col(n) for n in names])
        .from_(ranked.subquery("ranked"))
        .where(exp.EQ(this=col(RANK), expression=exp.Literal.number(1)))
    )


def rejected_rows(plan: IngestPlan, relation: str = "transformed") -> exp.Select:
    """Rows that broke a rule, with the source row number, reason and action (drop rows excluded)."""
    names = [c.name for c in plan.columns]
    return (
        exp.select(*[col(n) for n in [ROW_ORDINAL, *names, REJECT_REASON, REJECT_ACTION]])
        .from_(exp.to_table(relation))
        .where(col(REJECTED))
    )


def parse(sql: str, dialect: Dialect) -> exp.Expr:
    parsed = sqlglot.parse_one(sql, read=dialect)
    assert parsed is not None
    return parsed


def _spark_json_object(node: exp.Expr) -> exp.Expr:
    """JSON_OBJECT(k: v, ...) → TO_JSON(NAMED_STRUCT(k, v, ...)) keeping NULL members, as DuckDB does.

    sqlglot renders JSONObject for Spark as `JSON_OBJECT('k': v)`, which Spark cannot parse.
    """
    if not isinstance(node, exp.JSONObject):
        return node
    args: list[exp.Expr] = []
    for pair in node.expressions:
        if not isinstance(pair, exp.JSONKeyValue):
            return node
        args.extend([pair.this.copy(), pair.expression.copy()])
    options = exp.Anonymous(
        this="MAP", expressions=[exp.Literal.string("ignoreNullFields"), exp.Literal.string("false")]
    )
    return exp.Anonymous(
        this="TO_JSON", expressions=[exp.Anonymous(this="NAMED_STRUCT", expressions=args), options]
    )


def render(tree: exp.Expr, dialect: Dialect) -> str:
    """A compiled tree as SQL for one engine, with the renderings sqlglot gets wrong fixed."""
    if dialect == "spark":
        tree = tree.transform(_spark_json_object)
    return tree.sql(dialect=dialect)
