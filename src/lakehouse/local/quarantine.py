"""What the pipeline set aside: quarantined files (with their reason) and rejected rows.

The quarantine bucket holds `objects/<dataset>/<run_id>/<file>` with `<file>.reason.json` beside it, and
`rows/<dataset>/<run_id>/rejects.parquet`, whose columns are `source_row`, `source_line`, `reason` and
`raw_line`. This module reads both back for `lakehouse quarantine` (local only: Parquet through pyarrow).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse import layout
from lakehouse.stages.runtime import Runtime

REJECT_COLUMNS = ("source_row", "source_line", "reason", "raw_line")


@dataclass
class QuarantineListing:
    files: list[dict[str, Any]] = field(default_factory=list)
    # One entry per run with rejected rows: {dataset, run_id, uri, count, rows (the first `limit`)}.
    row_sets: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "rejected_rows": self.row_sets}


def reason_text(reason: dict[str, Any]) -> str:
    """One line: the failed checks by name and metric, or the error's message."""
    message = reason.get("message")
    if isinstance(message, list):  # ChecksFailedError: the check results
        failed = [
            c for c in message if isinstance(c, dict) and not c.get("passed") and c.get("severity") != "warn"
        ]
        return "checks failed: " + ", ".join(
            f"{c.get('name')} (metric {c.get('metric')}, min {c.get('min')}, max {c.get('max')})"
            + (f": {c['note']}" if c.get("note") else "")
            for c in failed
        )
    if isinstance(message, dict):
        return str(message.get("errorMessage") or message.get("ErrorMessage") or json.dumps(message))
    return "" if message is None else str(message)


_KEY_PARTS = 4  # <kind>/<dataset>/<run id>/<file...>


def _matches(key: str, kind: str, dataset: str | None, run_id: str | None) -> tuple[str, str] | None:
    parts = key.split("/")
    if len(parts) < _KEY_PARTS or parts[0] != kind:
        return None
    if (dataset and parts[1] != dataset) or (run_id and not parts[2].startswith(run_id)):
        return None
    return parts[1], parts[2]


def list_quarantine(
    rt: Runtime, dataset: str | None = None, run_id: str | None = None, limit: int = 20
) -> QuarantineListing:
    """Quarantined files and rejected rows, newest run last; `limit` rows per run are read back."""
    objects = rt.adapters.objects
    bucket = rt.settings.quarantine_bucket
    out = QuarantineListing()
    for key in sorted(objects.list(bucket, f"{layout.OBJECTS}/")):
        found = _matches(key, "objects", dataset, run_id)
        if found is None or not key.endswith(".reason.json"):
            continue
        reason = json.loads(objects.read_bytes(bucket, key))
        file_key = key.removesuffix(".reason.json")
        out.files.append(
            {
                "dataset": found[0],
                "run_id": found[1],
                "file": Path(file_key).name,
                "source": reason.get("source"),
                "error": reason.get("error"),
                "reason": reason_text(reason),
                "quarantined_at": reason.get("quarantined_at"),
                "object_uri": objects.uri(bucket, file_key) if objects.exists(bucket, file_key) else None,
                "reason_uri": objects.uri(bucket, key),
            }
        )
    for key in sorted(objects.list(bucket, f"{layout.ROWS}/")):
        found = _matches(key, "rows", dataset, run_id)
        if found is None or not key.endswith(".parquet"):
            continue
        count, rows = _read_rejects(rt, bucket, key, limit)
        out.row_sets.append(
            {
                "dataset": found[0],
                "run_id": found[1],
                "uri": objects.uri(bucket, key),
                "count": count,
                "rows": rows,
            }
        )
    return out


def _read_rejects(rt: Runtime, bucket: str, key: str, limit: int) -> tuple[int, list[dict[str, Any]]]:
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="lakehouse-rejects-") as folder:
        local = rt.adapters.objects.download(bucket, key, Path(folder) / "rejects.parquet")
        table = pq.read_table(local)
    columns = [c for c in REJECT_COLUMNS if c in table.column_names]
    return table.num_rows, table.select(columns).slice(0, limit).to_pylist()
