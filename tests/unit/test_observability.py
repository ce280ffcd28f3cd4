"""lakehouse.observability.track_errors: what the canary alarms count (issue 11, #5)."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import pytest

from lakehouse import errors
from lakehouse.observability import track_errors

CONTEXT = SimpleNamespace(function_name="lakehouse-dev-CommitObject", function_version="12")


@pytest.fixture(autouse=True)
def _metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Lakehouse")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "lakehouse")


def _raising(exc: BaseException) -> Any:
    @track_errors
    def handler(event: Any, context: Any) -> Any:
        time.sleep(0.02)
        raise exc

    return handler


def emitted(capsys: pytest.CaptureFixture[str]) -> dict[str, tuple[float, dict[str, str], int]]:
    """metric name -> (value, dimensions, timestamp) of every EMF line printed."""
    out: dict[str, tuple[float, dict[str, str], int]] = {}
    for line in capsys.readouterr().out.splitlines():
        blob = json.loads(line)
        meta = blob["_aws"]
        [directive] = meta["CloudWatchMetrics"]
        assert directive["Namespace"] == "Lakehouse"
        [metric] = directive["Metrics"]
        dims = {d: blob[d] for d in directive["Dimensions"][0]}
        out[metric["Name"]] = (blob[metric["Name"]][0], dims, meta["Timestamp"])
    return out


@pytest.mark.parametrize(
    "exc",
    [
        errors.LeaseHeldError("held"),
        errors.CommitConflictError("raced"),
        errors.TransientError("throttled"),
        errors.InvalidInputError("bad file"),
        errors.SchemaMismatchError("bad columns"),
        errors.RowRuleViolationError("bad row"),
        errors.UnsupportedFormatError("not csv"),
        errors.ContractError("bad contract"),
        errors.ChecksFailedError("checks"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_expected_errors_are_handled_but_not_unexpected(
    exc: Exception, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(type(exc)):
        _raising(exc)({}, CONTEXT)
    metrics = emitted(capsys)
    assert set(metrics) == {"HandledError"}
    value, dims, _ = metrics["HandledError"]
    assert value == 1
    assert dims == {"function_name": CONTEXT.function_name, "function_version": "12", "service": "lakehouse"}


@pytest.mark.parametrize(
    "exc",
    [KeyError("x"), RuntimeError("bug"), errors.LakehouseError("unclassified"), MemoryError()],
    ids=repr,
)
def test_other_errors_are_unexpected(exc: BaseException, capsys: pytest.CaptureFixture[str]) -> None:
    started = int(time.time() * 1000)
    with pytest.raises(type(exc)):
        _raising(exc)({}, CONTEXT)
    metrics = emitted(capsys)
    assert {k: v[0] for k, v in metrics.items()} == {"HandledError": 1, "UnexpectedError": 1}
    # Stamped with the invocation's start (as Lambda stamps Errors), not the end 20 ms later.
    assert all(started <= ts < started + 15 for _, _, ts in metrics.values())


def test_success_reports_zero_handled_errors(capsys: pytest.CaptureFixture[str]) -> None:
    @track_errors
    def handler(event: Any, context: Any) -> dict[str, int]:
        return {"ok": 1}

    assert handler({}, CONTEXT) == {"ok": 1}
    assert {k: v[0] for k, v in emitted(capsys).items()} == {"HandledError": 0}


def test_local_runtime_prints_no_metrics(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")  # what lakehouse.local sets
    with pytest.raises(KeyError):
        _raising(KeyError("x"))({}, CONTEXT)
    assert capsys.readouterr().out == ""


def test_a_metric_that_cannot_be_written_does_not_fail_the_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    from lakehouse.observability import track_errors

    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)

    @track_errors
    def handler(event: dict[str, int], context: object) -> int:
        return event["n"] + 1

    assert handler({"n": 1}, None) == 2
