"""Helpers for the engine tests: shared test vectors, run metadata, reading tables back as JSON values.

The comparison rules (tests/vectors/README.md) are implemented here in plain Python, independently of
the engine: decimals compare as their text at the table's scale, dates as ISO text, timestamps as
aware datetimes in UTC, `_rescued` as parsed JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from lakehouse.contracts import Contract, parse_contract
from lakehouse.duckdb_engine.ingest import IngestResult, ingest_file
from lakehouse.events import app_id_for
from lakehouse.sql.compiler import METADATA_COLUMNS, RunMeta

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
INGESTED_AT = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Vector:
    name: str
    folder: Path
    contract: Contract
    input: Path
    expected: dict[str, Any]


def vector_names() -> list[str]:
    return sorted(p.name for p in VECTORS.iterdir() if (p / "expected.json").is_file())


def load_vector(name: str) -> Vector:
    folder = VECTORS / name
    contract_path = folder / "contract.yaml"
    contract = parse_contract(contract_path.read_text(encoding="utf-8"), str(contract_path))
    inputs = sorted(folder.glob("input.*"))
    assert len(inputs) == 1, f"{folder}: expected exactly one input.* file, found {inputs}"
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    return Vector(name, folder, contract, inputs[0], expected)


def meta_for(path: Path, run_id: str = "run-1", version: str = "v1") -> RunMeta:
    return RunMeta(
        source_uri=path.resolve().as_uri(), source_version=version, ingested_at=INGESTED_AT, run_id=run_id
    )


def app_id(contract: Contract, path: Path, version: str = "v1") -> str:
    return app_id_for(contract.name, "landing", f"{contract.landing_prefix}{path.name}", version)


def ingest(
    path: Path,
    contract: Contract,
    table_uri: str,
    work_dir: Path,
    *,
    version: str = "v1",
    run_id: str = "run-1",
    storage_options: dict[str, str] | None = None,
    app: str | None = None,
) -> IngestResult:
    """Ingest `path` with an app id derived from the file name and `version` (as the stages do)."""
    return ingest_file(
        path,
        contract,
        table_uri,
        meta_for(path, run_id, version),
        app_id=app or app_id(contract, path, version),
        work_dir=work_dir,
        storage_options=storage_options,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- reading tables back -------------------------------------------------------------------------


def read_rows(
    uri: str, storage_options: Mapping[str, str] | None = None, *, with_metadata: bool = False
) -> list[dict[str, Any]]:
    """Every row of the table as Python values (pyarrow is used here only, never by the engine)."""
    table = DeltaTable(uri, storage_options=dict(storage_options or {}))
    rows: list[dict[str, Any]] = table.to_pyarrow_table().to_pylist()
    if not with_metadata:
        rows = [{k: v for k, v in r.items() if k not in METADATA_COLUMNS} for r in rows]
    return rows


def table_version(uri: str, storage_options: Mapping[str, str] | None = None) -> int:
    return DeltaTable(uri, storage_options=dict(storage_options or {})).version()


def to_json_value(value: Any) -> Any:
    """A table value in the vectors' JSON convention."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        assert value.tzinfo is not None, f"timestamp {value!r} is not timezone-aware (expected UTC)"
        return value.astimezone(UTC)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _expected_value(column: str, value: Any, actual: Any) -> Any:
    if column == "_rescued" and isinstance(value, dict):
        return value
    if isinstance(actual, datetime) and isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        assert parsed.tzinfo is not None, f"expected timestamp {value!r} must carry Z or +00:00"
        return parsed.astimezone(UTC)
    return value


def normalise(rows: Iterable[Mapping[str, Any]], key: list[str]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        item = {k: to_json_value(v) for k, v in row.items()}
        if isinstance(item.get("_rescued"), str):
            item["_rescued"] = json.loads(item["_rescued"])
        out.append(item)
    return sorted(out, key=lambda r: tuple((r[k] is None, r[k]) for k in key))


def assert_rows_equal(actual_rows: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    """Compare table rows (metadata columns removed) with the vector's expected rows, by key."""
    key = expected["key"]
    actual = normalise(actual_rows, key)
    wanted = expected["rows"]
    assert len(actual) == len(wanted), f"{len(actual)} rows in the table, {len(wanted)} expected"
    for got, want in zip(actual, wanted, strict=True):
        assert set(got) == set(want), f"columns differ: table {sorted(got)}, expected {sorted(want)}"
        for column, value in want.items():
            expect = _expected_value(column, value, got[column])
            assert got[column] == expect, (
                f"row {[got[k] for k in key]} column {column}: table has {got[column]!r}, expected {expect!r}"
            )
            if expect is not None:  # True == 1 and 1 == 1.0 in Python: the types must match too
                assert type(got[column]) is type(expect), (
                    f"column {column}: table gives {type(got[column]).__name__}, "
                    f"expected {type(expect).__name__}"
                )


# --- concurrent writers (run in spawned processes) -----------------------------------------------


def ingest_in_process(
    args: tuple[str, str, str, str, str, str, dict[str, str] | None, Any],
) -> dict[str, Any]:
    """Worker for multiprocessing: ingest one file and report the outcome (never raises).

    args = (path, contract text, table uri, work dir, app id, run id, storage options, barrier).
    """
    path, contract_text, uri, work_dir, app, run_id, options, barrier = args
    contract = parse_contract(contract_text, "contract.yaml")
    if barrier is not None:
        barrier.wait(timeout=60)
    try:
        result = ingest_file(
            Path(path),
            contract,
            uri,
            meta_for(Path(path), run_id),
            app_id=app,
            work_dir=Path(work_dir),
            storage_options=options,
        )
    except Exception as exc:  # reported to the test, which asserts on it
        return {"status": "error", "error": type(exc).__name__, "message": str(exc)}
    return {"status": result.status, "rows_written": result.rows_written, "version": result.version_after}
