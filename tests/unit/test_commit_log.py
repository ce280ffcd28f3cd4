"""Who committed an object version: the commit metadata both engines write, read back."""

from __future__ import annotations

import json

import pytest

from lakehouse.commit_log import (
    CommitRef,
    commit_metadata,
    find_commit,
    is_own_commit,
    txn_version,
)
from lakehouse.errors import InvalidInputError


def test_find_commit_reads_delta_rs_and_spark_commit_info() -> None:
    delta_rs = {"version": 3, **commit_metadata("run-a", ["app-1"], "s3://l/a.csv")}
    spark = {
        "version": 5,
        "userMetadata": json.dumps({"lakehouse.run_id": "run-b", "lakehouse.app_ids": ["app-2"]}),
    }
    other = {"version": 6, "userMetadata": "not json", "lakehouse.run_id": "run-c"}
    history = [other, spark, delta_rs]

    assert find_commit(history, "app-1") == CommitRef(3, "run-a")
    assert find_commit(history, "app-2") == CommitRef(5, "run-b")
    assert find_commit(history, "app-3") is None


def test_find_commit_takes_the_newest_application_of_an_object() -> None:
    history = [
        {"version": 1, **commit_metadata("run-a", ["app-1"], "s")},
        {"version": 7, **commit_metadata("rerun-a", ["app-1", "app-2"], "s")},
    ]
    assert find_commit(history, "app-1") == CommitRef(7, "rerun-a")


def test_own_commit_is_the_same_run_only() -> None:
    assert is_own_commit(CommitRef(1, "run-a"), "run-a")
    assert not is_own_commit(CommitRef(1, "run-b"), "run-a")
    assert not is_own_commit(CommitRef(1, None), "run-a")
    assert not is_own_commit(None, "run-a")


@pytest.mark.parametrize(("state", "expected"), [({}, 1), ({"txn_version": 2}, 2), ({"txn_version": "3"}, 3)])
def test_txn_version(state: dict[str, object], expected: int) -> None:
    assert txn_version(state) == expected


@pytest.mark.parametrize("bad", [0, -1, "x", 1.5, True, "1e3"])
def test_txn_version_rejects_what_is_not_a_version(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="txn_version"):
        txn_version({"txn_version": bad})
