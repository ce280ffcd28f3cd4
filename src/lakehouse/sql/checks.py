"""Table checks → one query that returns one row: a numeric metric per check.

The query is built in Athena's dialect (what runs in AWS, and the dialect of `custom_sql`) and
rendered for DuckDB through `athena_to_duckdb`, so local runs evaluate the very SQL Athena gets.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

from lakehouse.contracts.model import Contract, TableCheck
from lakehouse.sql.compiler import col, ident
from lakehouse.sql.dialects import athena_to_duckdb

TableResolver = Callable[[str], exp.Table]


def athena_table(database: str) -> TableResolver:
    return lambda dataset: exp.Table(this=ident(dataset), db=ident(database))


def local_table(dataset: str) -> exp.Table:
    return exp.Table(this=ident(dataset))


def _ratio(numerator: exp.Expr, denominator: exp.Expr, empty: float = 1.0) -> exp.Expr:
    """numerator / denominator as a double; `empty` when there is nothing to measure."""
    division = exp.Div(
        this=exp.Cast(this=numerator, to=exp.DataType.build("double")),
        expression=exp.Nullif(this=denominator, expression=exp.Literal.number(0)),
    )
    return exp.Coalesce(this=division, expressions=[exp.Literal.number(empty)])


def _share(condition: exp.Expr, over: exp.Expr) -> exp.Expr:
    """The share of rows where `over` is not null that satisfy `condition`."""
    hits = exp.Sum(this=exp.If(this=condition, true=exp.Literal.number(1), false=exp.Literal.number(0)))
    return _ratio(hits, exp.Count(this=over))


def _literal(value: object) -> exp.Expr:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def _metric(  # noqa: PLR0911 (one return per check type)
    check: TableCheck, table: exp.Table, resolve: TableResolver, where: exp.Expr | None
) -> exp.Expr:
    """A scalar subquery computing the check's metric."""

    def scoped(select: exp.Select) -> exp.Select:
        return select.where(where.copy()) if where is not None else select

    base = table.copy()
    if check.type == "row_count":
        return scoped(exp.select(exp.Count(this=exp.Star())).from_(base)).subquery()
    if check.type == "completeness":
        assert check.column
        return scoped(
            exp.select(_ratio(exp.Count(this=col(check.column)), exp.Count(this=exp.Star()))).from_(base)
        ).subquery()
    if check.type == "uniqueness":
        keys = [col(c) for c in check.key_columns]
        groups = scoped(exp.select(exp.Literal.number(1).as_("one")).from_(base)).group_by(*keys)
        distinct = exp.select(exp.Count(this=exp.Star())).from_(groups.subquery("g"))
        total = scoped(exp.select(exp.Count(this=exp.Star())).from_(base.copy()))
        return exp.select(_ratio(distinct.subquery(), total.subquery())).subquery()
    if check.type in ("values_in_set", "values_in_range", "values_match_regex", "freshness"):
        assert check.column
        value = col(check.column)
        if check.type == "values_in_set":
            assert check.values
            cond: exp.Expr = exp.In(this=value.copy(), expressions=[_literal(v) for v in check.values])
            return scoped(exp.select(_share(cond, value)).from_(base)).subquery()
        if check.type == "values_in_range":
            bounds: list[exp.Expr] = []
            if check.range_min is not None:
                bounds.append(exp.GTE(this=value.copy(), expression=_literal(check.range_min)))
            if check.range_max is not None:
                bounds.append(exp.LTE(this=value.copy(), expression=_literal(check.range_max)))
            return scoped(exp.select(_share(exp.and_(*bounds), value)).from_(base)).subquery()
        if check.type == "values_match_regex":
            assert check.pattern
            cond = exp.RegexpLike(
                this=exp.Cast(this=value.copy(), to=exp.DataType.build("varchar")),
                expression=exp.Literal.string(check.pattern),
            )
            return scoped(exp.select(_share(cond, value)).from_(base)).subquery()
        # freshness: hours since the newest value; seconds avoid unit-boundary differences.
        newest = exp.Cast(this=exp.Max(this=value.copy()), to=exp.DataType.build("timestamp"))
        seconds = sqlglot.parse_one(
            "date_diff('second', x, CAST(current_timestamp AS timestamp))", read="athena"
        )
        seconds = seconds.transform(
            lambda n: newest.copy() if isinstance(n, exp.Column) and n.name == "x" else n
        )
        hours = exp.Div(
            this=exp.Cast(this=seconds, to=exp.DataType.build("double")), expression=exp.Literal.number(3600)
        )
        return scoped(exp.select(hours).from_(base)).subquery()
    if check.type == "referential_integrity":
        assert check.column
        assert check.reference
        ref = resolve(check.reference.dataset)
        ref_keys = exp.select(col(check.reference.column).as_("k")).distinct().from_(ref).subquery("r")
        local = col(check.column, "t")
        present = exp.Not(this=exp.Is(this=col("k", "r"), expression=exp.Null()))
        joined = (
            exp.select(_share(present, local))
            .from_(exp.alias_(base, "t", table=True))
            .join(ref_keys, on=exp.EQ(this=local.copy(), expression=col("k", "r")), join_type="left")
        )
        return scoped(joined).subquery()
    # custom_sql: the user's Athena query (one number); `{table}` is this table.
    assert check.sql
    custom = sqlglot.parse_one(check.sql.replace("{table}", "__this_table__"), read="athena")
    custom = custom.transform(
        lambda n: base.copy() if isinstance(n, exp.Table) and n.name == "__this_table__" else n
    )
    if where is not None and isinstance(custom, exp.Select):
        custom = custom.where(where.copy())
    return exp.Subquery(this=custom)


@dataclass(frozen=True)
class CheckQuery:
    """One query over the table; column i is the metric of check i."""

    checks: tuple[TableCheck, ...]
    tree: exp.Select

    def athena(self) -> str:
        return self.tree.sql(dialect="athena")

    def duckdb(self, schema: Mapping[str, Mapping[str, str]] | None = None) -> str:
        return athena_to_duckdb(self.athena(), schema)


def compile_checks(
    contract: Contract,
    resolve: TableResolver,
    run_id: str | None = None,
    available: Collection[str] | None = None,
) -> CheckQuery | None:
    """The dataset's checks as one Athena query, or None when it declares none.

    `available` names the datasets whose tables exist. A referential check against any other table
    gets a NULL metric (a failed check at its own severity) instead of making the whole query fail.
    """
    if not contract.checks:
        return None
    table = resolve(contract.name)
    metrics = []
    for check in contract.checks:
        where = None
        if check.scope == "run" and run_id is not None:
            where = exp.EQ(this=col("_run_id"), expression=exp.Literal.string(run_id))
        missing_reference = (
            check.type == "referential_integrity"
            and available is not None
            and check.reference is not None
            and check.reference.dataset not in available
        )
        value = exp.Null() if missing_reference else _metric(check, table, resolve, where)
        metric = exp.Cast(this=value, to=exp.DataType.build("double"))
        metrics.append(exp.alias_(metric, ident(check.name)))
    return CheckQuery(contract.checks, exp.select(*metrics))


def missing_references(contract: Contract, available: Collection[str]) -> dict[str, str]:
    """check name -> referenced dataset, for the referential checks whose table does not exist."""
    return {
        c.name: c.reference.dataset
        for c in contract.checks
        if c.type == "referential_integrity"
        and c.reference is not None
        and c.reference.dataset not in available
    }


@dataclass(frozen=True)
class CheckResult:
    name: str
    metric: float | None
    min: float | None
    max: float | None
    severity: str
    passed: bool
    note: str | None = None  # why there is no metric (e.g. the reference table does not exist)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "metric": self.metric,
            "min": self.min,
            "max": self.max,
            "severity": self.severity,
            "passed": self.passed,
        }
        if self.note:
            out["note"] = self.note
        return out


def evaluate(
    checks: Sequence[TableCheck],
    metrics: Sequence[float | None],
    missing: Mapping[str, str] | None = None,
) -> list[CheckResult]:
    """Compare each metric with its thresholds. A missing (NULL) metric fails.

    `missing` (from `missing_references`) names the reference table of each referential check that had
    no table to compare with: that check fails with a note naming the table.
    """
    if len(checks) != len(metrics):
        raise ValueError(f"expected {len(checks)} metrics, got {len(metrics)}")
    results = []
    for check, metric in zip(checks, metrics, strict=True):
        low, high = check.thresholds()
        passed = metric is not None and (low is None or metric >= low) and (high is None or metric <= high)
        note = None
        if metric is None and missing and check.name in missing:
            note = f"reference table {missing[check.name]!r} does not exist yet"
        results.append(CheckResult(check.name, metric, low, high, check.severity, passed, note))
    return results


def metrics_from_athena(result_set: Mapping[str, Any]) -> list[float | None]:
    """The metric row of an Athena `GetQueryResults` ResultSet (row 0 is the header)."""
    rows = result_set.get("Rows", [])
    if len(rows) <= 1:  # the header only
        raise ValueError("the check query returned no rows")
    values: list[float | None] = []
    for cell in rows[1].get("Data", []):
        text = cell.get("VarCharValue")
        values.append(None if text is None else float(text))
    return values
