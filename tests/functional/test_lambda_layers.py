"""Every handler imports, and runs on its sample event, with only what its layers ship.

Functions without the engine layer must not import deltalake or duckdb (not even indirectly), and no
function may need the laptop-only packages (pyarrow, pyspark, the CLI's). Each handler runs in a fresh
interpreter where importing those modules fails, on the local backend, with its sample events; it may
fail for data reasons (a missing object), never with an ImportError.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LOCAL_ONLY = ["pyarrow", "pyspark", "delta", "typer", "rich", "watchdog", "moto", "faker"]
ENGINE = ["deltalake", "duckdb", "arro3"]


class _CfnLoader(yaml.SafeLoader):
    pass


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


SCRIPT = textwrap.dedent(
    """
    import importlib.abc, importlib.util, json, os, sys
    blocked = json.loads(sys.argv[1])

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ImportError(f"{name} is not in this function's layers")
            return None

    sys.meta_path.insert(0, Block())
    os.environ.update({
        "LAKEHOUSE_BACKEND": "local", "LAKEHOUSE_HOME": sys.argv[3], "DATASETS_DIR": sys.argv[4],
        "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "test",
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:000000000000:stateMachine:ingest",
    })
    spec = importlib.util.spec_from_file_location("app", sys.argv[2])
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)

    class Context:
        function_name = "fn"; memory_limit_in_mb = 128; invoked_function_arn = "arn:aws:lambda:::fn"
        aws_request_id = "req"; function_version = "$LATEST"
        def get_remaining_time_in_millis(self): return 60000

    outcomes = []
    for path in sys.argv[5:]:
        try:
            app.handler(json.load(open(path)), Context())
            outcomes.append("ok")
        except ImportError:
            raise
        except Exception as exc:  # data-dependent failures are fine here
            outcomes.append(type(exc).__name__)
    print(json.dumps(outcomes))
    """
)


def _engine_functions() -> set[str]:
    raw = (ROOT / "template.yaml").read_text()
    template = yaml.load(raw, Loader=_CfnLoader)
    names = set()
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            start = raw.index(f"\n  {name}:\n")
            end = raw.find("\n  ", start + len(name) + 4)
            while end != -1 and raw[end + 3] == " ":  # skip deeper-indented lines
                end = raw.find("\n  ", end + 1)
            if "!Ref EngineLayer" in raw[start:end]:
                names.add(name)
    return names


def _cases() -> list[tuple[str, str, bool]]:
    raw = (ROOT / "template.yaml").read_text()
    template = yaml.load(raw, Loader=_CfnLoader)
    engine = _engine_functions()
    return [
        (name, resource["Properties"]["CodeUri"].rstrip("/").split("/")[-1], name in engine)
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    ]


def test_the_engine_layer_goes_where_deltalake_is_used() -> None:
    engine = _engine_functions()
    assert "CommitObjectFunction" in engine
    assert "InspectObjectFunction" in engine
    assert "OnObjectCreatedFunction" not in engine


@pytest.mark.parametrize(("function", "directory", "has_engine"), _cases())
def test_handler_runs_with_only_its_layers(
    function: str, directory: str, has_engine: bool, tmp_path: Path
) -> None:
    blocked = LOCAL_ONLY + ([] if has_engine else ENGINE)
    events = sorted(str(p) for p in (ROOT / "events").glob(f"{directory}*.json"))
    assert events, f"no sample event for {function} in events/"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(blocked), str(ROOT / "functions" / directory / "app.py"),
         str(tmp_path / "home"), str(ROOT / "datasets"), *events],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, f"{function} (blocked {blocked}):\n{proc.stderr[-3000:]}"
    outcomes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(outcomes) == len(events)
