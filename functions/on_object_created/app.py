"""on_object_created: each landed object becomes one IngestStateMachine run (SQS batch, partial failures)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from lakehouse.events import is_sqs_event, parse_message
from lakehouse.observability import track_errors
from lakehouse.stages.runtime import get_runtime
from lakehouse.stages.start import default_starter, start_run

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


def _start_all(message: dict[str, Any]) -> list[dict[str, Any] | None]:
    runtime = get_runtime()
    runs = [start_run(runtime, obj, default_starter(runtime)) for obj in parse_message(message)]
    metrics.add_metric(
        name="RunsStarted", unit=MetricUnit.Count, value=sum(1 for r in runs if r and r["started"])
    )
    return runs


@tracer.capture_method
def record_handler(record: SQSRecord) -> list[dict[str, Any] | None]:
    return _start_all(record.json_body)


@track_errors
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
    if is_sqs_event(event):
        return process_partial_response(event, record_handler, processor, context)
    # A plain EventBridge event or S3 notification (e.g. `sam local invoke -e events/...`).
    return {"runs": _start_all(event)}
