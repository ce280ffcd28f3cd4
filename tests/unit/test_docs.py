"""The project's docs stand alone: no file cites a design document outside this repository, and every
citation of a docs/ARCHITECTURE.md section names a section that exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Spelled in pieces so this file does not match itself.
OUTSIDE = ("DESIGN" + ".md", "DESIGN" + " §", "../" + "shared")
CITATION = re.compile(r"docs/ARCHITECTURE\.md,\s+\"([^\"]+)\"")


def _tracked_text_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("git (to list the tracked files) is not available")
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    files = []
    for name in filter(None, out.split("\0")):
        path = ROOT / name
        if path.is_file() and b"\0" not in path.read_bytes()[:8192]:
            files.append(path)
    return files


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def test_no_file_cites_a_document_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _tracked_text_files()
        for number, line in enumerate(_text(path).splitlines(), 1)
        if any(marker in line for marker in OUTSIDE)
    ]
    assert not offenders, "cite the project's own docs (docs/*.md) instead:\n" + "\n".join(offenders)


def test_every_cited_architecture_section_exists() -> None:
    headings = {
        line.lstrip("#").strip()
        for line in _text(ROOT / "docs" / "ARCHITECTURE.md").splitlines()
        if line.startswith("#")
    }
    missing = [
        f"{path.relative_to(ROOT)}: {title!r}"
        for path in _tracked_text_files()
        for title in CITATION.findall(_text(path))
        if " ".join(title.split()) not in headings
    ]
    assert not missing, f"no such heading in docs/ARCHITECTURE.md: {missing}"
