"""RecordRunOutcome: an IngestStateMachine execution ended (EventBridge) -> its final status in the ledger."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lakehouse.observability import track_errors
from lakehouse.stages.outcome import end_execution
from lakehouse.stages.runtime import get_runtime

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@track_errors
@logger.inject_lambda_context(correlation_id_path="detail.name")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    record = end_execution(get_runtime(), event)
    metrics.add_metric(name=f"Runs{record['status'].title()}", unit=MetricUnit.Count, value=1)
    return record
