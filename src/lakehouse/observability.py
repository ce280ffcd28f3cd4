"""Error metrics of the Lambda handlers, per function version: what the canary alarms watch.

`track_errors` wraps a handler. When it raises, it emits (CloudWatch embedded metric format, namespace
`POWERTOOLS_METRICS_NAMESPACE`) `HandledError` = 1 and, for an exception that is not one of
`lakehouse.errors.EXPECTED_ERRORS`, `UnexpectedError` = 1, with the dimensions `function_name`,
`function_version` and `service`. A successful invocation emits `HandledError` = 0. Each data point is
stamped with the invocation's start, as Lambda stamps its own `Errors`, so the alarm expression
`unexpected + max(0, Errors - handled)` (template.yaml) lines them up: expected errors (a held lease, a
bad file) never roll a deployment back, while an exception of a new kind, a timeout, a crash or an
init failure of that version (Lambda errors the handler never saw) do.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from lakehouse.errors import EXPECTED_ERRORS

HANDLED = "HandledError"
UNEXPECTED = "UnexpectedError"

F = TypeVar("F", bound=Callable[..., Any])


def is_expected(exc: BaseException) -> bool:
    return isinstance(exc, EXPECTED_ERRORS)


def _disabled() -> bool:
    # Powertools' single_metric ignores POWERTOOLS_METRICS_DISABLED (the local runtime sets it).
    return os.environ.get("POWERTOOLS_METRICS_DISABLED", "false").strip().lower() in ("1", "true")


def _emit(name: str, value: float, context: Any, started_ms: int) -> None:
    """Best effort: a metric that cannot be written (no namespace set, say) must not fail the handler."""
    if _disabled():
        return
    try:
        _write(name, value, context, started_ms)
    except Exception:
        logging.getLogger(__name__).warning("could not emit the %s metric", name, exc_info=True)


def _write(name: str, value: float, context: Any, started_ms: int) -> None:
    dimensions = {
        "function_name": str(
            getattr(context, "function_name", "") or os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
        ),
        "function_version": str(
            getattr(context, "function_version", "")
            or os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        ),
    }
    with single_metric(
        name=name, unit=MetricUnit.Count, value=value, default_dimensions=dimensions
    ) as metric:
        metric.set_timestamp(started_ms)


def track_errors(handler: F) -> F:
    """Count the handler's errors by kind for its function version (see the module docstring)."""

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        started_ms = int(time.time() * 1000)
        try:
            result = handler(event, context, *args, **kwargs)
        except BaseException as exc:
            _emit(HANDLED, 1, context, started_ms)
            if not is_expected(exc):
                _emit(UNEXPECTED, 1, context, started_ms)
            raise
        _emit(HANDLED, 0, context, started_ms)
        return result

    return wrapper  # type: ignore[return-value]
