"""Concurrent writers: exactly-once under a race, and commit retries under contention.

Writers run in separate (spawned) processes, as Lambda invocations would. The table is created first:
racing table creation is not what is tested here (docs/ARCHITECTURE.md, "Facts this design relies on").
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from engine_helpers import ingest_in_process, meta_for, read_rows

from lakehouse.adapters.aws import S3ObjectStore
from lakehouse.contracts import parse_contract
from lakehouse.duckdb_engine.delta import create_table

CONTRACT = """
name: events
landing_prefix: events/
format: {type: csv}
columns:
  - {name: id, type: bigint, nullable: false}
  - {name: writer, type: int}
  - {name: payload, type: string}
primary_key: [id]
write_mode: append
"""


@pytest.fixture(
    params=["local", pytest.param("s3", marks=[pytest.mark.s3, pytest.mark.xdist_group("moto_s3")])]
)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str] | None]:
    """(table uri, storage options) of a pre-created, empty table."""
    if request.param == "local":
        uri, options = str(tmp_path / "events"), None
    else:
        env = request.getfixturevalue("s3_env")
        store = S3ObjectStore(env.region, env.endpoint_url)
        uri, options = store.uri(env.buckets["lake"], "tables/events"), store.storage_options()
    contract = parse_contract(CONTRACT, "events.yaml")
    from lakehouse.sql.compiler import METADATA_COLUMNS

    meta_types = {"_ingested_at": "timestamp"}
    columns = [(c.name, c.type) for c in contract.columns] + [
        (m, meta_types.get(m, "string")) for m in METADATA_COLUMNS
    ]
    create_table(uri, columns, [], options)
    return uri, options


def _write(folder: Path, name: str, writer: int, rows: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    lines = ["id,writer,payload"] + [f"{writer * 1_000_000 + i},{writer},w{writer}-r{i}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(jobs: list[tuple[Any, ...]], processes: int) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(processes)
        with ctx.Pool(processes) as pool:
            return pool.map(ingest_in_process, [(*job, barrier) for job in jobs])


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_two_processes_commit_the_same_file_once(
    target: tuple[str, dict[str, str] | None], tmp_path: Path, attempt: int
) -> None:
    uri, options = target
    path = _write(tmp_path / "in", "same.csv", writer=1, rows=500)
    app = "lakehouse:events:same-object"
    jobs = [(str(path), CONTRACT, uri, str(tmp_path / f"w{i}"), app, f"run-{i}", options) for i in range(2)]

    outcomes = _run(jobs, 2)

    statuses = sorted(o["status"] if o["status"] != "error" else o["error"] for o in outcomes)
    assert statuses.count("committed") == 1, outcomes
    assert statuses in (["committed", "duplicate"], ["CommitConflictError", "committed"]), outcomes
    rows = read_rows(uri, options)
    assert len(rows) == 500
    assert len({r["id"] for r in rows}) == 500
    table = DeltaTable(uri, storage_options=options)
    assert table.transaction_version(app) == 1
    assert table.version() == 1  # create + exactly one commit


@pytest.mark.slow
def test_eight_writers_of_different_files_all_land_once(
    target: tuple[str, dict[str, str] | None], tmp_path: Path
) -> None:
    uri, options = target
    jobs = []
    for writer in range(8):
        path = _write(tmp_path / "in", f"part-{writer}.csv", writer=writer, rows=200)
        jobs.append(
            (
                str(path),
                CONTRACT,
                uri,
                str(tmp_path / f"w{writer}"),
                f"lakehouse:events:{writer}",
                f"run-{writer}",
                options,
            )
        )

    outcomes = _run(jobs, 8)

    assert [o["status"] for o in outcomes] == ["committed"] * 8, outcomes
    assert all(o["rows_written"] == 200 for o in outcomes)
    rows = read_rows(uri, options)
    assert len(rows) == 1600
    assert len({r["id"] for r in rows}) == 1600
    assert {r["writer"] for r in rows} == set(range(8))
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 8
    assert sorted({o["version"] for o in outcomes}) == list(range(1, 9))
    for writer in range(8):
        assert table.transaction_version(f"lakehouse:events:{writer}") == 1


def test_a_writer_that_loses_the_race_after_its_snapshot_reports_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic version of the race: another writer commits the same app id between our snapshot
    read and our commit. delta-rs rejects our commit (concurrent transaction), the retry re-reads the
    snapshot, finds the app transaction and reports a duplicate: the rows land once."""
    from deltalake import CommitProperties, Transaction

    from lakehouse.duckdb_engine import ingest as engine

    uri = str(tmp_path / "events")
    contract = parse_contract(CONTRACT, "events.yaml")
    first = _write(tmp_path / "in", "first.csv", writer=1, rows=5)
    engine.ingest_file(
        first, contract, uri, meta_for(first), app_id="lakehouse:events:first", work_dir=tmp_path / "w"
    )
    start = DeltaTable(uri).version()
    path = _write(tmp_path / "in", "same.csv", writer=3, rows=10)
    app = "lakehouse:events:raced"
    real_write = engine.write_deltalake
    seen_versions: list[int] = []

    def racing_write(table: DeltaTable, data: Any, **kwargs: Any) -> None:
        from arro3.core import Table

        seen_versions.append(table.version())
        if len(seen_versions) == 1:  # the rival commits first, with the same app transaction
            data = Table.from_arrow(data)  # the engine's stream is one-shot: keep it for both writers
            rival = CommitProperties(app_transactions=[Transaction(app, 1)])
            real_write(DeltaTable(uri), data, mode="append", commit_properties=rival)
        real_write(table, data, **kwargs)

    monkeypatch.setattr(engine, "write_deltalake", racing_write)
    result = engine.ingest_file(path, contract, uri, meta_for(path), app_id=app, work_dir=tmp_path / "w2")

    assert seen_versions == [start]  # one attempt; the retry saw the rival's transaction and did not write
    assert result.status == "duplicate"
    assert result.rows_written == 0
    rows = read_rows(uri)
    assert len(rows) == 15
    assert sorted(r["id"] for r in rows if r["writer"] == 3) == [3_000_000 + i for i in range(10)]
    assert DeltaTable(uri).version() == start + 1  # the rival's commit only
