"""The EMR Serverless jobs' code, for EMR's own Python: `dist/lakehouse_emr.zip` (--py-files).

EMR 7.x runs Python 3.9 (Amazon Linux 2023) with pyspark and the bundled Delta jars
(/usr/share/aws/delta/lib/), and no PyYAML, pydantic or sqlglot. So the jobs in jobs/emr/ import only
the standard library, pyspark and a few lakehouse modules. This script computes that import closure
from the sources (ast, no imports executed) and zips exactly those modules, reproducibly (sorted entries,
fixed timestamps). tests/unit/test_emr_bundle.py checks the closure: Python 3.9 syntax, no third-party
import outside pyspark/py4j/delta.

usage: python scripts/emr_bundle.py [OUT.zip]       (default dist/lakehouse_emr.zip)
"""

from __future__ import annotations

import ast
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
ENTRY_POINTS = sorted((ROOT / "jobs" / "emr").glob("*.py"))
FIRST_PARTY = "lakehouse"
ALLOWED_THIRD_PARTY = {"pyspark", "py4j", "delta"}  # what EMR Serverless 7.x provides
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)


@dataclass
class Closure:
    modules: set[Path] = field(default_factory=set)  # lakehouse source files, packages' __init__ included
    third_party: dict[str, set[str]] = field(default_factory=dict)  # top-level name -> importing files
    stdlib: set[str] = field(default_factory=set)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(tree: ast.AST) -> list[str]:
    """Dotted module names a module imports anywhere (functions included), except TYPE_CHECKING blocks.

    `from a.b import c` yields `a.b` and `a.b.c` (c may be a submodule).
    """
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    names: list[str] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "__future__":
                continue
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def module_file(dotted: str) -> Path | None:
    base = SRC.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def closure(entry_points: list[Path] | None = None) -> Closure:
    """Every lakehouse module the entry points import, transitively, and the other imports they make."""
    found = Closure()
    queue = list(entry_points or ENTRY_POINTS)
    seen: set[Path] = set()
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.is_relative_to(SRC):
            found.modules.add(path)
        for dotted in imported_names(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            top = dotted.split(".")[0]
            if top == FIRST_PARTY:
                parts = dotted.split(".")
                for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
                    target = module_file(".".join(parts[:i]))
                    if target is not None:
                        queue.append(target)
            elif top in sys.stdlib_module_names:
                found.stdlib.add(top)
            else:
                found.third_party.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def build(out: Path) -> list[str]:
    """Write the zip of the closure's modules; returns the archive names."""
    found = closure()
    bad = {k: v for k, v in found.third_party.items() if k not in ALLOWED_THIRD_PARTY}
    if bad:
        raise SystemExit(f"the EMR jobs import packages EMR does not have: {bad}")
    names = sorted(str(p.relative_to(SRC)) for p in found.modules)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (SRC / name).read_bytes())
    return names


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist" / "lakehouse_emr.zip"
    for entry in build(target):
        print(entry)
    print(f"-> {target}")
