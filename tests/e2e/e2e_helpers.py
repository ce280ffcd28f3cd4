"""End-to-end helpers: the `lakehouse` CLI in-process (typer's CliRunner) or as a subprocess."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT / "datasets"

ORDERS_HEADER = ",".join(
    [
        "o_orderkey",
        "o_custkey",
        "o_orderstatus",
        "o_totalprice",
        "o_orderdate",
        "o_orderpriority",
        "o_clerk",
        "o_shippriority",
        "o_comment",
    ]
)
LINEITEM_HEADER = (
    "l_orderkey,l_partkey,l_suppkey,l_linenumber,l_quantity,l_extendedprice,l_discount,l_tax,l_returnflag,"
    "l_linestatus,l_shipdate,l_commitdate,l_receiptdate,l_shipinstruct,l_shipmode,l_comment"
)


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Cli:
    """`lakehouse --home <home> --datasets datasets/ ...`, in-process."""

    def __init__(self, home: Path, datasets: Path = DATASETS) -> None:
        self.home = home
        self.datasets = datasets

    def __call__(self, *args: str) -> CliResult:
        from lakehouse.cli import app

        runner = CliRunner()
        result = runner.invoke(
            app, ["--home", str(self.home), "--datasets", str(self.datasets), *args], catch_exceptions=False
        )
        return CliResult(result.exit_code, result.stdout, result.stderr)

    def subprocess(self, *args: str, timeout: float = 300) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lakehouse",
                "--home",
                str(self.home),
                "--datasets",
                str(self.datasets),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "LAKEHOUSE_PROJECT_ROOT": str(ROOT)},
        )


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.chdir(ROOT)
    # A test must not inherit a developer's LAKEHOUSE_* settings (or the runtime cache keyed on them).
    for name in ("LAKEHOUSE_HOME", "LAKEHOUSE_DATASETS", "LAKEHOUSE_BACKEND", "DATASETS_DIR"):
        monkeypatch.delenv(name, raising=False)
    return Cli(tmp_path / "home")


def csv_rows(path: Path) -> list[dict[str, str]]:
    """The file's data rows, read with Python's csv module (independent of the pipeline)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_orders(path: Path, first_key: int, count: int, **overrides: str) -> Path:
    lines = [ORDERS_HEADER]
    for i in range(count):
        row = {
            "o_orderkey": str(first_key + i),
            "o_custkey": str(100 + i),
            "o_orderstatus": "FOP"[i % 3],
            "o_totalprice": f"{1000 + i * 10.5:.2f}",
            "o_orderdate": "1996-01-02",
            "o_orderpriority": "5-LOW",
            "o_clerk": "Clerk#000000951",
            "o_shippriority": "0",
            "o_comment": f"order {i}",
        }
        row.update(overrides)
        lines.append(",".join(row.values()))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_lineitem(path: Path, first_key: int, count: int, quantity: int = 17) -> Path:
    lines = [LINEITEM_HEADER]
    for i in range(count):
        lines.append(
            f"{first_key + i},1552,93,1,{quantity},24710.35,0.04,0.02,N,O,1996-03-13,1996-02-12,1996-03-22,"
            f"DELIVER IN PERSON,{['TRUCK', 'MAIL', 'AIR'][i % 3]},line {i}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
