"""Backfill and the drain sweep on the local runtime, end to end: the table afterwards is a clean run's
(0 rows lost, 0 duplicated).

- `lakehouse invoke BackfillLandingFunction -e events/backfill_landing.json` over a landing area where
  one object was ingested live, one is pending (its drain queued, not run yet) and one landed quietly.
- A drain whose end was never settled (RecordRunOutcome lost) leaves an object that arrived during it
  pending with no drain to come; the sweep (`lakehouse invoke SweepDrainsFunction`, the scheduled
  function, or `lakehouse maintain`) drains it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import DATASETS, ROOT, Cli, write_lineitem
from test_crash_resume import table_rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def sources(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "files"
    folder.mkdir()
    return [write_lineitem(folder / f"lineitem_b{n}.csv", 1 + n * 100, 10) for n in range(3)]


def clean_rows(tmp_path: Path, files: list[Path]) -> Counter[tuple[Any, ...]]:
    clean = Cli(tmp_path / "clean")
    assert clean("run", *map(str, files), "--no-spark").exit_code == 0
    return table_rows(clean.home)


def assert_clean(home: Path, clean: Counter[tuple[Any, ...]]) -> None:
    rows = table_rows(home)
    lost, duplicated = clean - rows, rows - clean
    assert (sum(lost.values()), sum(duplicated.values())) == (0, 0)
    assert sum(rows.values()) == 30
    assert not list((home / "state" / "pending").glob("*/*.json"))
    assert not (home / "state" / "leases" / "lineitem.json").exists()


def pipeline(home: Path) -> Any:
    from lakehouse.local.executor import LocalOptions, LocalPipeline

    return LocalPipeline(
        LocalOptions(home=home, datasets_dir=DATASETS, project_root=ROOT, spark=False, reports=False)
    )


def test_invoking_the_backfill_function_adds_each_object_exactly_once(tmp_path: Path, cli: Cli) -> None:
    files = sources(tmp_path)
    clean = clean_rows(tmp_path, files)
    assert cli("run", str(files[0]), "--no-spark").exit_code == 0  # ingested live
    live = pipeline(cli.home)
    queued = live.submit(live.land_file(files[1]))  # arrived live: pending, its drain queued, not run
    assert queued is not None
    assert queued["queued"]
    landing = cli.home / "buckets" / "landing" / "lineitem"
    (landing / files[2].name).write_bytes(files[2].read_bytes())  # landed with no event
    (cli.home / "buckets" / "landing" / "nobody").mkdir()
    (cli.home / "buckets" / "landing" / "nobody" / "x.csv").write_text("a,b\n")  # no contract: not listed

    result = cli("invoke", "BackfillLandingFunction", "-e", str(ROOT / "events" / "backfill_landing.json"))

    assert result.exit_code == 0, result.stdout + result.stderr
    out = result.json()
    assert (out["listed"], out["queued"], out["already"], out["done"]) == (3, 1, 2, True)
    assert out["continuation_token"] is None
    assert_clean(cli.home, clean)
    again = cli("invoke", "BackfillLandingFunction", "-e", str(ROOT / "events" / "backfill_landing.json"))
    assert (again.json()["queued"], again.json()["already"]) == (0, 3)
    assert_clean(cli.home, clean)


@pytest.mark.parametrize("sweep", ["invoke", "maintain"])
def test_the_maintenance_sweep_drains_objects_a_lost_drain_end_stranded(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, sweep: str
) -> None:
    from lakehouse.local import executor
    from lakehouse.stages.drain import claim_batch

    files = sources(tmp_path)
    clean = clean_rows(tmp_path, files)
    runner = pipeline(cli.home)
    assert runner.submit(runner.land_file(files[0]))
    landed: list[dict[str, Any] | None] = []

    def land_during_the_drain(queued: Any) -> None:
        if not landed:
            # The drain has claimed its batch (ClaimBatch), then the others arrive: their kick finds the
            # lease held by the running drain, so they wait for its end to kick the next drain.
            claim_batch(runner.rt, queued.payload)
            landed.extend(runner.submit(runner.land_file(f)) for f in files[1:])

    # The end of the drain is lost: nothing settles it or kicks the next drain (RecordRunOutcome never ran).
    monkeypatch.setattr(executor.LocalPipeline, "_settle", lambda self, state, record: [record])
    runner.drain(on_start=land_during_the_drain)
    monkeypatch.undo()
    assert [r is not None and r["queued"] and not r["started"] for r in landed] == [True, True]
    assert sum(table_rows(cli.home).values()) == 10
    assert len(list((cli.home / "state" / "pending" / "lineitem").glob("*.json"))) == 2
    assert cli("resume", "--no-spark", "--json").json()["runs"] == []  # stranded: nothing would run them

    if sweep == "invoke":  # the scheduled SweepDrainsFunction on its sample event, then the drains it queued
        result = cli("invoke", "SweepDrainsFunction", "-e", str(ROOT / "events" / "sweep_drains.json"))
        assert result.exit_code == 0, result.stdout + result.stderr
        assert list(result.json()["swept"]) == ["lineitem"]
    else:  # the maintenance CLI sweeps first, drains, then maintains under the table's lease
        result = cli("maintain", "lineitem", "--json")
        assert result.exit_code == 0, result.stdout + result.stderr

    assert_clean(cli.home, clean)
    statuses = {Path(r["key"]).name: r["status"] for r in cli("runs", "--json").json()}
    assert statuses == dict.fromkeys((f.name for f in files), "SUCCEEDED")
