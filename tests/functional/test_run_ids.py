"""Run ids, dataset and model names reach keys and paths: a crafted one is refused before any I/O."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lakehouse import identifiers
from lakehouse.errors import InvalidInputError
from lakehouse.events import ObjectCreated, execution_name
from lakehouse.settings import Settings
from lakehouse.stages.ingest import commit_object, quarantine_object, read_job_result, register_table
from lakehouse.stages.runtime import RunState, Runtime

ROOT = Path(__file__).resolve().parents[2]

BAD_RUN_IDS = [
    pytest.param("../../../../tmp/escape", id="dot-dot"),
    pytest.param("orders/abc", id="slash"),
    pytest.param("orders-\x00abc", id="nul"),
    pytest.param("a" * 81, id="81-chars"),
    pytest.param("orders-é", id="unicode"),
    pytest.param("orders-\uff11\uff12", id="fullwidth-digits"),
    pytest.param("..", id="dot-dot-alone"),
    pytest.param("orders abc", id="space"),
    pytest.param(12, id="not-a-string"),
]


@pytest.mark.parametrize("run_id", BAD_RUN_IDS)
def test_run_state_refuses_a_run_id_outside_the_execution_name_alphabet(run_id: object) -> None:
    with pytest.raises(InvalidInputError, match="invalid run id"):
        RunState.parse({"run_id": run_id, "dataset": "orders", "bucket": "landing", "key": "orders/a.csv"})


@pytest.mark.parametrize("dataset", ["../lake", "orders/../x", "Orders", "orders\x00", "ördérs"])
def test_run_state_refuses_a_dataset_that_is_not_an_identifier(dataset: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid dataset name"):
        RunState.parse({"run_id": "orders-1", "dataset": dataset})


def test_every_execution_name_the_pipeline_makes_is_accepted() -> None:
    for dataset in ("orders", "a" * 128, "weird name/../x"):
        obj = ObjectCreated(bucket="landing", key="orders/../ü x.csv", etag="e")
        name = execution_name(dataset, obj)
        assert identifiers.run_id(name) == name
    assert identifiers.run_id("a" * 80) == "a" * 80


@pytest.fixture
def rt(tmp_path: Path) -> Runtime:
    return Runtime.create(
        Settings(LAKEHOUSE_BACKEND="local", LAKEHOUSE_HOME=tmp_path / "home", DATASETS_DIR=ROOT / "datasets")
    )


def test_stages_refuse_a_crafted_run_id_before_writing_anything(rt: Runtime, tmp_path: Path) -> None:
    rt.adapters.objects.put_bytes("landing", "orders/a.csv", b"o_orderkey\n1\n")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    tmp_before = set(os.listdir(os.environ.get("TMPDIR", "/tmp")))
    state = {
        "run_id": "../../../escaped",
        "dataset": "orders",
        "bucket": "landing",
        "key": "orders/a.csv",
        "inspection": {"app_id": "lakehouse:orders:x"},
        "error": {"Error": "InvalidInputError", "Cause": "x"},
    }
    for stage in (commit_object, quarantine_object, read_job_result):
        with pytest.raises(InvalidInputError, match="invalid run id"):
            stage(rt, state)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert not [n for n in set(os.listdir(os.environ.get("TMPDIR", "/tmp"))) - tmp_before if "escaped" in n]


def test_table_and_model_uris_refuse_names_that_are_not_identifiers(rt: Runtime) -> None:
    with pytest.raises(InvalidInputError, match="invalid dataset name"):
        rt.table_uri("../runs")
    with pytest.raises(InvalidInputError, match="invalid model name"):
        rt.derived_uri("../tables/orders")
    with pytest.raises(InvalidInputError, match="invalid model name"):
        register_table(rt, {"dataset": "orders", "run_id": "r", "models": ["../tables/orders"]})
    assert rt.table_uri("orders").endswith("/buckets/lake/tables/orders")


def test_the_local_queue_and_the_glue_job_refuse_a_crafted_run_id(tmp_path: Path) -> None:
    from lakehouse.local.starter import LocalQueue

    with pytest.raises(InvalidInputError, match="invalid run id"):
        LocalQueue(tmp_path).put("../../escape", {}, seen=False)
    assert not (tmp_path / "state" / "queue").exists()

    pytest.importorskip("pyspark", reason="the Glue job's run input check lives in lakehouse.spark")
    from lakehouse.spark.runs import ingest_manifest

    obj = {
        "object_id": "orders-1",
        "bucket": "landing",
        "key": "orders/a.csv",
        "ingested_at": "",
        "app_id": "a",
    }
    path = tmp_path / "manifest.json"
    crafted = [
        {"run_id": "../x", "dataset": "orders", "table_uri": "t", "objects": [obj]},
        {
            "run_id": "orders-d",
            "dataset": "orders",
            "table_uri": "t",
            "objects": [{**obj, "object_id": "../y"}],
        },
    ]
    for (
        manifest
    ) in crafted:  # the run id and each object id reach keys: runs/<run_id>/, rows/.../<object_id>/
        path.write_text(json.dumps(manifest))
        with pytest.raises(InvalidInputError, match="invalid run id"):
            ingest_manifest(
                None, str(path), datasets_dir=ROOT / "datasets", lake_bucket="lake", quarantine_bucket="q"
            )  # type: ignore[arg-type]
