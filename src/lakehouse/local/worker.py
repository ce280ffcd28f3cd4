"""Task handlers in worker processes that can be killed when their state times out.

In AWS a Lambda that outlives its state's `TimeoutSeconds` is stopped; an in-process handler thread
cannot be. So the local executor runs every Lambda handler (and the Spark-free EMR jobs) in a worker
process: `WorkerPool.call` sends `(target, args, environment, cwd)` over a pipe and waits for the
answer. Workers are forked from a `forkserver` whose process has the lakehouse, DuckDB and delta-rs
modules preloaded (a fresh interpreter, so a JVM or threads in the executor do not matter), and they are
reused across tasks like warm Lambda containers.

When a state times out, moto's interpreter calls `TaskSlot.cancel` (see `local/sfn.py`): the worker
running that state's handler is killed with SIGKILL, so the kernel drops every file lock it held and
nothing of it keeps writing; the next task gets a fresh worker. A worker also dies when the executor
process dies (on Linux by the kernel's parent-death signal, elsewhere by a thread watching a pipe only
the executor holds), so a killed `lakehouse run` leaves no handler writing behind it.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from multiprocessing import spawn
from multiprocessing.connection import Connection
from typing import Any

from lakehouse.local.sfn import TaskFailed

# Imported by the fork server once, so a new worker starts warm (milliseconds, not seconds).
PRELOAD = [
    "lakehouse.local.worker",
    "lakehouse.stages.ingest",
    "lakehouse.stages.maintenance",
    "lakehouse.stages.start",
    "lakehouse.duckdb_engine.ingest",
    "lakehouse.tables",
    "lakehouse.local.jobs",
    "lakehouse.local.project",
    "aws_lambda_powertools",
    "duckdb",
    "deltalake",
]
MAX_IDLE_WORKERS = 2
# How long a cancelled state waits for its thread to unwind once its task is stopped. A task in a worker
# unwinds in milliseconds; an in-process one that cannot be stopped is left behind after this.
CANCEL_UNWIND_TIMEOUT_S = 10.0
_PR_SET_PDEATHSIG = 1


class TaskCancelledError(RuntimeError):
    """The state this call belonged to timed out; its worker was killed."""


class WorkerCrashedError(RuntimeError):
    """The worker process died while running a task (killed, out of memory, a native crash)."""


class RemoteTaskError(TaskFailed):
    """An exception raised by the task in the worker: its Step Functions error name and message."""

    def __init__(self, error: str, message: str, remote_traceback: Sequence[str] = ()) -> None:
        super().__init__(error, message)
        self.remote_traceback = list(remote_traceback)


# -- task slots: what a timed-out state must stop --------------------------------------------------


class TaskSlot:
    """One evaluation of a Task state; `cancel()` stops whatever runs it (a worker, a Spark job group)."""

    def __init__(self, state: str) -> None:
        self.state = state
        self._lock = threading.Lock()
        self._cancelled = False
        self._on_cancel: list[Callable[[], None]] = []
        self._threads: list[threading.Thread] = []

    def runs_in(self, thread: threading.Thread) -> None:
        """`thread` evaluates this state: `cancel()` waits for it to unwind."""
        with self._lock:
            self._threads.append(thread)

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run `callback` on cancel (now, if already cancelled); returns a function that unregisters it."""
        with self._lock:
            if not self._cancelled:
                self._on_cancel.append(callback)
                return lambda: self._discard(callback)
        callback()
        return lambda: None

    def _discard(self, callback: Callable[[], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._on_cancel.remove(callback)

    def cancel(self, unwind_timeout_s: float = CANCEL_UNWIND_TIMEOUT_S) -> None:
        """Stop the task, then wait (bounded) for the state's thread to unwind.

        The thread restores what it changed on its way out (e.g. the handler's environment variables):
        the next state must not start while it does, or it sees `os.environ` change under it (botocore
        iterates the environment when it makes a client: a KeyError that failed Rollback under load).
        """
        with self._lock:
            self._cancelled = True
            callbacks, self._on_cancel = self._on_cancel, []
            threads = list(self._threads)
        for callback in callbacks:
            with contextlib.suppress(Exception):
                callback()
        deadline = time.monotonic() + unwind_timeout_s
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))


_local = threading.local()


def current_slot() -> TaskSlot | None:
    """The slot of the Task state this thread is evaluating, if any."""
    slot: TaskSlot | None = getattr(_local, "slot", None)
    return slot


@contextlib.contextmanager
def in_slot(slot: TaskSlot | None) -> Iterator[None]:
    previous = current_slot()
    _local.slot = slot
    try:
        yield
    finally:
        _local.slot = previous


# -- the worker process ----------------------------------------------------------------------------


def _die_with_executor(lifeline: Connection) -> None:
    """Exit as soon as the executor is gone: its end of `lifeline` closes when it exits or is killed."""

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            lifeline.recv()
        os._exit(70)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def _die_with_fork_server() -> None:
    """Linux: the kernel SIGKILLs this worker when its parent, the fork server, exits; the fork server
    exits when the executor does, once no worker holds its "alive" pipe (so this one lets go of it).

    Unlike the lifeline thread, this needs no Python thread to run (a handler in native code may hold
    the GIL), so a SIGKILLed executor takes its workers with it at once.
    """
    if sys.platform != "linux":
        return
    from multiprocessing import forkserver

    server: Any = getattr(forkserver, "_forkserver", None)
    alive = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(alive, int):
        with contextlib.suppress(OSError):
            os.close(alive)
        server._forkserver_alive_fd = None
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the prctl
        os._exit(70)


def _serve(conn: Connection, lifeline: Connection) -> None:
    """The worker's loop: one request at a time, until the executor closes the pipe."""
    _die_with_fork_server()
    _die_with_executor(lifeline)
    os.dup2(2, 1)  # handlers print (Powertools logs to stdout): that must not reach the CLI's stdout
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(_run(*request))


def _resolve(target: str) -> Callable[..., Any]:
    module, _, attr = target.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), attr)
    return function


def _run(target: str, args: tuple[Any, ...], env: Mapping[str, str], cwd: str) -> tuple[Any, ...]:
    try:
        return _run_target(target, args, env, cwd)
    finally:
        # A worker never exits normally (it is reused, then killed): write what local IAM enforcement
        # recorded for the unused-grants report now, not at exit.
        enforce = sys.modules.get("lakehouse.local.enforce")
        if enforce is not None:
            enforce.flush_records()


def _run_target(target: str, args: tuple[Any, ...], env: Mapping[str, str], cwd: str) -> tuple[Any, ...]:
    os.environ.clear()
    os.environ.update(env)
    try:
        os.chdir(cwd)
        with warnings.catch_warnings():
            # Powertools warns when a handler published no metric; metrics are off locally anyway.
            warnings.simplefilter("ignore", UserWarning)
            return ("ok", _resolve(target)(*args))
    except (Exception, SystemExit) as exc:  # argparse in a job script exits on bad arguments
        error, message = (
            (exc.error, exc.cause) if isinstance(exc, TaskFailed) else (type(exc).__name__, str(exc))
        )
        return ("error", error, message, traceback.format_exception(exc)[1:])


def invoke_function(spec: Any, event: dict[str, Any], context: Any) -> Any:
    """Worker target: a Lambda handler from the template (`local.project.FunctionSpec`)."""
    from lakehouse.local.project import handler_of

    return handler_of(spec)(event, context)


_START_LOCK = threading.Lock()


def _start_without_main(process: Any) -> None:
    """`process.start()`, minus multiprocessing's re-import of `__main__` in the child.

    spawn/forkserver children run the parent's main script again as `__mp_main__` (or import its
    module); for a CLI or a test runner that is wasted time, and an unguarded script would run twice.
    The worker's target lives in this module, so the child does not need `__main__`.
    """
    original = spawn.get_preparation_data

    def without_main(name: str) -> dict[str, Any]:
        data: dict[str, Any] = original(name)
        return {k: v for k, v in data.items() if not k.startswith("init_main_from")}

    with _START_LOCK:
        spawn.get_preparation_data = without_main
        try:
            process.start()
        finally:
            spawn.get_preparation_data = original


# AF_UNIX socket paths are limited to 107 bytes, and multiprocessing puts the fork server's socket in a
# folder under TMPDIR: a long TMPDIR (a pytest tmp_path, a deep CI workspace) made every task fail with
# "AF_UNIX path too long".
_MAX_SOCKET_DIR = 60


@contextlib.contextmanager
def _short_socket_dir() -> Iterator[None]:
    """While the fork server starts, let multiprocessing make its socket folder under a short path."""
    if len(tempfile.gettempdir()) <= _MAX_SOCKET_DIR or not os.path.isdir("/tmp"):
        yield
        return
    with _TEMPDIR_LOCK:
        saved = tempfile.tempdir
        tempfile.tempdir = "/tmp"
        try:
            yield
        finally:
            tempfile.tempdir = saved


_TEMPDIR_LOCK = threading.Lock()


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        lifeline, self._lifeline = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=_serve, args=(child, lifeline), name="lakehouse-task-worker", daemon=True
        )
        _start_without_main(self.process)
        child.close()
        lifeline.close()

    @property
    def pid(self) -> int | None:
        pid: int | None = self.process.pid
        return pid

    def alive(self) -> bool:
        return bool(self.process.is_alive())

    def request(self, message: tuple[Any, ...]) -> tuple[Any, ...]:
        self.conn.send(message)
        reply: tuple[Any, ...] = self.conn.recv()
        return reply

    def kill(self) -> None:
        """SIGKILL and reap. The thread waiting on `conn` gets EOFError and closes it."""
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.join(10)

    def close(self) -> None:
        self.kill()
        for conn in (self.conn, self._lifeline):
            with contextlib.suppress(Exception):
                conn.close()


class WorkerPool:
    """Reusable worker processes; a call takes an idle one (or starts one) and gives it back after."""

    def __init__(self, max_idle: int = MAX_IDLE_WORKERS) -> None:
        methods = multiprocessing.get_all_start_methods()
        self._ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            self._ctx.set_forkserver_preload(PRELOAD)
        self._max_idle = max_idle
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._warming: threading.Event | None = None
        self.started = 0  # workers started so far (tests and benchmarks read it)

    def prewarm(self) -> None:
        """Start a worker in the background, so the first task does not wait for it."""
        with self._lock:
            if self._idle or self._warming is not None:
                return
            done = self._warming = threading.Event()

        def warm() -> None:
            try:
                self._give_back(self._start())
            except Exception:  # the first call starts one again and reports the problem
                pass
            finally:
                with self._lock:
                    self._warming = None
                done.set()

        threading.Thread(target=warm, name="worker-prewarm", daemon=True).start()

    def _start(self) -> _Worker:
        with _short_socket_dir():
            worker = _Worker(self._ctx)
        self.started += 1
        return worker

    def _take(self) -> _Worker:
        with self._lock:
            warming = self._warming
        if warming is not None:
            warming.wait(120)
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                worker.close()
        return self._start()

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if worker.alive() and len(self._idle) < self._max_idle:
                self._idle.append(worker)
                return
        worker.close()

    def call(self, target: str, args: tuple[Any, ...], env: Mapping[str, str]) -> Any:
        """Run `module:function(*args)` in a worker with this process's environment plus `env`.

        Raises RemoteTaskError for an exception in the task, TaskCancelledError if the state timed out
        (the worker was killed), WorkerCrashedError if the worker died otherwise.
        """
        slot = current_slot()
        if slot is not None and slot.cancelled:
            raise TaskCancelledError(f"state {slot.state!r} timed out before its task started")
        worker = self._take()
        unregister = slot.on_cancel(worker.kill) if slot is not None else (lambda: None)
        try:
            reply = worker.request((target, args, {**os.environ, **env}, os.getcwd()))
        except Exception as exc:
            worker.close()
            if not isinstance(exc, EOFError | OSError):
                raise  # e.g. arguments that cannot be pickled: the worker may be half-way through a message
            if slot is not None and slot.cancelled:
                raise TaskCancelledError(
                    f"state {slot.state!r} timed out: its worker process {worker.pid} was killed"
                ) from exc
            raise WorkerCrashedError(
                f"the worker process {worker.pid} running {target} died (exit code {worker.process.exitcode})"
            ) from exc
        finally:
            unregister()
        self._give_back(worker)
        if reply[0] == "ok":
            return reply[1]
        _, error, message, remote_traceback = reply
        raise RemoteTaskError(error, message, remote_traceback)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()


_POOL: list[WorkerPool] = []
_POOL_LOCK = threading.Lock()


def shared_pool() -> WorkerPool:
    """The process's worker pool (every local pipeline in a process shares its warm workers)."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(WorkerPool())
        return _POOL[0]
