"""Table checks → one query that returns one row: a numeric metric per check.

The query is built in Athena's dialect (what runs in AWS, and the dialect of `custom_sql`) and
rendered for DuckDB through `athena_to_duckdb`, so local runs evaluate the very SQL Athena gets.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlglot
from sqlglot import exp

from lakehouse.contracts.model import Contract, TableCheck
from lakehouse.sql.compiler import col, ident
from lakehouse.sql.dialects import athena_to_duckdb

TableResolver = Callable[[str], exp.Table]
Scope = Literal["batch", "table"]


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


def _keys_equal(left: str, right: str, keys: Sequence[str]) -> exp.Expr:
    """left.k = right.k for every key column. A plain equi-join, not IS NOT DISTINCT FROM: only an
    equality lets the engines push the batch's keys into the table's scan as a dynamic filter (DuckDB
    reads every row group under IS NOT DISTINCT FROM); so a key with a NULL never matches."""
    return exp.and_(*(exp.EQ(this=col(k, left), expression=col(k, right)) for k in keys))


def _uniqueness(keys: Sequence[str], table: exp.Table, batch: exp.Expr | None) -> exp.Expr:
    """Table scope: distinct keys / rows. Batch scope: the share of the batch's rows whose key occurs
    exactly once in the whole table, reading only the key columns (and `_run_id`). A batch row with a
    NULL in a key column is not unique (a NULL is no key value; table scope counts NULL as one value).

    A key occurring once in the table and coming from the batch is exactly one batch row, so the metric
    is (keys of the batch found once in the table) / (rows of the batch). Only the table's rows whose key
    the batch has are counted: a semi-join on the batch's distinct keys, which Athena (dynamic
    filtering) and DuckDB (join filter pushdown) turn into a key-range filter on the table's scan.
    """
    columns = [col(c) for c in keys]
    if batch is None:
        groups = exp.select(exp.Literal.number(1).as_("one")).from_(table.copy()).group_by(*columns)
        distinct = exp.select(exp.Count(this=exp.Star())).from_(groups.subquery("g"))
        total = exp.select(exp.Count(this=exp.Star())).from_(table.copy())
        return exp.select(_ratio(distinct.subquery(), total.subquery())).subquery()
    batch_keys = exp.select(*columns).distinct().from_(table.copy()).where(batch.copy()).subquery("b")
    counts = (
        exp.select(exp.Count(this=exp.Star()).as_("n"))
        .from_(exp.alias_(table.copy(), "t", table=True))
        .join(batch_keys, on=_keys_equal("t", "b", keys))
        .group_by(*(col(c, "t") for c in keys))
        .subquery("c")
    )
    once = (
        exp.select(exp.Count(this=exp.Star()))
        .from_(counts)
        .where(exp.EQ(this=col("n", "c"), expression=exp.Literal.number(1)))
    )
    rows = exp.select(exp.Count(this=exp.Star())).from_(table.copy()).where(batch.copy())
    return exp.select(_ratio(once.subquery(), rows.subquery())).subquery()


def _referential(
    check: TableCheck, table: exp.Table, resolve: TableResolver, batch: exp.Expr | None
) -> exp.Expr:
    """The share of non-NULL values found in the reference's key column. In batch scope only the batch's
    values are checked, and the reference's key column is read only for those values (a semi-join)."""
    assert check.column
    assert check.reference
    ref_column = col(check.reference.column)
    ref_keys = exp.select(ref_column.as_("k")).distinct().from_(resolve(check.reference.dataset))
    if batch is not None:
        wanted = exp.select(col(check.column)).from_(table.copy()).where(batch.copy())
        ref_keys = ref_keys.where(exp.In(this=ref_column.copy(), query=wanted.subquery()))
    local = col(check.column, "t")
    present = exp.Not(this=exp.Is(this=col("k", "r"), expression=exp.Null()))
    joined = (
        exp.select(_share(present, local))
        .from_(exp.alias_(table.copy(), "t", table=True))
        .join(
            ref_keys.subquery("r"), on=exp.EQ(this=local.copy(), expression=col("k", "r")), join_type="left"
        )
    )
    return (joined.where(batch.copy()) if batch is not None else joined).subquery()


THIS_TABLE = "__lakehouse_this_table__"
FULL_TABLE = "__lakehouse_full_table__"


def _custom(check: TableCheck, table: exp.Table, batch: exp.Expr | None) -> exp.Expr:
    """The user's Athena query (one number). `{table}` is the checked rows: the batch's in batch scope
    (a derived table under the table's name or the alias given), the whole table in table scope;
    `{full_table}` is the whole table in either scope."""
    assert check.sql
    sql = check.sql.replace("{table}", THIS_TABLE).replace("{full_table}", FULL_TABLE)
    custom = sqlglot.parse_one(sql, read="athena")

    def replace(node: exp.Expr) -> exp.Expr:
        if not isinstance(node, exp.Table) or node.name not in (THIS_TABLE, FULL_TABLE):
            return node
        if node.name == FULL_TABLE or batch is None:
            return exp.alias_(table.copy(), node.alias, table=True) if node.alias else table.copy()
        rows = exp.select(exp.Star()).from_(table.copy()).where(batch.copy())
        return rows.subquery(node.alias or table.name)

    return exp.Subquery(this=custom.transform(replace))


def _metric(  # noqa: PLR0911 (one return per check type)
    check: TableCheck, table: exp.Table, resolve: TableResolver, batch: exp.Expr | None
) -> exp.Expr:
    """A scalar subquery computing the check's metric, over the batch's rows when `batch` (the
    `_run_id` predicate) is given, else over the whole table."""

    def scoped(select: exp.Select) -> exp.Select:
        return select.where(batch.copy()) if batch is not None else select

    base = table.copy()
    if check.type == "row_count":
        return scoped(exp.select(exp.Count(this=exp.Star())).from_(base)).subquery()
    if check.type == "completeness":
        assert check.column
        return scoped(
            exp.select(_ratio(exp.Count(this=col(check.column)), exp.Count(this=exp.Star()))).from_(base)
        ).subquery()
    if check.type == "uniqueness":
        return _uniqueness(check.key_columns, table, batch)
    if check.type == "referential_integrity":
        return _referential(check, table, resolve, batch)
    if check.type == "custom_sql":
        return _custom(check, table, batch)
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
    return scoped(exp.select(_hours_since_newest(value)).from_(base)).subquery()


def _hours_since_newest(value: exp.Expr) -> exp.Expr:
    """freshness: hours since the newest value; seconds avoid unit-boundary differences."""
    newest = exp.Cast(this=exp.Max(this=value.copy()), to=exp.DataType.build("timestamp"))
    seconds = sqlglot.parse_one("date_diff('second', x, CAST(current_timestamp AS timestamp))", read="athena")
    seconds = seconds.transform(lambda n: newest.copy() if isinstance(n, exp.Column) and n.name == "x" else n)
    return exp.Div(
        this=exp.Cast(this=seconds, to=exp.DataType.build("double")), expression=exp.Literal.number(3600)
    )


def checks_in_scope(contract: Contract, scope: Scope | None) -> tuple[TableCheck, ...]:
    """The contract's checks of `scope` (all of them for None), in declaration order."""
    return tuple(c for c in contract.checks if scope is None or c.scope == scope)


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
    scope: Scope | None = None,
) -> CheckQuery | None:
    """The dataset's checks of `scope` as one Athena query, or None when it declares none.

    - `scope="batch"` (Inspect, after each commit): the batch-scoped checks over the rows the run
      `run_id` committed (`_run_id`); uniqueness and referential integrity compare those rows with the
      whole table / the reference table, reading only the key columns.
    - `scope="table"` (maintenance): the table-scoped checks over the whole table.
    - None (`lakehouse checks`): every check; batch-scoped ones over `run_id`'s rows when given, else
      over the whole table.

    `available` names the datasets whose tables exist. A referential check against any other table
    gets a NULL metric (a failed check at its own severity) instead of making the whole query fail.
    """
    if scope == "batch" and run_id is None:
        raise ValueError("batch-scoped checks need the run id of the committing run")
    checks = checks_in_scope(contract, scope)
    if not checks:
        return None
    table = resolve(contract.name)
    batch = exp.EQ(this=col("_run_id"), expression=exp.Literal.string(run_id)) if run_id is not None else None
    metrics = []
    for check in checks:
        missing_reference = (
            check.type == "referential_integrity"
            and available is not None
            and check.reference is not None
            and check.reference.dataset not in available
        )
        where = batch if check.scope == "batch" else None
        value = exp.Null() if missing_reference else _metric(check, table, resolve, where)
        metric = exp.Cast(this=value, to=exp.DataType.build("double"))
        metrics.append(exp.alias_(metric, ident(check.name)))
    return CheckQuery(checks, exp.select(*metrics))


def missing_references(
    contract: Contract, available: Collection[str], scope: Scope | None = None
) -> dict[str, str]:
    """check name -> referenced dataset, for the referential checks (of `scope`) whose table does not
    exist."""
    return {
        c.name: c.reference.dataset
        for c in checks_in_scope(contract, scope)
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
