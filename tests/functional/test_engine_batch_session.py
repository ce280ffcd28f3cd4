"""A batch's objects share one DuckDB connection, one table snapshot and the compiled plan of their
header (`lakehouse.duckdb_engine.batch.BatchSession`); each object's outcome must stay its own.

Every test stages the same objects twice, once with a shared session and once with a session per
object (what each object got before the session existed), and compares what the batch commits.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from deltalake import DeltaTable

from lakehouse.contracts.loader import parse_contract
from lakehouse.contracts.model import Contract
from lakehouse.duckdb_engine.batch import BatchSession, StagedObject, commit_staged, stage_file
from lakehouse.errors import InvalidInputError
from lakehouse.sql.compiler import RunMeta

CONTRACT = """
name: people
landing_prefix: people/
format: {type: csv, delimiter: ",", header: true, null_markers: [""]}
columns:
  - {name: id, type: bigint, nullable: false}
  - {name: name, type: string}
  - {name: score, type: int}
primary_key: [id]
write_mode: append
schema_evolution: add_columns
row_rules:
  - {rule: type, action: quarantine}
  - {rule: range, column: score, min: 0, action: drop}
"""


def contract(text: str = CONTRACT) -> Contract:
    return parse_contract(text)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def stage_all(
    files: list[Path], table: Path, work: Path, *, shared: bool, people: Contract | None = None
) -> list[StagedObject]:
    people = people or contract()
    options = {"storage_options": None, "memory_limit": "256MB", "threads": 2}
    session = BatchSession(str(table), work_dir=work / "session", **options) if shared else None  # type: ignore[arg-type]
    staged = []
    try:
        for n, path in enumerate(files):
            meta = RunMeta(
                f"s3://landing/{path.name}", f"v{n}", datetime(2026, 1, 1, 0, 0, n, tzinfo=UTC), "run"
            )
            staged.append(
                stage_file(
                    path,
                    people,
                    str(table),
                    meta,
                    app_id=f"app-{path.name}",
                    txn_version=1,
                    work_dir=work / str(n),
                    source_name=path.name,
                    session=session,
                    **options,  # type: ignore[arg-type]
                )
            )
    finally:
        if session is not None:
            session.close()
    return staged


def committed_rows(table: Path) -> list[tuple[object, ...]]:
    dt = DeltaTable(str(table))
    files = ", ".join("'" + f + "'" for f in dt.file_uris())
    names = [f.name for f in dt.schema().fields if f.name != "_ingested_at"]
    cols = ", ".join(f'"{n}"' for n in names)
    return duckdb.sql(
        f"SELECT {cols} FROM read_parquet([{files}], union_by_name=true) ORDER BY ALL"
    ).fetchall()


def both_ways(tmp_path: Path, files: list[Path]) -> tuple[list[StagedObject], list[tuple[object, ...]]]:
    """Stage and commit `files` with a shared session and with one per object; the same outcome."""
    outcomes = []
    for shared in (True, False):
        table = tmp_path / f"table-{shared}"
        staged = stage_all(files, table, tmp_path / f"work-{shared}", shared=shared)
        commit_staged(staged, contract(), str(table), "run", storage_options=None, work_dir=tmp_path / "c")
        counts = [(s.result.rows_read, s.result.rows_written, s.result.rows_rejected) for s in staged]
        outcomes.append((staged, counts, committed_rows(table)))
    (staged, counts, rows), (_, alone_counts, alone_rows) = outcomes
    assert counts == alone_counts
    assert rows == alone_rows
    return staged, rows


def test_each_object_reports_its_own_malformed_lines_on_the_shared_connection(tmp_path: Path) -> None:
    # DuckDB's reject tables collect every scan of a connection: the clean object after a malformed one
    # must not report the other's lines, and the malformed one after a clean one must report its own.
    files = [
        write(tmp_path / "a.csv", "id,name,score\n1,a,1\n2,b\n3,c,3\n"),
        write(tmp_path / "b.csv", "id,name,score\n4,d,4\n5,e,5\n"),
        write(tmp_path / "c.csv", "id,name,score\n6,f,6\n7,g,7,extra\n8,h\n9,i,9\n"),
    ]
    staged, rows = both_ways(tmp_path, files)
    assert [s.result.rows_rejected for s in staged] == [1, 0, 2]
    assert [s.result.rows_written for s in staged] == [2, 2, 2]
    assert [r[0] for r in rows] == [1, 3, 4, 5, 6, 9]
    assert staged[1].result.rejects_path is None
    rejects = duckdb.sql(
        f"SELECT source_line FROM read_parquet('{staged[2].result.rejects_path}') ORDER BY 1"
    )
    assert [r[0] for r in rejects.fetchall()] == [3, 4]


def test_objects_with_different_headers_in_one_batch_keep_their_own_columns(tmp_path: Path) -> None:
    # The compiled plan is cached per header: the object with an extra column (schema evolution in the
    # middle of the batch) and the one missing a column must each get their own plan.
    files = [
        write(tmp_path / "a.csv", "id,name,score\n1,a,1\n"),
        write(tmp_path / "b.csv", "id,name,score,city\n2,b,2,Oslo\n"),
        write(tmp_path / "c.csv", "id,score\n3,3\n"),
        write(tmp_path / "d.csv", "name,id,score\nd,4,4\n"),
    ]
    staged, rows = both_ways(tmp_path, files)
    assert [s.result.added_columns for s in staged] == [[], ["city"], [], []]
    # id, name, score, then the metadata (_source_uri, _source_version, _run_id), then city.
    assert rows == [
        (1, "a", 1, "s3://landing/a.csv", "v0", "run", None),
        (2, "b", 2, "s3://landing/b.csv", "v1", "run", "Oslo"),
        (3, None, 3, "s3://landing/c.csv", "v2", "run", None),
        (4, "d", 4, "s3://landing/d.csv", "v3", "run", None),
    ]


def test_each_object_is_stamped_with_its_own_metadata(tmp_path: Path) -> None:
    # One compiled plan for the batch: the literals of each object (source, version, time) differ.
    files = [write(tmp_path / f"o{n}.csv", f"id,name,score\n{n},x'{n},{n}\n") for n in range(3)]
    staged = stage_all(files, tmp_path / "t", tmp_path / "w", shared=True)
    commit_staged(
        staged, contract(), str(tmp_path / "t"), "run", storage_options=None, work_dir=tmp_path / "c"
    )
    dt = DeltaTable(str(tmp_path / "t"))
    files_sql = ", ".join("'" + f + "'" for f in dt.file_uris())
    got = duckdb.sql(
        f"SELECT id, name, _source_uri, _source_version, strftime(_ingested_at AT TIME ZONE 'UTC', '%S') "
        f"FROM read_parquet([{files_sql}]) ORDER BY id"
    ).fetchall()
    assert got == [(n, f"x'{n}", f"s3://landing/o{n}.csv", f"v{n}", f"{n:02d}") for n in range(3)]


def test_rules_read_each_objects_rows_not_the_previous_objects(tmp_path: Path) -> None:
    # `transformed` is a table per object on the shared connection: counts and staging read this object.
    files = [
        write(tmp_path / "a.csv", "id,name,score\n1,a,-1\n2,b,x\n3,c,3\n"),
        write(tmp_path / "b.csv", "id,name,score\n4,d,4\n"),
    ]
    staged, rows = both_ways(tmp_path, files)
    assert [(s.result.rows_dropped, s.result.rows_rejected, s.result.rows_written) for s in staged] == [
        (1, 1, 1),
        (0, 0, 1),
    ]
    assert [r[0] for r in rows] == [3, 4]


def test_a_bad_object_after_good_ones_raises_its_own_error(tmp_path: Path) -> None:
    good = write(tmp_path / "a.csv", "id,name,score\n1,a,1\n")
    bad = write(tmp_path / "b.csv", "id,name,score\n2,b,x\n")  # its only row is quarantined
    with pytest.raises(InvalidInputError, match=r"b\.csv: every row was rejected"):
        stage_all([good, bad], tmp_path / "t", tmp_path / "w", shared=True)
