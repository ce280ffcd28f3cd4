"""Delta file skipping (lakehouse.local.pruning): only files that cannot hold a kept row are dropped."""

from __future__ import annotations

import sqlglot

from lakehouse.local.pruning import FileStats, files_overlapping, prune

# Three batches of `t`, keys increasing; `r` has two files.
STATS = {
    "t": FileStats(
        ("a", "b", "c"),
        {"_run_id": ["run-1", "run-2", "run-3"], "k": [0, 100, 200]},
        {"_run_id": ["run-1", "run-2", "run-3"], "k": [99, 199, 299]},
    ),
    "r": FileStats(("x", "y"), {"id": [0, 150]}, {"id": [149, 400]}),
}


def _prune(sql: str) -> dict[str, tuple[str, list[int]]]:
    return prune(sqlglot.parse_one(sql, read="athena"), STATS.get).views


def test_a_run_filter_keeps_the_runs_files() -> None:
    assert list(_prune("SELECT count(*) FROM t WHERE _run_id = 'run-2' AND k > 0").values()) == [("t", [1])]


def test_a_predicate_that_is_not_an_and_ed_equality_prunes_nothing() -> None:
    assert _prune("SELECT count(*) FROM t WHERE _run_id = 'run-2' OR k > 0") == {}
    assert _prune("SELECT count(*) FROM t WHERE _run_id <> 'run-2'") == {}
    assert _prune("SELECT count(*) FROM t WHERE other._run_id = 'run-2'") == {}
    # A joined subquery that may carry its own `_run_id`: whose column the filter reads is not known.
    assert (
        _prune("SELECT count(*) FROM t JOIN (SELECT * FROM r) AS q ON t.k = q.id WHERE _run_id = 'run-2'")
        == {}
    )


def test_the_uniqueness_semi_join_keeps_the_files_its_key_range_meets() -> None:
    sql = (
        "SELECT count(*) FROM t AS x JOIN (SELECT DISTINCT k FROM t WHERE _run_id = 'run-3') AS b "
        "ON x.k = b.k"
    )
    assert sorted(_prune(sql).values()) == [("t", [2]), ("t", [2])]
    # A LEFT join keeps every row of x: no pruning of x.
    left = sql.replace(" JOIN ", " LEFT JOIN ")
    assert sorted(_prune(left).values()) == [("t", [2])]


def test_the_reference_scan_keeps_the_files_the_batch_values_meet() -> None:
    sql = "SELECT DISTINCT id FROM r WHERE id IN (SELECT k FROM t WHERE _run_id = 'run-2')"
    assert sorted(_prune(sql).values()) == [("r", [0, 1]), ("t", [1])]
    sql = "SELECT DISTINCT id FROM r WHERE id IN (SELECT k FROM t WHERE _run_id = 'run-1')"
    assert sorted(_prune(sql).values()) == [("r", [0]), ("t", [0])]


def test_unknown_statistics_and_truncated_strings_keep_the_file() -> None:
    stats = FileStats(("a", "b", "c"), {"s": [None, "drain-aaa", "zz"]}, {"s": [None, "drain-a", "zz"]})
    # "drain-a" may be the truncated max of "drain-aaa...": the file may hold "drain-aax".
    assert files_overlapping(stats, "s", "drain-aax", "drain-aax") == [0, 1]
    assert files_overlapping(stats, "missing", 1, 1) == [0, 1, 2]
