"""CommitWithLambda: DuckDB + delta-rs commit of a small file, exactly once."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lakehouse.observability import track_errors
from lakehouse.stages.ingest import commit_object
from lakehouse.stages.runtime import get_runtime

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@track_errors
@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = commit_object(get_runtime(), event)
    metrics.add_dimension(name="dataset", value=str(event.get("dataset", "unknown")))
    metrics.add_metric(name="RowsWritten", unit=MetricUnit.Count, value=result.get("rows_written", 0))
    metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=result.get("rows_rejected", 0))
    return result
