"""Every CLI error path a user can hit prints a message, never a Python traceback (run as a subprocess,
as a user runs it). Messages keep brackets (Rich markup is off for data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_helpers import DATASETS, ROOT, Cli, write_orders

pytestmark = pytest.mark.e2e

BAD_CONTRACT = """\
name: orders
landing_prefix: orders/
format: {type: csv}
columns:
  - {name: a, type: bigint}
  - {name: a, type: string}
primary_key: [zz]
partition_by: [yy]
write_mode: merge
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with an `orders` table (two versions) and a quarantined run started by `invoke`."""
    base = tmp_path_factory.mktemp("errors")
    home = base / "home"
    old = os.getcwd()
    os.chdir(ROOT)
    try:
        cli = Cli(home)
        first = cli("run", str(write_orders(base / "orders_1.csv", 1, 5)), "--no-spark", "--json")
        assert first.exit_code == 0, first.stderr
        second = cli("run", str(write_orders(base / "orders_2.csv", 100, 5)), "--no-spark", "--json")
        assert second.exit_code == 0, second.stderr
        quarantined = cli(
            "invoke", "QuarantineObjectFunction", "--event", str(ROOT / "events/quarantine_object.json")
        )
        assert quarantined.exit_code == 0, quarantined.stderr
    finally:
        os.chdir(old)
    return home


def lakehouse(home: Path, *args: str, datasets: Path = DATASETS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakehouse", "--home", str(home), "--datasets", str(datasets), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "LAKEHOUSE_PROJECT_ROOT": str(ROOT), "LAKEHOUSE_DEBUG": ""},
    )


ERROR_PATHS = [
    (["maintain", "orders", "--retention-hours", "0"], "keeping only 0 hour(s)"),
    (["maintain", "orders", "--retention-hours", "-1"], "0 hours or more"),
    (["maintain", "no_such"], "no contract for dataset 'no_such'"),
    (["rollback", "orders", "--version", "99"], "to version 99: the table has versions 0.."),
    (["rollback", "no_such", "--version", "0"], "no contract for dataset 'no_such'"),
    (["history", "no_such"], "no contract for dataset 'no_such'"),
    (["checks", "no_such"], "no contract for dataset 'no_such'"),
    (["query", "SELEC 1"], "error"),
    (["query", "SELECT * FROM no_such_table"], "no_such_table"),
    (["query", "SELECT 1", "--format", "xml"], "--format must be"),
    (["query", "SELECT approx_set(o_custkey) FROM orders"], "use approx_distinct(x)"),
    (["query", "SELECT format_datetime(_ingested_at, 'ww') FROM orders"], "use date_format"),
    (["runs", "--id", "no-such-run"], "no run 'no-such-run'"),
    (["invoke", "NoSuchFunction", "--event", "events/quarantine_object.json"], "NoSuchFunction"),
    (["invoke", "QuarantineObjectFunction", "--event", "no/such/event.json"], "cannot read the event"),
    (["run", "README.md"], "cannot tell its dataset"),
    (["run", "README.md", "--dataset", "no_such"], "no contract for dataset 'no_such'"),
    (["quarantine", "no_such"], "no contract for dataset 'no_such'"),
    (["quarantine", "--run", "no-such-run"], "no-such-run"),
]


@pytest.mark.parametrize(
    ("args", "says"), ERROR_PATHS, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_error_paths_print_a_message_not_a_traceback(home: Path, args: list[str], says: str) -> None:
    done = lakehouse(home, *args)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output
    assert says in output, output


@pytest.mark.parametrize("command", [["tables"], ["runs"], ["checks", "orders"], ["history", "orders"],
                                     ["run", "README.md", "--dataset", "orders"], ["watch", "--once"],
                                     ["maintain", "orders"], ["quarantine"]])  # fmt: skip
def test_bad_contracts_are_reported_in_full_by_every_command(
    home: Path, tmp_path: Path, command: list[str]
) -> None:
    folder = tmp_path / "datasets"
    folder.mkdir()
    (folder / "orders.yaml").write_text(BAD_CONTRACT)
    (folder / "other.yaml").write_text("name: Bad Name\nlanding_prefix: x/\nformat: {type: csv}\n")
    done = lakehouse(home, *command, datasets=folder)
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    if command in (["runs"], ["quarantine"]):  # the ledger and the quarantine bucket need no contract
        assert done.returncode == 0, output
        return
    assert done.returncode != 0, output
    # Every problem, each with file:line: field; the identifier regex keeps its brackets.
    for expected in (
        f"{folder / 'orders.yaml'}:6: columns[1].name: duplicate column name 'a'",
        f"{folder / 'orders.yaml'}:7: primary_key[0]: names unknown column 'zz'",
        f"{folder / 'orders.yaml'}:8: partition_by[0]: names unknown column 'yy'",
        f"{folder / 'other.yaml'}:1: name: 'Bad Name' does not match '^[a-z_][a-z0-9_]*$'",
        f"{folder / 'other.yaml'}:1: (top level): 'columns' is a required property",
    ):
        assert expected in output, output


def test_runs_id_shows_a_run_a_stage_recorded_on_its_own(home: Path) -> None:
    """`invoke QuarantineObjectFunction` writes the ledger record itself (error as a string)."""
    run_id = json.loads((ROOT / "events/quarantine_object.json").read_text())["run_id"]
    done = lakehouse(home, "runs", "--id", run_id)
    assert done.returncode == 0, done.stderr
    assert "QUARANTINED" in done.stdout
    assert "SchemaMismatchError" in done.stdout
    as_json = json.loads(lakehouse(home, "runs", "--id", run_id, "--json").stdout)
    assert as_json["status"] == "QUARANTINED"
