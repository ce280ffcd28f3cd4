"""Object versions are the unit of exactly-once: two different files under one name are two versions,
two runs, each ingesting exactly its own bytes (real `lakehouse` processes), and the watcher takes a file
only once its writer has closed it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import DATASETS, Cli, csv_rows, write_lineitem, write_orders

from lakehouse.adapters.local import file_lock

pytestmark = pytest.mark.e2e

ROWS = 2_000


def _lineitem_by_run(cli: Cli) -> dict[str, list[int]]:
    rows = cli(
        "query", "SELECT _run_id, l_orderkey FROM lakehouse.lineitem ORDER BY l_orderkey", "-f", "json"
    ).json()
    by_run: dict[str, list[int]] = {}
    for row in rows:
        by_run.setdefault(row["_run_id"], []).append(int(row["l_orderkey"]))
    return by_run


def _lineitem_by_version(cli: Cli) -> dict[str, list[int]]:
    rows = cli(
        "query",
        "SELECT _source_version, l_orderkey FROM lakehouse.lineitem ORDER BY l_orderkey",
        "-f",
        "json",
    ).json()
    by_version: dict[str, list[int]] = {}
    for row in rows:
        by_version.setdefault(row["_source_version"], []).append(int(row["l_orderkey"]))
    return by_version


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def _pending(home: Path) -> int:
    """Object versions recorded in lineitem's pending set (what on_object_created does per arrival)."""
    pending = home / "state" / "pending" / "lineitem"
    return len(list(pending.glob("*.json"))) if pending.is_dir() else 0


@pytest.mark.slow
def test_two_files_with_one_name_landed_a_second_apart_are_two_versions(cli: Cli, tmp_path: Path) -> None:
    # lineitem's referential check reads orders, so orders exists first.
    assert cli("run", str(write_orders(tmp_path / "orders.csv", 1, 5)), "--no-spark").exit_code == 0
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_lineitem(tmp_path / "a" / "lineitem.csv", 1, ROWS)
    second = write_lineitem(tmp_path / "b" / "lineitem.csv", 100_000, ROWS)
    assert first.read_bytes() != second.read_bytes()

    # Hold the executor while both processes land and queue their file, so that both runs execute
    # after the second file has replaced the first in the landing folder: the race of issue 7, every time.
    with file_lock(cli.home / "state" / "executor.lock"):
        proc_a = cli.subprocess("run", str(first), "--no-spark", "--json")
        _wait_for(lambda: _pending(cli.home) == 1, 120, "the first version to be pending")
        time.sleep(1.0)
        proc_b = cli.subprocess("run", str(second), "--no-spark", "--json")
        _wait_for(lambda: _pending(cli.home) == 2, 120, "the second version to be pending")
    out_a, err_a = proc_a.communicate(timeout=300)
    out_b, err_b = proc_b.communicate(timeout=300)
    assert proc_a.returncode == 0, err_a
    assert proc_b.returncode == 0, err_b
    [run_a] = json.loads(out_a)["runs"]
    [run_b] = json.loads(out_b)["runs"]
    assert run_a["run_id"] != run_b["run_id"]
    assert (run_a["status"], run_b["status"]) == ("SUCCEEDED", "SUCCEEDED")
    assert run_a["rows_written"] == run_b["rows_written"] == ROWS

    # Each object version contributed exactly its own file's rows: 0 lost, 0 duplicated. Both versions
    # may go in one drain (one commit), so the rows are told apart by their source version.
    by_version = _lineitem_by_version(cli)
    expected_a = sorted(int(r["l_orderkey"]) for r in csv_rows(first))
    expected_b = sorted(int(r["l_orderkey"]) for r in csv_rows(second))
    version_a, version_b = (
        cli("runs", "--id", r["run_id"], "--json").json()["version_id"] for r in (run_a, run_b)
    )
    assert by_version == {version_a: expected_a, version_b: expected_b}
    # The landing folder shows the newer file; the older version's bytes are kept (versioned bucket).
    landed = cli.home / "buckets" / "landing" / "lineitem" / "lineitem.csv"
    assert landed.read_bytes() == second.read_bytes()


def _succeeded(home: Path) -> list[dict[str, Any]]:
    runs = home / "state" / "runs"
    records = [json.loads(p.read_text()) for p in runs.glob("*.json")] if runs.is_dir() else []
    return [r for r in records if r.get("status") in ("SUCCEEDED", "DUPLICATE", "FAILED", "QUARANTINED")]


@pytest.mark.slow
def test_watch_waits_for_a_pausing_writer_and_a_rewrite_is_a_new_version(cli: Cli, tmp_path: Path) -> None:
    assert cli("run", str(write_orders(tmp_path / "orders.csv", 1, 5)), "--no-spark").exit_code == 0
    landing = cli.home / "buckets" / "landing" / "lineitem"
    landing.mkdir(parents=True, exist_ok=True)
    full = write_lineitem(tmp_path / "full.csv", 1, 1_000).read_bytes()
    half = full.index(b"\n", len(full) // 2) + 1
    before = len(_succeeded(cli.home))
    proc = cli.subprocess(
        "watch", "--max-runs", "2", "--timeout", "400", "--debounce-ms", "300", "--no-spark", "--json"
    )
    try:
        # The watcher is up once it has handled the orders file already there (a duplicate: no new run).
        processed = cli.home / "state" / "watch" / "processed.json"
        _wait_for(lambda: processed.is_file() and "orders/orders.csv" in processed.read_text(), 120, "watch")
        target = landing / "lineitem_slow.csv"
        with open(target, "wb") as fh:  # a writer that pauses 3 s with the file open, then finishes
            fh.write(full[:half])
            fh.flush()
            os.fsync(fh.fileno())
            time.sleep(3.0)
            fh.write(full[half:])
        _wait_for(lambda: len(_succeeded(cli.home)) > before, 300, "the first run")
        # The watcher took the file once it was complete, not when it went quiet for a moment.
        taken = json.loads(processed.read_text())["lineitem/lineitem_slow.csv"]
        assert taken["size"] == len(full)
        # A later complete rewrite (other rows, renamed into place) is a new version with its own run.
        rewrite = write_lineitem(tmp_path / "rewrite.csv", 50_000, 300)
        os.replace(rewrite, landing / "lineitem_slow.csv")
        out, err = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    runs = json.loads(out)["runs"]
    assert [r["status"] for r in runs] == ["SUCCEEDED", "SUCCEEDED"], (runs, err)
    assert [r["rows_written"] for r in runs] == [1_000, 300]
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    versions = [e.get("version_id") for e in events if e.get("event") == "queued"]
    assert len(versions) == 2
    assert None not in versions
    assert versions[0] != versions[1]
    by_version = _lineitem_by_version(cli)
    assert by_version == {versions[0]: list(range(1, 1_001)), versions[1]: list(range(50_000, 50_300))}


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_glue_route_reads_each_version_it_was_started_for(cli: Cli, tmp_path: Path) -> None:
    from lakehouse.local.executor import LocalOptions, LocalPipeline
    from lakehouse.local.jobs import spark_status

    ok, detail = spark_status()
    if not ok:
        pytest.skip(f"local Spark unavailable: {detail}")
    assert cli("run", str(write_orders(tmp_path / "orders.csv", 1, 5)), "--no-spark").exit_code == 0
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_lineitem(tmp_path / "a" / "lineitem.csv", 1, 300)
    second = write_lineitem(tmp_path / "b" / "lineitem.csv", 100_000, 200)
    # Every lineitem file takes the Glue route (local Spark); both land before either run reads.
    pipeline = LocalPipeline(
        LocalOptions(
            home=cli.home, datasets_dir=DATASETS, spark=True, lambda_route_max_bytes=1, reports=False
        )
    )
    started = [pipeline.submit(pipeline.land_file(path)) for path in (first, second)]
    records = pipeline.drain()

    assert [r.status for r in records] == ["SUCCEEDED", "SUCCEEDED"], [r.data.get("error") for r in records]
    assert [r.data["route"] for r in records] == ["glue", "glue"]
    # Both versions of the key share one Glue batch (one drain, one manifest), and the job read each
    # at its own version: its own staged copy (runs/<run_id>/source/<object_id>/), never the other's.
    assert records[0].data["batch_id"] == records[1].data["batch_id"]
    assert _lineitem_by_run(cli) == {
        records[0].data["batch_id"]: [*range(1, 301), *range(100_000, 100_200)],
    }
    assert sorted(_lineitem_by_version(cli).values()) == [list(range(1, 301)), list(range(100_000, 100_200))]
    assert {r.run_id for r in records} == {s["run_id"] for s in started if s is not None}
