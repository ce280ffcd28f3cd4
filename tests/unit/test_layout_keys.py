"""Every storage key has one definition, `lakehouse.layout`: the Spark side spells none itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lakehouse import layout

ROOT = Path(__file__).resolve().parents[2]
SPARK_SIDE = sorted((ROOT / "src" / "lakehouse" / "spark").glob("*.py")) + sorted(
    (ROOT / "jobs").rglob("*.py")
)
# The parts of the layout's keys (module constants and the fixed file names of its key functions).
KEY_PARTS = (
    f"{layout.TABLES}/",
    f"{layout.DERIVED}/",
    f"{layout.RUNS}/",
    f"{layout.ROWS}/",
    f"{layout.OBJECTS}/",
    "commit.json",
    "rejects.parquet",
    "/source/",
    layout.REASON_SUFFIX,
)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def spelled_keys(path: Path) -> list[str]:
    """String literals (f-string parts included) of `path` that spell a layout key, docstrings aside."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            hits += [f"line {node.lineno}: {node.value!r}" for part in KEY_PARTS if part in node.value]
    return hits


@pytest.mark.parametrize("path", SPARK_SIDE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_spark_side_spells_no_storage_key(path: Path) -> None:
    assert spelled_keys(path) == []


def test_the_scan_finds_a_spelled_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        '"""runs/<run_id>/commit.json is documented here."""\nuri = f"s3://{b}/runs/{r}/commit.json"\n'
    )
    assert spelled_keys(bad) == ["line 2: '/runs/'", "line 2: '/commit.json'"]


def test_spark_uris_are_the_layouts() -> None:
    pytest.importorskip("pyspark", reason="lakehouse.spark imports pyspark (the local extra)")
    from lakehouse.spark import refresh

    assert refresh.table_uri("s3://lake/", "orders") == "s3://lake/" + layout.table_key("orders")
    assert refresh.derived_uri("/home/b/lake", "daily") == "/home/b/lake/" + layout.derived_key("daily")
