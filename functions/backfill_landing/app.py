"""BackfillLanding: objects already in the landing bucket -> their datasets' pending sets and drains.

Invoked by an operator (docs/OPERATIONS.md, "Backfill"): `{prefix?, dataset?, continuation_token?,
max_keys?}`. It pages through the listing until its time is nearly up and returns `continuation_token`
(null when done); invoke it again with that token to go on.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lakehouse.observability import track_errors
from lakehouse.stages.backfill import backfill, parse_request
from lakehouse.stages.runtime import get_runtime
from lakehouse.stages.start import default_starter

logger = Logger()
tracer = Tracer()
metrics = Metrics()
WORKERS = 16  # HeadObject + DynamoDB calls per page run in threads (I/O bound)


@track_errors
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_request(event)
    rt = get_runtime()
    result = backfill(
        rt,
        request,
        default_starter(rt),
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        workers=WORKERS,
    )
    metrics.add_metric(name="ObjectsBackfilled", unit=MetricUnit.Count, value=result.queued)
    return result.model_dump(mode="json")
