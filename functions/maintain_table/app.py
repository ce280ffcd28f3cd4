"""MaintainWithLambda: compact, checkpoint and vacuum one table; PlanTableChecks / EvaluateTableChecks:
its table-scoped checks (`action`)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from lakehouse.observability import track_errors
from lakehouse.stages.maintenance import maintenance_task
from lakehouse.stages.runtime import get_runtime

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@track_errors
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return maintenance_task(get_runtime(), event)
