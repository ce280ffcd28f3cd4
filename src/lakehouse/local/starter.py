"""`StartExecution`, locally: a persistent queue of runs under `<home>/state/queue/`.

`lakehouse.stages.start.start_run` calls `LocalStarter(rt).start(name, payload)` exactly where AWS calls
Step Functions. Like StartExecution with a name that was already used, a second start of the same name
is a no-op (`started: False`). The run itself happens when an executor drains the queue (`lakehouse run`,
`watch`, `demo`, `invoke`): start_run writes the ledger's STARTED record after `start` returns, so the
run must not already have finished by then. A queued run that a crash interrupted stays queued and runs
again on the next drain; every stage is idempotent (app transactions, leases owned by the run id).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakehouse import identifiers
from lakehouse.access import active_role
from lakehouse.adapters.local import file_lock
from lakehouse.local.project import ACCOUNT_ID, REGION
from lakehouse.stages.runtime import Runtime


@dataclass(frozen=True)
class QueuedRun:
    name: str
    payload: dict[str, Any]
    path: Path


class LocalQueue:
    """Queued executions: one JSON file each, named `<enqueue time ns>-<execution name>.json`."""

    def __init__(self, home: Path) -> None:
        self.dir = Path(home).resolve() / "state" / "queue"
        self._lock = self.dir.parent / "queue.lock"

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return file_lock(self._lock)

    def _find(self, name: str) -> Path | None:
        if not self.dir.is_dir():
            return None
        return next(iter(self.dir.glob(f"*-{name}.json")), None)

    def put(self, name: str, payload: Mapping[str, Any], *, seen: bool) -> bool:
        """Queue `name` unless it is queued already or `seen` (the ledger knows it). True if queued."""
        identifiers.run_id(name)  # it names a file here, and later keys and folders
        with self._locked():
            if seen or self._find(name) is not None:
                return False
            self.dir.mkdir(parents=True, exist_ok=True)
            path = self.dir / f"{time.time_ns():020d}-{name}.json"
            tmp = self.dir / f".tmp-{uuid.uuid4().hex}"
            tmp.write_text(json.dumps({"name": name, "payload": dict(payload)}, default=str))
            os.replace(tmp, path)
            return True

    def pending(self) -> list[QueuedRun]:
        if not self.dir.is_dir():
            return []
        runs = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            runs.append(QueuedRun(str(data["name"]), dict(data["payload"]), path))
        return runs

    def done(self, run: QueuedRun) -> None:
        run.path.unlink(missing_ok=True)


class LocalStarter:
    """The `PipelineStarter` of the local backend (see `lakehouse.stages.start.default_starter`)."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.queue = LocalQueue(Path(runtime.settings.home))

    def start(self, name: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        arn = f"arn:aws:states:{REGION}:{ACCOUNT_ID}:execution:IngestStateMachine:{name}"
        role = active_role()
        if role is not None:  # local IAM: StartExecution on the state machine (docs/IAM.md)
            from lakehouse.local.enforce import authorize

            authorize(
                role, "states:StartExecution", arn.replace(":execution:", ":stateMachine:").rsplit(":", 1)[0]
            )
        # Step Functions keeps execution names for 90 days whatever their outcome; the ledger is our record.
        seen = self.rt.adapters.ledger.get(name) is not None
        started = self.queue.put(name, payload, seen=seen)
        return {"execution_arn": arn, "started": started}
