"""Bursts through the pending set and drains (docs/ARCHITECTURE.md, "Pending set and drains").

A burst is committed in few Delta transactions, a bad file in it is isolated and quarantined while the
others commit, a re-delivered event for a pending object adds nothing, and a crash after any Task of
any drain, resumed, ends with the table of a clean run: 0 rows lost, 0 duplicated.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import DATASETS, ROOT, Cli, write_lineitem
from test_crash_resume import TASK_STATES, crash_log, crash_run_files, table_rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def delta_commits(home: Path, table: str = "lineitem") -> list[dict[str, Any]]:
    log = home / "buckets" / "lake" / "tables" / table / "_delta_log"
    commits = []
    for path in sorted(log.glob("*.json")):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if "commitInfo" in entry:
                commits.append(entry["commitInfo"])
    return commits


def burst(tmp_path: Path, good: int) -> tuple[list[Path], Path]:
    files = [write_lineitem(tmp_path / f"lineitem_{n:03d}.csv", 1 + n * 100, 20) for n in range(good)]
    bad = write_lineitem(tmp_path / "lineitem_zero.csv", 90_000, 10, quantity=0)  # fails quantity_positive
    return files, bad


def test_a_burst_commits_in_one_transaction_and_a_bad_file_is_isolated(tmp_path: Path, cli: Cli) -> None:
    files, bad = burst(tmp_path, 12)
    malformed = tmp_path / "lineitem_broken.csv"
    malformed.write_bytes(b"\xff\xfe not a csv at all\n")
    sources = [*files[:6], bad, *files[6:], malformed]

    result = cli("run", *map(str, sources), "--no-spark", "--json")

    assert result.exit_code == 1  # two files failed
    runs = {Path(r["key"]).name: r for r in result.json()["runs"]}
    assert {n: r["status"] for n, r in runs.items() if r["status"] != "SUCCEEDED"} == {
        "lineitem_zero.csv": "QUARANTINED",
        "lineitem_broken.csv": "QUARANTINED",
    }
    for name in ("lineitem_zero.csv", "lineitem_broken.csv"):
        run_id = runs[name]["run_id"]
        reason = cli.home / "buckets" / "quarantine" / "objects" / "lineitem" / run_id / f"{name}.reason.json"
        assert reason.is_file(), name
    # Exactly the good files' rows, once each.
    rows = table_rows(cli.home)
    assert sum(rows.values()) == 12 * 20
    assert max(rows.values()) == 1
    # The good files went in together: a few ingest commits (the failed batch, then its halves, until the
    # bad file is alone; the malformed one is named by its error and split out before any commit).
    ingests = [
        c for c in delta_commits(cli.home) if "lakehouse.run_id" in json.loads(c.get("userMetadata") or "{}")
    ]
    app_ids = [json.loads(c["userMetadata"])["lakehouse.app_ids"] for c in ingests]
    assert len(ingests) <= 9, [len(a) for a in app_ids]  # 2 x ceil(log2(13)) + 1
    from deltalake import DeltaTable

    table = DeltaTable(str(cli.home / "buckets" / "lake" / "tables" / "lineitem"))
    live = {r["run_id"] for r in result.json()["runs"] if r["status"] == "SUCCEEDED"}
    assert len(live) == 12
    assert all(table.transaction_version(a) is not None for ids in app_ids for a in ids)
    # Every object has its own ledger record, and nothing is left pending or leased.
    assert not list((cli.home / "state" / "pending").glob("*/*.json"))
    assert not (cli.home / "state" / "leases" / "lineitem.json").exists()


def test_a_redelivered_event_for_a_pending_object_adds_nothing(tmp_path: Path, cli: Cli) -> None:
    from lakehouse.local.executor import LocalOptions, LocalPipeline

    source = write_lineitem(tmp_path / "lineitem_once.csv", 1, 15)
    pipeline = LocalPipeline(
        LocalOptions(home=cli.home, datasets_dir=DATASETS, project_root=ROOT, spark=False, reports=False)
    )
    key = pipeline.land_file(source)
    info = pipeline.rt.adapters.objects.head("landing", key)
    first = pipeline.submit(key, info=info)
    again = pipeline.submit(key, info=info)  # the same object version: an S3/SQS re-delivery

    assert first is not None
    assert again is not None
    assert first["queued"] is True
    assert again["queued"] is False
    assert again["run_id"] == first["run_id"]
    assert len(pipeline.rt.adapters.pending.items("lineitem")) == 1

    records = pipeline.drain()
    assert [r.status for r in records] == ["SUCCEEDED"]
    assert sum(table_rows(cli.home).values()) == 15
    # After it is ingested, the same event once more queues nothing at all.
    late = pipeline.submit(key, info=info)
    assert late is not None
    assert late["queued"] is False
    assert pipeline.rt.adapters.pending.items("lineitem") == []


def test_an_object_landing_during_a_drain_is_taken_by_the_next_one(tmp_path: Path, cli: Cli) -> None:
    from lakehouse.local.executor import LocalOptions, LocalPipeline

    first = write_lineitem(tmp_path / "lineitem_a.csv", 1, 10)
    second = write_lineitem(tmp_path / "lineitem_b.csv", 100, 10)
    pipeline = LocalPipeline(
        LocalOptions(home=cli.home, datasets_dir=DATASETS, project_root=ROOT, spark=False, reports=False)
    )
    started = pipeline.submit(pipeline.land_file(first))
    assert started is not None
    assert started["started"]
    landed: list[str] = []

    def land_second(_: Any) -> None:
        if not landed:  # while the first drain is about to run, the second file arrives
            landed.append(pipeline.land_file(second))
            again = pipeline.submit(landed[0])
            assert again is not None
            assert again["queued"]
            assert not again["started"]

    records = pipeline.drain(on_start=land_second)

    assert sorted(r.status for r in records) == ["SUCCEEDED", "SUCCEEDED"]
    assert sum(table_rows(cli.home).values()) == 20
    assert pipeline.rt.adapters.pending.items("lineitem") == []


def clean_burst(tmp_path: Path, sources: list[Path]) -> tuple[dict[str, str], Counter[tuple[Any, ...]], int]:
    cli = Cli(tmp_path / "clean")
    result = cli("run", *map(str, sources), "--no-spark", "--json")
    statuses = {Path(r["key"]).name: r["status"] for r in result.json()["runs"]}
    drains = [
        r for r in cli("runs", "--json", "--limit", "100", "--drains").json() if "-drain-" in r["run_id"]
    ]
    tasks = sum(1 for d in drains for s in d.get("path") or [] if s in TASK_STATES)
    return statuses, table_rows(cli.home), tasks


def test_a_crash_after_every_task_of_every_drain_resumes_to_the_clean_table(tmp_path: Path) -> None:
    files, bad = burst(tmp_path, 2)
    sources = [files[0], bad, files[1]]
    statuses, clean_rows, tasks = clean_burst(tmp_path, sources)
    assert statuses == {
        "lineitem_000.csv": "SUCCEEDED",
        "lineitem_001.csv": "SUCCEEDED",
        "lineitem_zero.csv": "QUARANTINED",
    }
    assert tasks >= 20, tasks  # a split batch, the good half, the bad one alone

    for kill_after in range(1, tasks + 1):
        cli = Cli(tmp_path / f"crash-{kill_after}")
        code = crash_run_files(cli.home, sources, kill_after)
        assert code == -signal.SIGKILL, (
            f"task {kill_after}: expected the injected crash, exit {code}\n{crash_log(cli.home)}"
        )
        cli("resume", "--no-spark", "--json")
        rows = table_rows(cli.home)
        lost, duplicated = clean_rows - rows, rows - clean_rows
        assert (sum(lost.values()), sum(duplicated.values())) == (0, 0), kill_after
        ledger = {
            Path(r["key"]).name: r["status"]
            for r in cli("runs", "--json", "--limit", "100").json()
            if "-drain-" not in r["run_id"]
        }
        assert ledger == statuses, kill_after
        assert not list((cli.home / "state" / "pending").glob("*/*.json")), kill_after
        assert not (cli.home / "state" / "leases" / "lineitem.json").exists(), kill_after


def test_a_backfill_over_objects_partly_ingested_live_adds_each_exactly_once(
    tmp_path: Path, cli: Cli
) -> None:
    live = [write_lineitem(tmp_path / f"lineitem_live{n}.csv", 1 + n * 100, 10) for n in range(2)]
    assert cli("run", *map(str, live), "--no-spark").exit_code == 0
    # Two more objects landed while nothing listened (no events), and one live object's ledger record
    # is lost: its app transaction in the table is what keeps it from being added twice.
    landing = cli.home / "buckets" / "landing" / "lineitem"
    for n in (2, 3):
        write_lineitem(landing / f"lineitem_quiet{n}.csv", 1 + n * 100, 10)
    runs = {Path(r["key"]).name: r for r in cli("runs", "--json").json()}
    (cli.home / "state" / "runs" / f"{runs['lineitem_live1.csv']['run_id']}.json").unlink()

    result = cli("backfill", "lineitem/", "--no-spark", "--json", "--batch-size", "10")

    assert result.exit_code == 0, result.stdout + result.stderr
    statuses = {Path(r["key"]).name: r["status"] for r in result.json()["runs"]}
    assert statuses == {
        "lineitem_live0.csv": "SUCCEEDED",  # processed live: not queued again, its record reported
        "lineitem_live1.csv": "DUPLICATE",  # queued again, and found in the table
        "lineitem_quiet2.csv": "SUCCEEDED",
        "lineitem_quiet3.csv": "SUCCEEDED",
    }
    rows = table_rows(cli.home)
    assert sum(rows.values()) == 40
    assert max(rows.values()) == 1
    again = cli("backfill", "lineitem/", "--no-spark", "--json")
    assert {r["status"] for r in again.json()["runs"]} <= {"SUCCEEDED", "DUPLICATE"}
    assert sum(table_rows(cli.home).values()) == 40


def test_batch_size_one_keeps_one_object_per_drain(tmp_path: Path, cli: Cli) -> None:
    files = [write_lineitem(tmp_path / f"lineitem_s{n}.csv", 1 + n * 100, 5) for n in range(3)]
    assert cli("run", *map(str, files), "--no-spark", "--batch-size", "1").exit_code == 0
    drains = [r for r in cli("runs", "--json", "--drains").json() if "-drain-" in r["run_id"]]
    assert len(drains) == 3
    assert sum(table_rows(cli.home).values()) == 15
