"""Render the state-data and run-status tables of docs/ARCHITECTURE.md from `lakehouse.state`.

usage: python scripts/state_table.py           print both tables
       python scripts/state_table.py --write   rewrite them in docs/ARCHITECTURE.md (between the markers)
       python scripts/state_table.py --check   exit 1 if the doc's tables differ from the models

tests/unit/test_state.py runs the check.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from lakehouse.state import state_table, status_table  # noqa: E402

DOC = ROOT / "docs" / "ARCHITECTURE.md"
TABLES = {"state-table": state_table, "status-table": status_table}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {name}:[^\n]*-->\n)(.*?)(<!-- /{name} -->)", re.DOTALL)


def current(text: str, name: str) -> str | None:
    """The table between the `name` markers of `text`; None without markers."""
    found = _block(name).search(text)
    return found.group(2) if found else None


def render(text: str) -> str:
    """`text` with every marked table replaced by the one the models give."""
    for name, table in TABLES.items():
        text = _block(name).sub(lambda m, t=table: m.group(1) + t() + m.group(3), text)
    return text


def main(argv: list[str]) -> int:
    text = DOC.read_text(encoding="utf-8")
    if "--write" in argv:
        DOC.write_text(render(text), encoding="utf-8")
        return 0
    if "--check" in argv:
        stale = [name for name, table in TABLES.items() if current(text, name) != table()]
        for name in stale:
            print(f"{DOC}: the {name} is stale; run python scripts/state_table.py --write", file=sys.stderr)
        return 1 if stale else 0
    for table in TABLES.values():
        print(table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
