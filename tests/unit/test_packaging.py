"""The Lambda layers ship exactly the runtime dependencies pyproject.toml pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;]+)")


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = PIN.match(line.strip())
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def _layer_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for path in sorted((ROOT / "layers").glob("*/requirements*.txt")):
        pins.update(_pins(path.read_text().splitlines()))
    return pins


def test_every_runtime_dependency_is_in_a_layer_at_the_pinned_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _pins(project["dependencies"])
    layers = _layer_pins()
    provided_by_lambda = {"boto3"}  # the python3.13 runtime ships boto3 (see layers/shared/requirements.txt)
    missing = sorted(set(runtime) - set(layers) - provided_by_lambda)
    assert not missing, f"runtime dependencies missing from every layer: {missing}"
    drift = {
        name: (version, layers[name])
        for name, version in runtime.items()
        if name in layers and layers[name] != version
    }
    assert not drift, f"layer pins differ from pyproject.toml (pyproject, layer): {drift}"


def test_every_dependency_is_pinned_exactly() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        deps.extend(extra)
    unpinned = [d for d in deps if "==" not in d]
    assert not unpinned, f"unpinned dependencies: {unpinned}"
