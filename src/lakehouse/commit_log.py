"""Who committed what: the commit metadata both engines write, and how a run finds its own commit.

Exactly-once is per object version (docs/ARCHITECTURE.md, "Correctness rules"). The app transaction tells
*that* an object version was applied; the commit metadata tells *who* applied it. A run that finds its
app transaction in the table therefore asks the log which run wrote it:

- this same run (a retry or a resumed run after a crash): it *resumes* after its own commit
  (register, checks, rollback or publish), exactly once;
- another run (an earlier, finished run of the same object version): the object is a *duplicate*.

Neither engine library is imported here: delta-rs (`DeltaTable.history()`) and Spark
(`DESCRIBE HISTORY`) both hand their commits over as plain mappings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lakehouse.errors import InvalidInputError

# The first ingest of an object version commits its app transaction at version 1. `lakehouse rerun`
# re-applies an object on purpose with the next version (2, 3, ...): Delta app versions must grow.
FIRST_TXN_VERSION = 1

RUN_ID_KEY = "lakehouse.run_id"
APP_IDS_KEY = "lakehouse.app_ids"
SOURCE_KEY = "lakehouse.source"
# How many of the latest commits a run searches for its own commit. A run holds the table's lease from
# its commit through its checks, so its own commit is among the latest few; an app transaction whose
# commit is older than this was written by an earlier run.
SEARCH_DEPTH = 200


@dataclass(frozen=True)
class CommitRef:
    """The commit that carried an app transaction."""

    version: int
    run_id: str | None


def commit_metadata(run_id: str, app_ids: Iterable[str], source: str) -> dict[str, str]:
    """commitInfo entries of an ingest commit.

    `userMetadata` is the one commitInfo field Spark lets a writer set, so both engines put the JSON
    there (delta-rs writes it as a custom key of the same name); the top-level keys keep
    `lakehouse history` readable for delta-rs commits.
    """
    ids = sorted(set(app_ids))
    user = {RUN_ID_KEY: run_id, APP_IDS_KEY: ids, SOURCE_KEY: source}
    return {
        "userMetadata": json.dumps(user, sort_keys=True),
        RUN_ID_KEY: run_id,
        SOURCE_KEY: source,
    }


def _user_metadata(entry: Mapping[str, Any]) -> dict[str, Any]:
    raw = entry.get("userMetadata")
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, str) and raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def find_commit(history: Iterable[Mapping[str, Any]], app_id: str) -> CommitRef | None:
    """The newest commit in `history` (commitInfo mappings with `version`) that applied `app_id`."""
    found: CommitRef | None = None
    for entry in history:
        user = _user_metadata(entry)
        app_ids = user.get(APP_IDS_KEY) or []
        if app_id not in app_ids:
            continue
        version = entry.get("version")
        if version is None:
            continue
        run_id = user.get(RUN_ID_KEY) or entry.get(RUN_ID_KEY)
        ref = CommitRef(int(version), str(run_id) if run_id else None)
        if found is None or ref.version > found.version:
            found = ref
    return found


def is_own_commit(ref: CommitRef | None, run_id: str) -> bool:
    """True when `ref` is this run's own commit (it resumes instead of reporting a duplicate)."""
    return ref is not None and ref.run_id == run_id


def txn_version(state: Mapping[str, Any]) -> int:
    """The app-transaction version a run commits with: 1, or the rerun generation."""
    value = state.get("txn_version")
    if value is None:
        return FIRST_TXN_VERSION
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise InvalidInputError(f"txn_version must be a whole number >= 1, got {value!r}")
    version = int(value)
    if version < FIRST_TXN_VERSION:
        raise InvalidInputError(f"txn_version must be a whole number >= 1, got {value!r}")
    return version
