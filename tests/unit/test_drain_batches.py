"""Which objects a drain takes, and how a failed batch is split (pure functions of lakehouse.stages.drain)."""

from __future__ import annotations

import pytest

from lakehouse.stages.drain import culprit, is_drain, new_drain_id, select_batch, split_groups
from lakehouse.state import Batch, BatchObject, PendingObject


def item(n: int, size: int = 100, group: str | None = None, status: str = "pending") -> PendingObject:
    return PendingObject.model_validate(
        {
            "object_id": f"orders-{n:04d}",
            "dataset": "orders",
            "bucket": "landing",
            "key": f"orders/{n}.csv",
            "size": size,
            "arrived_ns": 1_000 + n,
            "group": group,
            "status": status,
        }
    )


def ids(batch: list[PendingObject]) -> list[str]:
    return [i.object_id for i in batch]


def test_a_batch_takes_the_oldest_objects_up_to_the_count_limit() -> None:
    items = [item(n) for n in reversed(range(10))]
    batch = select_batch(items, max_objects=4, max_bytes=10**9, alone_over_bytes=10**9)
    assert ids(batch) == [f"orders-{n:04d}" for n in range(4)]


def test_a_batch_stops_at_the_byte_limit_but_always_takes_one() -> None:
    items = [item(0, size=500), item(1, size=500), item(2, size=500)]
    assert ids(select_batch(items, max_objects=10, max_bytes=1000, alone_over_bytes=10**9)) == [
        "orders-0000",
        "orders-0001",
    ]
    assert ids(
        select_batch([item(0, size=5000)], max_objects=10, max_bytes=1000, alone_over_bytes=10**9)
    ) == ["orders-0000"]


def test_claimed_objects_are_not_taken_again() -> None:
    items = [item(0, status="claimed"), item(1), item(2)]
    assert ids(select_batch(items, max_objects=10, max_bytes=10**9, alone_over_bytes=10**9)) == [
        "orders-0001",
        "orders-0002",
    ]


def test_an_object_above_the_lambda_route_goes_alone_and_keeps_arrival_order() -> None:
    items = [item(0), item(1, size=10**6), item(2)]
    first = select_batch(items, max_objects=10, max_bytes=10**9, alone_over_bytes=10**5)
    assert ids(first) == ["orders-0000"]  # stops before the large one: it is next, alone
    rest = select_batch(items[1:], max_objects=10, max_bytes=10**9, alone_over_bytes=10**5)
    assert ids(rest) == ["orders-0001"]


def test_an_isolation_group_is_taken_on_its_own() -> None:
    items = [item(0, group="d-1"), item(1), item(2, group="d-1"), item(3, group="d-0")]
    assert ids(select_batch(items, max_objects=10, max_bytes=10**9, alone_over_bytes=10**9)) == [
        "orders-0000",
        "orders-0002",
    ]


def test_batch_size_one_keeps_one_object_per_drain() -> None:
    items = [item(n) for n in range(3)]
    assert ids(select_batch(items, max_objects=1, max_bytes=10**9, alone_over_bytes=10**9)) == ["orders-0000"]


def batch_of(n: int) -> Batch:
    objects = [
        BatchObject(object_id=f"orders-{i:04d}", bucket="landing", key=f"orders/{i}.csv") for i in range(n)
    ]
    return Batch(objects=objects, count=n)


def test_the_object_an_error_names_is_split_out_alone() -> None:
    batch = batch_of(5)
    message = 'InvalidInputError: {"errorMessage": "s3://landing/orders/3.csv: bad (object orders-0003)"}'
    bad = culprit(message, batch)
    assert bad == "orders-0003"
    assert split_groups(batch, bad) == [
        ["orders-0003"],
        ["orders-0000", "orders-0001", "orders-0002", "orders-0004"],
    ]


@pytest.mark.parametrize("n", [2, 3, 7])
def test_an_error_naming_no_object_bisects_the_batch(n: int) -> None:
    batch = batch_of(n)
    assert culprit("ChecksFailedError: quantity_positive failed", batch) is None
    groups = split_groups(batch, None)
    assert len(groups) == 2
    assert sorted(groups[0] + groups[1]) == [o.object_id for o in batch.objects]
    assert 0 < len(groups[0]) < n


def test_drain_ids_are_valid_execution_names_and_recognised() -> None:
    name = new_drain_id("a" * 128)
    assert len(name) <= 80
    assert is_drain(name)
    assert not is_drain("orders-" + "0" * 40)


def test_large_objects_batch_together_for_the_glue_route_up_to_its_own_limits() -> None:
    big = 10**6
    items = [item(0, size=big), item(1, size=big), item(2, size=big), item(3, size=big)]
    limits = {"max_objects": 100, "max_bytes": 10**9, "alone_over_bytes": 10**5}
    by_count = select_batch(items, **limits, glue_max_objects=3, glue_max_bytes=10**9)
    assert ids(by_count) == ["orders-0000", "orders-0001", "orders-0002"]
    by_bytes = select_batch(items, **limits, glue_max_objects=10, glue_max_bytes=2 * big)
    assert ids(by_bytes) == ["orders-0000", "orders-0001"]
    # Without Glue limits (the default) a large object still goes alone.
    assert ids(select_batch(items, **limits)) == ["orders-0000"]


def test_small_and_large_objects_never_share_a_batch() -> None:
    big = 10**6
    items = [item(0, size=big), item(1, size=big), item(2), item(3, size=big), item(4)]
    limits = {"max_objects": 100, "max_bytes": 10**9, "alone_over_bytes": 10**5}
    glue = {"glue_max_objects": 10, "glue_max_bytes": 10**9}
    assert ids(select_batch(items, **limits, **glue)) == ["orders-0000", "orders-0001"]
    assert ids(select_batch(items[2:], **limits, **glue)) == ["orders-0002"]  # stops at the large one
    assert ids(select_batch(items[3:], **limits, **glue)) == ["orders-0003"]  # stops at the small one
