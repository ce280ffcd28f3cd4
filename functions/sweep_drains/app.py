"""SweepDrains (scheduled): settle drains whose end went unsettled, and drain objects no drain will take.

The scheduled EventBridge event carries nothing we need; `{"datasets": [...]}` (e.g. `lakehouse invoke`)
limits the sweep to those datasets.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lakehouse.observability import track_errors
from lakehouse.stages.runtime import get_runtime
from lakehouse.stages.sweep import sweep_drains, sweep_request

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@track_errors
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    swept = sweep_drains(get_runtime(), sweep_request(event))
    metrics.add_metric(name="DrainsSwept", unit=MetricUnit.Count, value=len(swept))
    return {"swept": swept}
