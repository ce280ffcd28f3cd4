"""Rollback: RESTORE the version the run started from, if this run committed."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lakehouse.observability import track_errors
from lakehouse.stages.ingest import rollback_table
from lakehouse.stages.runtime import get_runtime

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@track_errors
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = rollback_table(get_runtime(), event)
    metrics.add_metric(
        name="TablesRolledBack", unit=MetricUnit.Count, value=int(bool(result.get("restored")))
    )
    return result
