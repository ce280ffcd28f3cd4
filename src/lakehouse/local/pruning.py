"""Delta file skipping for the local query engine: which of a table's files a scan can need, from the
min/max statistics of the Delta log's add actions, before DuckDB opens any file.

DuckDB prunes Parquet row groups by their own statistics, but only after opening every file of the view
(its footer): a scan of one batch's rows would still touch every file of the table. Athena's Delta
connector skips files from the Delta log's statistics; this does the same for the shapes the check
queries have (sql/checks.py), so a batch check's cost follows the batch, not the table:

- a `SELECT ... FROM t WHERE ... AND _run_id = '<run>'` reads only the files whose `_run_id` range holds
  the run (each batch writes its own files);
- the semi-join of batch uniqueness, `FROM t AS x JOIN (SELECT DISTINCT k FROM t WHERE _run_id = '<run>')
  AS b ON x.k = b.k`, reads only the files whose `k` range overlaps the batch files' `k` range;
- the reference scan of batch referential integrity, `FROM r WHERE r.k IN (SELECT c FROM t WHERE
  _run_id = '<run>')`, reads only the files of `r` whose `k` range overlaps the batch files' `c` range.

Every rule only drops files that cannot hold a row the predicate keeps (an AND-ed equality, an inner join
on equal keys, an IN): the result is the same as without pruning. A file without statistics is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

RUN_COLUMN = "_run_id"


@dataclass(frozen=True)
class FileStats:
    """A table's active files (add-action paths) and each column's per-file min / max (None: unknown)."""

    paths: tuple[str, ...]
    mins: Mapping[str, Sequence[Any]]
    maxs: Mapping[str, Sequence[Any]]

    def column_range(self, column: str, keep: Sequence[int]) -> tuple[Any, Any] | None:
        """(min, max) of `column` over the files `keep`; None when a file lacks statistics."""
        lows, highs = self.mins.get(column), self.maxs.get(column)
        if lows is None or highs is None or not keep:
            return None
        picked_lows = [lows[i] for i in keep]
        picked_highs = [highs[i] for i in keep]
        if any(v is None for v in picked_lows) or any(v is None for v in picked_highs):
            return None
        try:
            return min(picked_lows), max(picked_highs)
        except TypeError:
            return None


def _may_hold(low: Any, high: Any, lo: Any, hi: Any) -> bool:
    """Whether a file whose column lies in [low, high] may hold a value in [lo, hi]. Strings in Delta
    statistics may be truncated prefixes: a max is compared on its own length."""
    if low is None or high is None:
        return True
    try:
        if isinstance(high, str) and isinstance(hi, str) and isinstance(lo, str):
            return bool(low <= hi and lo[: len(high)] <= high)
        return bool(low <= hi and lo <= high)
    except TypeError:
        return True


def files_overlapping(
    stats: FileStats, column: str, lo: Any, hi: Any, among: Sequence[int] | None = None
) -> list[int]:
    """Indexes of the files (of `among`, default all) whose `column` range may meet [lo, hi]."""
    indexes = range(len(stats.paths)) if among is None else among
    lows, highs = stats.mins.get(column), stats.maxs.get(column)
    if lows is None or highs is None:
        return list(indexes)
    return [i for i in indexes if _may_hold(lows[i], highs[i], lo, hi)]


@dataclass
class Pruned:
    """The query with pruned scans, and for each pruned view: (table name, the file indexes it reads)."""

    tree: exp.Expr
    views: dict[str, tuple[str, list[int]]] = field(default_factory=dict)


def _conjuncts(node: exp.Expr | None) -> list[exp.Expr]:
    if node is None:
        return []
    return list(node.flatten()) if isinstance(node, exp.And) else [node]


def _run_literal(select: exp.Select, table: exp.Table) -> str | None:
    """The '<run>' of a top-level AND-ed `_run_id = '<run>'` of `table` in the select's WHERE."""
    where = select.args.get("where")
    for conjunct in _conjuncts(where.this if where is not None else None):
        if (
            isinstance(conjunct, exp.EQ)
            and isinstance(conjunct.this, exp.Column)
            and conjunct.this.name == RUN_COLUMN
            and conjunct.this.table in ("", table.alias_or_name)
            and isinstance(conjunct.expression, exp.Literal)
            and conjunct.expression.is_string
        ):
            return str(conjunct.expression.this)
    return None


def _from_table(select: exp.Select) -> exp.Table | None:
    """The select's FROM table when any join is to a subquery without a `_run_id` column (so an
    unqualified `_run_id` is the table's)."""
    source = select.args.get("from_") or select.args.get("from")
    if source is None or not isinstance(source.this, exp.Table):
        return None
    for join in select.args.get("joins") or []:
        inner = join.this.this if isinstance(join.this, exp.Subquery) else None
        if not isinstance(inner, exp.Select) or RUN_COLUMN in inner.named_selects or inner.is_star:
            return None
    return source.this


def _single_table(select: exp.Select) -> exp.Table | None:
    return None if select.args.get("joins") else _from_table(select)


class _Pruner:
    def __init__(self, stats_of: Callable[[str], FileStats | None]) -> None:
        self.stats_of = stats_of
        self.views: dict[str, tuple[str, list[int]]] = {}

    def batch_files(self, select: exp.Select) -> tuple[str, list[int]] | None:
        """(table, files) of a select of one table filtered on `_run_id = '<run>'`."""
        table = _from_table(select)
        run = _run_literal(select, table) if table is not None else None
        if table is None or run is None:
            return None
        stats = self.stats_of(table.name)
        if stats is None:
            return None
        return table.name, files_overlapping(stats, RUN_COLUMN, run, run)

    def replace(self, table: exp.Table, files: list[int]) -> None:
        view = f"__pruned_{len(self.views)}_{table.name}"
        self.views[view] = (table.name, files)
        alias = table.alias or table.name
        table.replace(
            exp.Table(
                this=exp.to_identifier(view, quoted=True),
                alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)),
            )
        )

    def key_files(
        self, table: str, batch: tuple[str, list[int]], pairs: Sequence[tuple[str, str]]
    ) -> list[int] | None:
        """Files of `table` whose ranges of each key column meet the batch files' ranges of its partner."""
        stats, batch_stats = self.stats_of(table), self.stats_of(batch[0])
        if stats is None or batch_stats is None:
            return None
        keep: list[int] | None = None
        for column, batch_column in pairs:
            bounds = batch_stats.column_range(batch_column, batch[1])
            if bounds is None:
                continue
            keep = files_overlapping(stats, column, bounds[0], bounds[1], keep)
        return keep

    def semi_join(self, select: exp.Select) -> None:
        """`FROM t AS x JOIN (batch keys of t) AS b ON x.k = b.k [AND ...]`: prune x by key ranges."""
        source = select.args.get("from_") or select.args.get("from")
        joins = select.args.get("joins") or []
        if source is None or not isinstance(source.this, exp.Table) or len(joins) != 1:
            return
        join = joins[0]
        if join.side or join.kind not in ("", None, "INNER") or not isinstance(join.this, exp.Subquery):
            return
        inner = join.this.this
        batch = self.batch_files(inner) if isinstance(inner, exp.Select) else None
        on = join.args.get("on")
        if batch is None or on is None:
            return
        outer, sub = source.this.alias_or_name, join.this.alias_or_name
        pairs = []
        for conjunct in _conjuncts(on):
            if not (
                isinstance(conjunct, exp.EQ)
                and all(isinstance(s, exp.Column) for s in (conjunct.this, conjunct.expression))
            ):
                return
            left, right = conjunct.this, conjunct.expression
            if left.table == sub:
                left, right = right, left
            if left.table != outer or right.table != sub:
                return
            pairs.append((left.name, right.name))
        keep = self.key_files(source.this.name, batch, pairs)
        if keep is not None:
            self.replace(source.this, keep)

    def in_subquery(self, select: exp.Select) -> None:
        """`FROM r WHERE r.k IN (SELECT c FROM t WHERE _run_id = '<run>')`: prune r by c's range."""
        table, where = _single_table(select), select.args.get("where")
        if table is None or where is None:
            return
        for conjunct in _conjuncts(where.this):
            query = conjunct.args.get("query") if isinstance(conjunct, exp.In) else None
            inner = query.this if isinstance(query, exp.Subquery) else query
            if not isinstance(conjunct.this, exp.Column) or not isinstance(inner, exp.Select):
                continue
            batch = self.batch_files(inner)
            selected = inner.expressions
            if batch is None or len(selected) != 1 or not isinstance(selected[0], exp.Column):
                continue
            keep = self.key_files(table.name, batch, [(conjunct.this.name, selected[0].name)])
            if keep is not None:
                self.replace(table, keep)
                return


def prune(tree: exp.Expr, stats_of: Callable[[str], FileStats | None]) -> Pruned:
    """`tree` (an Athena query; changed in place) with the scans the rules above prune reading views
    over fewer files. `stats_of(table name)` gives a table's file statistics (None: not prunable)."""
    pruner = _Pruner(stats_of)
    # Innermost selects first: a batch scan is recognised before its table is replaced.
    selects = sorted(tree.find_all(exp.Select), key=lambda s: -s.depth)
    for select in selects:
        pruner.semi_join(select)
        pruner.in_subquery(select)
    for select in selects:
        table = _from_table(select)
        batch = pruner.batch_files(select)
        if table is not None and batch is not None:
            pruner.replace(table, batch[1])
    return Pruned(tree, pruner.views)
