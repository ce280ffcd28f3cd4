"""lakehouse.local.moto_patches: every private moto internal the local runtime relies on, checked.

One contract test per entry: after a moto upgrade, the test named after the patch fails and its message
names the internal that changed (see docs/ARCHITECTURE.md, "The local runtime").
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from lakehouse.local import moto_patches, sfn
from lakehouse.local.moto_patches import (
    ALL,
    PATCHES,
    MotoContractError,
    MotoPatch,
    UnsupportedMotoVersionError,
    resolve,
)
from lakehouse.local.sfn import LocalStateMachine

PASS = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})


@pytest.fixture(autouse=True)
def _fresh_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test checks the contracts itself (no result cached by an earlier LocalStateMachine)."""
    monkeypatch.setattr(moto_patches, "_VERIFIED", set())


@pytest.mark.parametrize("entry", ALL, ids=[entry.name for entry in ALL])
def test_contract_holds_on_the_installed_moto(entry: moto_patches.MotoContract) -> None:
    assert entry.requires, f"{entry.name} states nothing it relies on"
    assert entry.problems() == [], f"moto patch {entry.name!r} ({entry.target}): review it"
    entry.verify()


@pytest.mark.parametrize("version", ["5.2.4", "5.3.0", "6.0.0", "5.2.5.dev3", "5.2.5rc1"])
def test_version_gate_refuses_an_unchecked_moto(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    monkeypatch.setattr(moto_patches, "moto_version", lambda: version)
    with pytest.raises(UnsupportedMotoVersionError) as raised:
        moto_patches.LAMBDA_INVOKE.verify()
    message = str(raised.value)
    assert "'lambda-invoke'" in message
    assert f"found moto {version}" in message
    assert "checked against moto 5.2.5" in message
    assert "tests/unit/test_moto_patches.py" in message


def test_version_range_bounds() -> None:
    wide = moto_patches.VersionRange("5.2.5", "5.4.0")
    assert [v in wide for v in ("5.2.4", "5.2.5", "5.3.9", "5.4.0", "5.4.1", "5.3")] == [
        False,
        True,
        True,
        True,
        False,
        False,
    ]
    assert str(wide) == "5.2.5 to 5.4.0"
    assert str(moto_patches.SUPPORTED) == "5.2.5"


def _patched_names() -> dict[str, Any]:
    return {p.name: (dict(v) if isinstance(v := resolve(p.target), dict) else v) for p in PATCHES}


def test_unsupported_moto_stops_the_state_machine_before_any_patch(monkeypatch: pytest.MonkeyPatch) -> None:
    before = _patched_names()
    with monkeypatch.context() as m:
        m.setattr(moto_patches, "moto_version", lambda: "5.3.0")
        with pytest.raises(UnsupportedMotoVersionError, match=r"found moto 5\.3\.0"):
            LocalStateMachine(PASS).__enter__()
    assert _patched_names() == before
    with LocalStateMachine(PASS) as machine:  # nothing left half-installed, the lock is free
        assert machine.run({"x": 1}).output == {"x": 1}


def test_a_changed_internal_fails_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.awslambda_simple.models import LambdaSimpleBackend

    def invoke(
        self: Any, function_name: str, qualifier: Any, body: Any, headers: Any, client_context: Any
    ) -> Any:
        raise AssertionError("not called")

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
    with pytest.raises(MotoContractError) as raised:
        LocalStateMachine(PASS).__enter__()
    message = str(raised.value)
    assert "moto patch 'lambda-invoke'" in message
    assert (
        "LambdaSimpleBackend.invoke takes (self, function_name, qualifier, body, headers, response_headers)"
        in (message)
    )
    assert LambdaSimpleBackend.invoke is invoke  # nothing was installed
    assert not isinstance(raised.value, UnsupportedMotoVersionError)


def test_a_removed_internal_fails_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec import execute_state

    monkeypatch.delattr(execute_state, "Thread")
    problems = moto_patches.STATE_THREAD.problems()
    assert problems[0].startswith(f"{moto_patches.STATE_THREAD.target} exists (AttributeError")


def _fixed_upstream(tmp_path: Path) -> Any:
    """moto's `_eval_integration_pattern` as it would read once moto ships LocalStack PR 13706."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback,
    )

    method = state_task_service_callback.StateTaskServiceCallback._eval_integration_pattern
    source = textwrap.dedent(inspect.getsource(method))
    buggy = "        callback_endpoint.interrupt_all()\n"
    assert source.count(buggy) == 1
    fixed = source.replace(
        buggy, "        if callback_endpoint is not None:\n            callback_endpoint.interrupt_all()\n"
    )
    module_file = tmp_path / "fixed_callback.py"
    module_file.write_text("from __future__ import annotations\n\n" + fixed)
    spec = importlib.util.spec_from_file_location("fixed_callback", module_file)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._eval_integration_pattern


def test_the_sync_fix_says_when_moto_fixed_it_upstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback,
    )

    fixed = _fixed_upstream(tmp_path)
    monkeypatch.setattr(
        state_task_service_callback.StateTaskServiceCallback, "_eval_integration_pattern", fixed
    )
    problems = moto_patches.SYNC_WITHOUT_CALLBACK.problems()
    assert len(problems) == 1
    assert "unguarded" in problems[0]
    assert "drop this patch" in problems[0]


def _glue_sync() -> str:
    return json.dumps(
        {
            "StartAt": "Transform",
            "States": {
                "Transform": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::glue:startJobRun.sync",
                    "Parameters": {"JobName": "job"},
                    "ResultSelector": {"JobRunState.$": "$.JobRunState"},
                    "End": True,
                }
            },
        }
    )


@pytest.mark.parametrize("fixed", [True, False], ids=["with-the-patch", "moto-as-shipped"])
def test_the_sync_fix_is_still_needed(monkeypatch: pytest.MonkeyPatch, fixed: bool) -> None:
    """moto 5.2.5 as shipped loses a glue .sync outcome; the wrapper keeps it."""
    import boto3

    if not fixed:
        monkeypatch.setattr(sfn, "_sync_without_callback", lambda original: original)
    with LocalStateMachine(_glue_sync(), moto_services={"glue"}, time_scale=0.0) as machine:
        glue = boto3.client("glue", region_name="us-east-1")
        glue.create_job(Name="job", Role="role", Command={"Name": "glueetl", "ScriptLocation": "s3://a/b.py"})
        result = machine.run({}, timeout=30)
    if fixed:
        assert result.status == "SUCCEEDED", result
        assert result.output == {"JobRunState": "SUCCEEDED"}
    else:
        assert result.status == "FAILED"
        assert "interrupt_all" in str(result.cause)


def test_the_state_machine_installs_every_patch_through_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    source = inspect.getsource(sfn)
    assert "mock.patch" not in source
    assert "exec(" not in source
    applied: list[str] = []
    original_apply = MotoPatch.apply

    def apply(patch: MotoPatch, stack: Any, build: Any) -> None:
        applied.append(patch.name)
        original_apply(patch, stack, build)

    monkeypatch.setattr(MotoPatch, "apply", apply)
    before = _patched_names()
    with LocalStateMachine(PASS, time_scale=0.5) as machine:
        assert machine.run({"x": 1}).output == {"x": 1}
        during = _patched_names()
    assert sorted(applied) == sorted(p.name for p in PATCHES)
    assert [name for name in before if before[name] != during[name]] == [p.name for p in PATCHES]
    assert _patched_names() == before  # every patch is undone on exit
