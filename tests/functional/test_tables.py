"""Delta table operations (lakehouse.tables), on a local folder and on S3 (moto server subprocess).

Tables are written the way the engine writes them: a DuckDB relation handed to write_deltalake (no
pyarrow). pyarrow is used here only to read rows back for comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import pytest
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from lakehouse import tables
from lakehouse.adapters.aws import S3ObjectStore
from lakehouse.adapters.local import LocalObjectStore
from lakehouse.errors import CommitConflictError, InvalidInputError
from lakehouse.ports import ObjectStore


@dataclass
class Lake:
    store: ObjectStore
    bucket: str
    options: dict[str, str]

    def uri(self, name: str) -> str:
        return self.store.uri(self.bucket, f"tables/{name}")

    def keys(self, name: str, suffix: str = "") -> list[str]:
        return [k for k in self.store.list(self.bucket, f"tables/{name}/") if k.endswith(suffix)]


@pytest.fixture(
    params=["local", pytest.param("s3", marks=[pytest.mark.s3, pytest.mark.xdist_group("moto_s3")])]
)
def lake(request: pytest.FixtureRequest, tmp_home: Path) -> Lake:
    if request.param == "local":
        store: ObjectStore = LocalObjectStore(tmp_home)
        return Lake(store, "lake", store.storage_options())
    s3_env: Any = request.getfixturevalue("s3_env")
    # The options come from the adapter, so this proves what the pipeline passes to deltalake works.
    s3 = S3ObjectStore(s3_env.region, endpoint_url=s3_env.endpoint_url)
    return Lake(s3, s3_env.buckets["lake"], s3.storage_options())


def _rows(uri: str, options: dict[str, str], version: int | None = None) -> list[tuple[Any, ...]]:
    table = DeltaTable(uri, version=version, storage_options=options or None).to_pyarrow_table()
    return sorted(tuple(r.values()) for r in table.to_pylist())


def _write(
    lake: Lake,
    name: str,
    sql: str,
    mode: Literal["error", "append"] = "append",
    commit_properties: CommitProperties | None = None,
) -> None:
    relation = duckdb.sql(sql)
    assert relation is not None
    write_deltalake(
        lake.uri(name),
        relation,
        mode=mode,
        storage_options=lake.options or None,
        configuration=tables.TABLE_CONFIGURATION if mode == "error" else None,
        commit_properties=commit_properties,
    )


def _orders(lake: Lake) -> str:
    """Version 0: 3 rows; 1: +2 rows (with an app transaction); 2: +2 rows."""
    _write(
        lake, "orders", "select range::BIGINT id, 'a' s, DATE '2026-01-01' AS day from range(3)", mode="error"
    )
    _write(
        lake,
        "orders",
        "select (10 + range)::BIGINT id, 'b' s, DATE '2026-01-02' AS day from range(2)",
        commit_properties=CommitProperties(
            app_transactions=[Transaction("lakehouse:orders:abc", 1)],
            custom_metadata={"lakehouse.run_id": "run-1"},
        ),
    )
    _write(lake, "orders", "select (20 + range)::BIGINT id, 'c' s, DATE '2026-01-03' AS day from range(2)")
    return lake.uri("orders")


def test_no_table(lake: Lake) -> None:
    uri = lake.uri("missing")
    assert tables.table_version(uri, lake.options) is None
    assert tables.versions(uri, lake.options) == []
    with pytest.raises(InvalidInputError, match="no Delta table"):
        tables.history(uri, lake.options)
    with pytest.raises(InvalidInputError, match="no Delta table"):
        tables.rollback(uri, 0, storage_options=lake.options)


def test_versions_history_and_counts(lake: Lake) -> None:
    uri = _orders(lake)
    assert tables.table_version(uri, lake.options) == 2
    assert tables.versions(uri, lake.options) == [0, 1, 2]
    hist = tables.history(uri, lake.options)
    assert [h["version"] for h in hist] == [2, 1, 0]
    assert [h["operation"] for h in hist] == ["WRITE", "WRITE", "WRITE"]
    assert hist[2]["parameters"]["mode"] == "ErrorIfExists"
    assert hist[1]["metadata"] == {"lakehouse.run_id": "run-1"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", h["timestamp"]) for h in hist)
    assert [h["version"] for h in tables.history(uri, lake.options, limit=1)] == [2]
    assert tables.row_count(uri, lake.options) == 7
    assert tables.columns(uri, lake.options) == [("id", "long"), ("s", "string"), ("day", "date")]
    assert tables.partition_columns(uri, lake.options) == []
    dt = DeltaTable(uri, storage_options=lake.options or None)
    assert dt.transaction_version("lakehouse:orders:abc") == 1


def test_tables_are_created_athena_readable(lake: Lake) -> None:
    uri = _orders(lake)
    dt = DeltaTable(uri, storage_options=lake.options or None)
    assert dt.metadata().configuration.get("delta.enableDeletionVectors") == "false"
    assert "deletionVectors" not in (dt.protocol().reader_features or [])


def test_rollback_restores_content_and_is_idempotent(lake: Lake) -> None:
    uri = _orders(lake)
    at_v1 = _rows(uri, lake.options, version=1)
    assert len(at_v1) == 5
    result = tables.rollback(uri, 1, expected_current=2, storage_options=lake.options, reason="checks failed")
    assert result["restored"] is True
    assert (result["version_before"], result["version_after"], result["restored_to"]) == (2, 3, 1)
    assert _rows(uri, lake.options) == at_v1
    assert tables.history(uri, lake.options, limit=1)[0]["operation"] == "RESTORE"
    assert tables.history(uri, lake.options, limit=1)[0]["metadata"] == {"lakehouse.reason": "checks failed"}
    # A retried rollback (same arguments) changes nothing.
    again = tables.rollback(uri, 1, expected_current=2, storage_options=lake.options)
    assert again["restored"] is False
    assert tables.table_version(uri, lake.options) == 3
    assert _rows(uri, lake.options) == at_v1
    assert tables.row_count(uri, lake.options) == 5


def test_rollback_when_already_at_version_is_a_no_op(lake: Lake) -> None:
    uri = _orders(lake)
    assert tables.rollback(uri, 2, storage_options=lake.options)["restored"] is False
    assert tables.table_version(uri, lake.options) == 2


def test_rollback_refuses_bad_version_and_foreign_commits(lake: Lake) -> None:
    uri = _orders(lake)
    with pytest.raises(InvalidInputError, match=r"versions 0\.\.2"):
        tables.rollback(uri, 5, storage_options=lake.options)
    with pytest.raises(InvalidInputError):
        tables.rollback(uri, -1, storage_options=lake.options)
    # This run left the table at 1, but someone committed 2 since: restoring would lose their commit.
    with pytest.raises(CommitConflictError, match="expected version 1, found 2"):
        tables.rollback(uri, 0, expected_current=1, storage_options=lake.options)
    assert tables.table_version(uri, lake.options) == 2


def test_maintain_compacts_checkpoints_and_vacuums(lake: Lake) -> None:
    _write(lake, "events", "select 0::BIGINT id, 'x' s", mode="error")
    for i in range(1, 6):
        _write(lake, "events", f"select {i}::BIGINT id, 'x' s")
    uri = lake.uri("events")
    before = _rows(uri, lake.options)
    data_files_before = lake.keys("events", ".parquet")
    assert len(data_files_before) == 6
    result = tables.maintain(
        uri, retention_hours=0, enforce_retention_duration=False, storage_options=lake.options
    )
    assert result["files_before"] == 6
    assert result["files_after"] == 1
    assert result["compact"]["numFilesRemoved"] == 6
    assert result["compact"]["numFilesAdded"] == 1
    assert result["vacuumed_files"] == 6
    assert result["version_after"] > result["version_before"] == 5
    assert _rows(uri, lake.options) == before
    assert tables.row_count(uri, lake.options) == 6
    # Only the compacted file remains on storage, and a checkpoint sits in the log.
    data_files_after = [k for k in lake.keys("events", ".parquet") if "/_delta_log/" not in k]
    assert len(data_files_after) == 1
    assert any(k.endswith(".checkpoint.parquet") for k in lake.keys("events"))


def test_maintain_keeps_files_within_retention(lake: Lake) -> None:
    _write(lake, "keep", "select 0::BIGINT id", mode="error")
    _write(lake, "keep", "select 1::BIGINT id")
    uri = lake.uri("keep")
    result = tables.maintain(uri, storage_options=lake.options)
    assert result["files_after"] == 1
    assert result["vacuumed_files"] == 0
    # The replaced files are still there, so the table can still be rolled back to version 1.
    tables.rollback(uri, 1, storage_options=lake.options)
    assert _rows(uri, lake.options) == [(0,), (1,)]
    assert len(lake.keys("keep", ".parquet")) >= 3


def test_stale_writer_cannot_overwrite_a_commit(lake: Lake) -> None:
    """With our storage options, commits are conditional writes: a writer holding an old snapshot
    must not replace a commit someone else made since (it lands as the next version instead)."""
    _write(lake, "race", "select 1::BIGINT id", mode="error")
    stale = DeltaTable(lake.uri("race"), storage_options=lake.options or None)
    _write(lake, "race", "select 2::BIGINT id")
    relation = duckdb.sql("select 3::BIGINT id")
    assert relation is not None
    write_deltalake(stale, relation, mode="append")
    assert tables.versions(lake.uri("race"), lake.options) == [0, 1, 2]
    assert _rows(lake.uri("race"), lake.options) == [(1,), (2,), (3,)]


def test_maintain_removes_orphans_older_than_retention_only(tmp_home: Path) -> None:
    """A crashed writer's files (never committed) go once older than the window, as in Delta VACUUM; a
    commit still being written (files newer than the window) keeps its files; the rows stay the same."""
    import os
    import shutil
    import time

    store = LocalObjectStore(tmp_home)
    lake = Lake(store, "lake", {})
    _write(lake, "crashy", "select range::BIGINT id from range(5)", mode="error")
    _write(lake, "crashy", "select 5::BIGINT id")
    uri = lake.uri("crashy")
    before = _rows(uri, {})
    folder = Path(uri)
    committed = sorted(folder.glob("*.parquet"))
    week_and_a_day_ago = time.time() - 8 * 24 * 3600
    for path in committed:  # committed files as old as the orphans: they must stay
        os.utime(path, (week_and_a_day_ago, week_and_a_day_ago))
    for name, old in [
        ("part-00000-dead-old.snappy.parquet", True),
        ("part-00000-in-flight.snappy.parquet", False),
        ("part-00001-torn-old.snappy.parquet#1", True),
        ("part-00001-torn-new.snappy.parquet#1", False),
    ]:
        shutil.copyfile(committed[0], folder / name)
        if old:
            os.utime(folder / name, (week_and_a_day_ago, week_and_a_day_ago))

    result = tables.maintain(uri, storage_options={})

    left = {p.name for p in folder.iterdir() if p.is_file()}
    assert "part-00000-dead-old.snappy.parquet" not in left
    assert "part-00001-torn-old.snappy.parquet#1" not in left
    assert {"part-00000-in-flight.snappy.parquet", "part-00001-torn-new.snappy.parquet#1"} <= left
    assert {p.name for p in committed} <= left  # replaced by compaction, but within the window
    assert result["abandoned_uploads"] == 1
    assert "part-00000-dead-old.snappy.parquet" in result["vacuumed_sample"]
    assert _rows(uri, {}) == before
    assert tables.row_count(uri) == 6
