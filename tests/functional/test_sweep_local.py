"""The drain sweep and the paged listing on the local backend (lakehouse.stages.sweep, ObjectStore.list_page).

Locally a drain runs while it is in the executor's queue, and the executor records how it ended before it
leaves the queue; the sweep settles only a drain that is out of the queue *and* has a final status.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lakehouse.stages.drain import new_drain_id
from lakehouse.stages.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def rt(tmp_home: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    from lakehouse.settings import Settings

    monkeypatch.setenv("DATASETS_DIR", str(ROOT / "datasets"))
    return Runtime.create(Settings())


def claimed_by(rt: Runtime, drain: str, *names: str) -> list[str]:
    """Objects of `lineitem` claimed by `drain`, which holds the table's lease."""
    ids = []
    for n, name in enumerate(names):
        object_id = f"lineitem-{name.replace('.', '_')}"
        item = {
            "object_id": object_id,
            "dataset": "lineitem",
            "bucket": "landing",
            "key": f"lineitem/{name}",
            "status": "pending",
        }
        assert rt.adapters.pending.add({**item, "arrived_ns": n})
        rt.adapters.ledger.put(object_id, {"run_id": object_id, "dataset": "lineitem", "status": "RUNNING"})
        ids.append(object_id)
    assert rt.adapters.pending.claim("lineitem", ids, drain) == ids
    rt.adapters.leases.acquire("lineitem", drain, 3600)
    return ids


def ledger(rt: Runtime, run_id: str) -> str:
    return str((rt.adapters.ledger.get(run_id) or {}).get("status"))


def test_a_drain_that_ended_unsettled_is_settled(rt: Runtime) -> None:
    from lakehouse.stages.sweep import sweep_drains

    drain = new_drain_id("lineitem")
    first, second = claimed_by(rt, drain, "a.csv", "b.csv")
    rt.adapters.ledger.put(second, {"run_id": second, "dataset": "lineitem", "status": "QUARANTINED"})
    rt.adapters.ledger.put(drain, {"run_id": drain, "dataset": "lineitem", "status": "FAILED"})  # ended

    swept = sweep_drains(rt, ["lineitem"])

    assert swept == {"lineitem": {"settled": {drain: "FAILED"}, "kicked": None}}
    # Its objects took its outcome (one kept its own final status) and left the pending set; lease freed.
    assert (ledger(rt, first), ledger(rt, second)) == ("FAILED", "QUARANTINED")
    assert rt.adapters.pending.items("lineitem") == []
    assert rt.adapters.leases.get("lineitem") is None


@pytest.mark.parametrize("state", ["queued", "started"])
def test_a_drain_that_may_still_run_is_left_alone(rt: Runtime, state: str) -> None:
    from lakehouse.adapters.starter import LocalQueue
    from lakehouse.stages.sweep import sweep_drains

    drain = new_drain_id("lineitem")
    claimed_by(rt, drain, "a.csv")
    if state == "queued":  # in the executor's queue: it runs (or will)
        LocalQueue(rt.settings.home).put(drain, {"run_id": drain, "dataset": "lineitem"}, seen=False)
        rt.adapters.ledger.put(drain, {"run_id": drain, "dataset": "lineitem", "status": "FAILED"})
    else:  # its kick took the lease and has not queued it yet (another process, between the two writes)
        rt.adapters.ledger.put(drain, {"run_id": drain, "dataset": "lineitem", "status": "STARTED"})

    assert sweep_drains(rt, ["lineitem"]) == {}
    assert [i["status"] for i in rt.adapters.pending.items("lineitem")] == ["claimed"]
    lease = rt.adapters.leases.get("lineitem")
    assert lease is not None
    assert lease.owner == drain


def test_pending_objects_behind_a_free_lease_get_a_drain(rt: Runtime) -> None:
    from lakehouse.adapters.starter import LocalQueue
    from lakehouse.stages.sweep import sweep_drains

    item = {
        "object_id": "lineitem-x",
        "dataset": "lineitem",
        "bucket": "landing",
        "key": "lineitem/x.csv",
        "status": "pending",
    }
    assert rt.adapters.pending.add(item)

    swept = sweep_drains(rt)

    kicked = swept["lineitem"]["kicked"]
    assert kicked is not None
    assert [q.name for q in LocalQueue(rt.settings.home).pending()] == [kicked]
    assert sweep_drains(rt) == {}  # queued: it runs; nothing more to do


def test_list_page_pages_in_key_order_after_start_after(rt: Runtime) -> None:
    keys = [f"lineitem/{n:02d}.csv" for n in range(5)]
    for key in reversed(keys):
        rt.adapters.objects.put_bytes("landing", key, b"x\n")
    rt.adapters.objects.put_bytes("landing", "other/z.csv", b"x\n")
    objects: Any = rt.adapters.objects

    assert objects.list_page("landing", "lineitem/", "", 2) == (keys[:2], True)
    assert objects.list_page("landing", "lineitem/", keys[1], 2) == (keys[2:4], True)
    assert objects.list_page("landing", "lineitem/", keys[3], 2) == (keys[4:], False)
    assert objects.list_page("landing", "lineitem/", keys[4], 2) == ([], False)
