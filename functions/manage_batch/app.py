"""ClaimBatch / FinishBatch / SplitBatch: a drain's batch from the pending set, and what became of it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from lakehouse.observability import track_errors
from lakehouse.stages.drain import manage_batch
from lakehouse.stages.runtime import get_runtime

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@track_errors
@logger.inject_lambda_context(correlation_id_path="run.run_id || run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return manage_batch(get_runtime(), event)
