"""The engine-neutral pieces of the ingest flow (lakehouse.ingest_core): predicates, messages, resume."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from lakehouse.commit_log import commit_metadata
from lakehouse.ingest_core import (
    Counts,
    IngestResult,
    Txn,
    all_rejected_error,
    already_applied,
    fail_rule_error,
    merge_predicate,
    partition_predicate,
)
from lakehouse.sql.compiler import RunMeta
from lakehouse.state import CommitResult

META = RunMeta(
    source_uri="s3://landing/a.csv",
    source_version="v1",
    ingested_at=datetime(2026, 1, 1, tzinfo=UTC),
    run_id="run-a",
)
TXN = Txn("lakehouse:orders:abc", 1, META)


def _commit(version: int, run_id: str, app_id: str, added: int = 0) -> dict[str, object]:
    meta = commit_metadata(run_id, [app_id], "s3://landing/a.csv")
    return {"version": version, "operationMetrics": {"num_added_rows": added}, **meta}


def test_partition_predicate_quotes_values_for_each_dialect() -> None:
    rows = [("it's", None), ("b", "2026-01-01")]
    duck = partition_predicate(["region", "day"], rows, "duckdb")
    assert (
        duck == "(\"region\" = 'it''s' AND \"day\" IS NULL) OR (\"region\" = 'b' AND \"day\" = '2026-01-01')"
    )
    spark = partition_predicate(["region", "day"], rows, "spark")
    assert spark.startswith("(`region` = 'it\\'s' AND `day` IS NULL)")
    assert partition_predicate(["region"], [], "duckdb") == "false"


def test_merge_predicate_joins_target_and_source_on_the_key() -> None:
    assert merge_predicate(["id", "day"], "duckdb") == 't."id" = s."id" AND t."day" = s."day"'
    assert merge_predicate(["id"], "spark") == "t.`id` = s.`id`"


def test_own_commit_is_resumed_with_its_rows_and_version() -> None:
    history = [_commit(3, "other", "x"), _commit(2, "run-a", TXN.app_id, added=7)]
    result = already_applied(history, 3, TXN)
    assert (result.status, result.resumed, result.rows_written) == ("committed", True, 7)
    assert (result.version_before, result.version_after) == (1, 2)


def test_another_runs_commit_is_a_duplicate_at_the_current_version() -> None:
    history = [_commit(2, "run-b", TXN.app_id, added=7)]
    result = already_applied(history, 5, TXN)
    assert (result.status, result.duplicate_of, result.rows_written) == ("duplicate", "run-b", 0)
    assert (result.version_before, result.version_after) == (5, 5)
    # A commit beyond the history searched: still a duplicate, of an unknown run.
    assert already_applied([], 5, TXN).duplicate_of is None


def test_txn_applied_by_a_version_at_least_its_own() -> None:
    assert not TXN.applied_by(None)
    assert TXN.applied_by(1)
    assert TXN.applied_by(2)
    assert not Txn(TXN.app_id, 2, META).applied_by(1)


def test_messages_name_the_file_and_the_counts() -> None:
    counts = Counts(total=5, dropped=2, quarantined=3, malformed=1)
    assert counts.accepted == 0
    assert str(all_rejected_error("a.csv", counts)) == (
        "a.csv: every row was rejected (3 quarantined, 2 dropped, 1 malformed); nothing to commit"
    )
    assert "malformed" not in str(all_rejected_error("a.csv", counts, with_malformed=False))
    error = fail_rule_error("a.csv", 2, (4, "amount_positive"))
    assert str(error) == (
        "a.csv: 2 row(s) break a rule whose action is fail; first at data row 4: amount_positive"
    )
    assert json.dumps(counts.__dict__)  # plain values, loggable


def test_the_commit_result_fields_have_one_definition() -> None:
    """`$.commit` is listed once, in `lakehouse.state.CommitResult`; the engines' result adds only where
    they wrote the rejects, and what a stage publishes of it is a CommitResult as is."""
    assert issubclass(IngestResult, CommitResult)
    assert set(IngestResult.model_fields) - set(CommitResult.model_fields) == {"rejects_path"}
    result = IngestResult(status="committed", rows_read=3, rows_written=2, rejects_path="/w/rejects.parquet")
    published = result.as_dict()
    assert published.pop("rejects_path") == "/w/rejects.parquet"
    assert CommitResult.model_validate(published).model_dump(mode="json") == published
    assert json.loads(json.dumps(result.as_dict()))["rows_written"] == 2  # commit.json is plain JSON
