"""Crash injection for tests: kill the local executor between two states, as a power cut would.

`LAKEHOUSE_FAULT_KILL_AFTER_TASKS=N` makes the executor SIGKILL its own process right after the N-th
Task of the process has finished (its side effects done, its result not yet recorded). A test then
resumes the interrupted run (`lakehouse resume`) and compares the table with a clean run's. Unset, the
handlers are returned unchanged.
"""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Callable
from typing import Any, TypeVar

ENV = "LAKEHOUSE_FAULT_KILL_AFTER_TASKS"

F = TypeVar("F", bound=Callable[..., Any])


class CrashInjector:
    """Counts finished tasks across every handler it wraps; kills the process at the chosen one."""

    def __init__(self, kill_after: int | None) -> None:
        self.kill_after = kill_after
        self._finished = itertools.count(1)

    @classmethod
    def from_env(cls) -> CrashInjector:
        value = os.environ.get(ENV, "").strip()
        return cls(int(value) if value.isdigit() and int(value) > 0 else None)

    def wrap(self, handlers: dict[str, F]) -> dict[str, F]:
        if self.kill_after is None:
            return handlers
        return {key: self._wrap_one(handler) for key, handler in handlers.items()}

    def _wrap_one(self, handler: F) -> F:
        def call(*args: Any, **kwargs: Any) -> Any:
            result = handler(*args, **kwargs)
            if next(self._finished) == self.kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        return call  # type: ignore[return-value]
