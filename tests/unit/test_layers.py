"""Imports run one way (docs/ARCHITECTURE.md, "Layers"): the import-linter contracts in pyproject.toml hold.

`make lint` runs `lint-imports` too; this test keeps the contracts in the unit suite, so a wrong-way import
(spark -> stages, stages -> local, pyarrow on the Lambda path) fails fast wherever tests run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    pytest.importorskip("importlinter", reason="import-linter (the dev extra) is not installed")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    code = "import importlinter.cli as c; raise SystemExit(c.lint_imports(no_cache=True, no_logo=True))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
