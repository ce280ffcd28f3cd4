"""Stage behaviour on the local backend that the handler and state-machine tests do not reach."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.errors import InvalidInputError
from lakehouse.settings import Settings
from lakehouse.stages.ingest import inspect_object
from lakehouse.stages.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]


def test_an_object_deleted_before_its_run_is_a_clear_input_error(tmp_path: Path) -> None:
    rt = Runtime.create(
        Settings(LAKEHOUSE_BACKEND="local", LAKEHOUSE_HOME=tmp_path, DATASETS_DIR=ROOT / "datasets")
    )
    state = {"run_id": "orders-1", "dataset": "orders", "bucket": "landing", "key": "orders/gone.csv"}

    with pytest.raises(InvalidInputError, match=r"s3://landing/orders/gone.csv: the object no longer exists"):
        inspect_object(rt, state)


def test_a_key_outside_the_datasets_landing_prefix_is_refused(tmp_path: Path) -> None:
    rt = Runtime.create(
        Settings(LAKEHOUSE_BACKEND="local", LAKEHOUSE_HOME=tmp_path, DATASETS_DIR=ROOT / "datasets")
    )
    rt.adapters.objects.put_bytes("landing", "lineitem/x.csv", b"a,b\n1,2\n")
    state = {"run_id": "orders-2", "dataset": "orders", "bucket": "landing", "key": "lineitem/x.csv"}

    with pytest.raises(InvalidInputError, match="outside the landing prefix 'orders/'"):
        inspect_object(rt, state)
