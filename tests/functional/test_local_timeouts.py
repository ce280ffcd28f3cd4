"""A Task past its TimeoutSeconds is stopped locally, as Lambda would be: its worker process is killed.

Before, moto's interpreter moved on to the Catch path while the timed-out handler kept running in its
thread, holding its locks, so Rollback/ReleaseLease waited behind it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from lakehouse.local.executor import LocalOptions, LocalPipeline
from lakehouse.local.project import ACCOUNT_ID, Project
from lakehouse.local.sfn import LocalStateMachine
from lakehouse.local.worker import WorkerPool

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = ACCOUNT_ID  # the local account (lakehouse.local.project)

# CommitObjectFunction replaced by one that commits for real; for a file named hang*.csv it then hangs
# holding the table's lease lock (as a handler stuck in a lock-holding call would), after leaving its pid.
HANGING_COMMIT = """
import os, time
from pathlib import Path

from lakehouse.adapters.local import file_lock
from lakehouse.stages.ingest import commit_object
from lakehouse.stages.runtime import get_runtime


def handler(event, context):
    out = commit_object(get_runtime(), event)
    if not event["key"].rpartition("/")[2].startswith("hang"):
        return out
    home = Path(os.environ["LAKEHOUSE_HOME"])
    with file_lock(home / "state" / "leases" / "orders.lock"):
        (home / "hung.pid").write_text(str(os.getpid()))
        time.sleep(600)
"""


def _project_with_hanging_commit(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "functions" / "commit_object").mkdir(parents=True)
    for name in ("template.yaml", "statemachine", "jobs"):
        (root / name).symlink_to(ROOT / name)
    for function in (ROOT / "functions").iterdir():
        if function.is_dir() and function.name != "commit_object":
            (root / "functions" / function.name).symlink_to(function)
    (root / "functions" / "commit_object" / "app.py").write_text(HANGING_COMMIT)
    return root


def _orders(path: Path, first_key: int, rows: int) -> Path:
    header = (
        "o_orderkey,o_custkey,o_orderstatus,o_totalprice,o_orderdate,o_orderpriority,o_clerk,"
        "o_shippriority,o_comment"
    )
    lines = [header] + [
        f"{first_key + i},{100 + i},{'FOP'[i % 3]},{1000 + i:.2f},1996-01-02,5-LOW,Clerk#000000951,0,row {i}"
        for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _locks_free(home: Path) -> list[str]:
    """Lock files someone still holds (an exclusive non-blocking flock fails on them)."""
    held = []
    for path in sorted((home / "state").rglob("*.lock")):
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            held.append(str(path))
        finally:
            os.close(fd)
    return held


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers signal 0; it holds nothing, but it must have been reaped by the pool.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" in status.read_text()


def test_a_timed_out_commit_is_killed_and_the_run_rolls_back_promptly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CommitWithLambda gets 8 s instead of 960 s (the real ASL otherwise).
    real = Project.ingest_definition

    def short_commit_timeout(project: Project) -> str:
        definition = json.loads(real(project))
        definition["States"]["CommitWithLambda"]["TimeoutSeconds"] = 8
        return json.dumps(definition)

    monkeypatch.setattr(Project, "ingest_definition", short_commit_timeout)
    home = tmp_path / "home"
    options = LocalOptions(
        home=home,
        datasets_dir=ROOT / "datasets",
        project_root=_project_with_hanging_commit(tmp_path),
        spark=False,
        reports=False,
        # Old behaviour: ReleaseLease blocks behind the hung handler's lock until this runs out.
        execution_timeout_s=90,
    )
    pipeline = LocalPipeline(options)
    landing = home / "buckets" / "landing" / "orders"
    landing.mkdir(parents=True)
    _orders(landing / "first.csv", 1, 50)
    pipeline.submit("orders/first.csv")
    first = pipeline.drain()
    assert [r.status for r in first] == ["SUCCEEDED"], [r.data.get("error") for r in first]
    _orders(landing / "hang.csv", 1000, 30)
    pipeline.submit("orders/hang.csv")

    started = time.monotonic()
    records = pipeline.drain()
    elapsed = time.monotonic() - started

    assert [r.status for r in records] == ["QUARANTINED"], [r.data.get("error") for r in records]
    record = records[0]
    assert record.data["error"]["error"] == "States.Timeout"
    path = record.data["path"]
    # The rollback's own error, if it failed (seen once under CI load; kept in the message to diagnose).
    why = (record.data.get("rollback_error"), record.data.get("error"))
    assert path[path.index("CommitWithLambda") :][:4] == [
        "CommitWithLambda",
        "Rollback",
        "IsBatch",
        "Quarantine",
    ], why
    assert "ReleaseLeaseAfterFailure" in path
    # The commit landed before the hang, and Rollback restored the version before it.
    assert record.data["rollback"]["restored"] is True
    from lakehouse import tables

    assert tables.row_count(pipeline.rt.table_uri("orders")) == 50
    assert pipeline.rt.adapters.leases.get("orders") is None
    pid = int((home / "hung.pid").read_text())
    assert _gone(pid), f"the timed-out worker {pid} is still running"
    assert _locks_free(home) == []
    # 8 s of timeout, then Rollback, Quarantine, Alert and ReleaseLease without waiting for the handler.
    assert elapsed < 45, elapsed


def fn_arn(name: str) -> str:
    return f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"


def test_state_machine_timeout_kills_the_worker_and_takes_the_catch_path() -> None:
    pool = WorkerPool()
    warm = pool.call("os:getpid", (), {})  # start the worker first: the timeout is for the sleep
    pids: list[int] = []

    def sleepy(event: dict[str, Any], context: Any) -> Any:
        pids.append(pool.call("os:getpid", (), {}))
        return pool.call("time:sleep", (60,), {})

    def cleanup(event: dict[str, Any], context: Any) -> Any:
        return {"cleaned": True, "error": event.get("error", {}).get("Error")}

    definition = json.dumps(
        {
            "StartAt": "Slow",
            "States": {
                "Slow": {
                    "Type": "Task",
                    "Resource": fn_arn("sleepy"),
                    # Long enough for the handler to reach its worker on a loaded machine, far below 60 s.
                    "TimeoutSeconds": 5,
                    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Cleanup"}],
                    "End": True,
                },
                "Cleanup": {"Type": "Task", "Resource": fn_arn("cleanup"), "End": True},
            },
        }
    )
    try:
        with LocalStateMachine(
            definition, lambda_handlers={"sleepy": sleepy, "cleanup": cleanup}, time_scale=0.0
        ) as sm:
            started = time.monotonic()
            result = sm.run({})
            elapsed = time.monotonic() - started
        assert result.succeeded, result
        assert result.output == {"cleaned": True, "error": "States.Timeout"}
        assert elapsed < 30, elapsed
        assert pids == [warm]  # the warm worker was reused for the task
        assert _gone(warm)
        assert pool.started == 1
        # The pool replaces the killed worker on the next call.
        assert pool.call("os:getpid", (), {}) != pids[0]
    finally:
        pool.close()


def test_the_next_state_starts_only_after_the_timed_out_state_has_unwound() -> None:
    """A timed-out handler's thread restores what it changed (its environment variables) on its way out.

    Before, the Catch path started as soon as the worker was killed, while that thread was still
    unwinding: under load, Rollback's botocore client iterated `os.environ` while the thread removed
    LAKEHOUSE_IAM_ROLE from it, and Rollback failed with `Exception: 'LAKEHOUSE_IAM_ROLE'`.
    """
    pool = WorkerPool()
    events: list[tuple[str, float]] = []

    def sleepy(event: dict[str, Any], context: Any) -> Any:
        try:
            return pool.call("time:sleep", (60,), {})
        finally:
            time.sleep(1.0)  # a slow unwind (restoring state) after the worker was killed
            events.append(("unwound", time.monotonic()))

    def cleanup(event: dict[str, Any], context: Any) -> Any:
        events.append(("cleanup", time.monotonic()))
        return {"cleaned": True}

    definition = json.dumps(
        {
            "StartAt": "Slow",
            "States": {
                "Slow": {
                    "Type": "Task",
                    "Resource": fn_arn("sleepy"),
                    "TimeoutSeconds": 3,
                    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Cleanup"}],
                    "End": True,
                },
                "Cleanup": {"Type": "Task", "Resource": fn_arn("cleanup"), "End": True},
            },
        }
    )
    try:
        with LocalStateMachine(
            definition, lambda_handlers={"sleepy": sleepy, "cleanup": cleanup}, time_scale=0.0
        ) as sm:
            result = sm.run({})
        assert result.succeeded, result
        assert [name for name, _ in events] == ["unwound", "cleanup"], events
    finally:
        pool.close()


@pytest.mark.parametrize("isolate", [True, False])
def test_handler_errors_keep_their_class_name_through_the_worker(tmp_path: Path, isolate: bool) -> None:
    home = tmp_path / "home"
    pipeline = LocalPipeline(
        LocalOptions(
            home=home, datasets_dir=ROOT / "datasets", spark=False, reports=False, isolate_tasks=isolate
        )
    )
    landing = home / "buckets" / "landing" / "orders"
    landing.mkdir(parents=True)
    (landing / "bad.csv").write_text("not,the,header\n1,2,3\n")
    pipeline.submit("orders/bad.csv")
    (record,) = pipeline.drain()
    assert record.status == "QUARANTINED"
    assert record.data["error"]["error"] == "SchemaMismatchError", record.data["error"]


def test_the_worker_pool_passes_environment_and_cwd_and_survives_a_crashed_worker() -> None:
    from lakehouse.local.worker import RemoteTaskError, WorkerCrashedError

    pool = WorkerPool()
    try:
        assert pool.call("os:getcwd", (), {}) == os.getcwd()
        assert pool.call("os:getenv", ("LAKEHOUSE_TEST_VALUE",), {"LAKEHOUSE_TEST_VALUE": "42"}) == "42"
        assert pool.call("os:getenv", ("LAKEHOUSE_TEST_VALUE",), {}) is None  # nothing leaks between calls
        with pytest.raises(RemoteTaskError) as info:
            pool.call("json:loads", ("{",), {})
        assert info.value.error == "JSONDecodeError"
        assert any("json" in line for line in info.value.remote_traceback)
        with pytest.raises(WorkerCrashedError, match="died"):
            pool.call("os:_exit", (3,), {})
        assert pool.call("operator:add", (2, 3), {}) == 5  # a fresh worker took over
    finally:
        pool.close()


def test_workers_start_under_a_long_tmpdir(tmp_path: Path) -> None:
    """multiprocessing puts the fork server's socket under TMPDIR; a long TMPDIR (over the 107-byte
    AF_UNIX limit) made every task fail with 'AF_UNIX path too long'."""
    import subprocess
    import sys

    long_tmp = tmp_path / ("t" * 110)
    long_tmp.mkdir()
    code = (
        "import os; from lakehouse.local.worker import WorkerPool; pool = WorkerPool(); "
        "print(pool.call('os:getpid', (), {}) != os.getpid()); pool.close()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "TMPDIR": str(long_tmp)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
