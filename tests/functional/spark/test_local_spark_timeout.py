"""A Glue/EMR job on the shared local SparkSession cannot be killed like a worker process: a timed-out
state cancels the job's Spark job group and waits for the job to return (lakehouse.local.jobs)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from lakehouse.local import jobs
from lakehouse.local.worker import TaskSlot, in_slot

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.xdist_group("spark")]


def test_a_timed_out_state_cancels_its_spark_job_and_waits_for_it(
    spark: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "_SESSION", [spark])
    slot = TaskSlot("TransformWithGlue")
    outcome: dict[str, str] = {}
    running = threading.Event()

    def job() -> None:
        with in_slot(slot), jobs.cancellable_spark_jobs(use_spark=True):
            running.set()
            try:  # 2 tasks of 200 one-second sleeps: minutes, unless cancelled
                spark.sparkContext.parallelize(range(400), 2).map(lambda x: time.sleep(1) or x).count()
                outcome["result"] = "finished"
            except Exception as exc:
                outcome["error"] = type(exc).__name__

    thread = threading.Thread(target=job, daemon=True)
    thread.start()
    assert running.wait(60)
    deadline = time.monotonic() + 60
    while not spark.sparkContext.statusTracker().getActiveJobsIds():
        assert time.monotonic() < deadline, "the Spark job never started"
        time.sleep(0.1)

    started = time.monotonic()
    slot.cancel()  # what a state timeout does

    assert time.monotonic() - started < jobs.SPARK_CANCEL_GRACE_S
    # cancel() returned once the job had left its scope: its outcome is already known.
    assert outcome == {"error": "Py4JJavaError"}
    thread.join(10)
    assert not thread.is_alive()
    assert not spark.sparkContext.statusTracker().getActiveJobsIds()
