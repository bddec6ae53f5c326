"""Ingest Lambda: SQS messages carrying S3 notifications → documents.

Thin by design: Powertools (Logger with the SQS message id as correlation id, Tracer,
Metrics in namespace ``Querio``) and batch processing around one domain call,
:func:`querio.ingest.s3_events.handle_body`. Partial batch responses: a record that raises
is listed in ``batchItemFailures`` and only it is redelivered (the event source mapping
must enable ``ReportBatchItemFailures``); after ``maxReceiveCount`` it goes to the DLQ.

Settings are validated at import (cold start); the service (database pool, S3 client,
embedding model) is built lazily on the first record by the cached factory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from querio.adapters import aws_clients
from querio.adapters.sqs_queue import SqsWorkQueue
from querio.config import get_settings
from querio.errors import QuerioError
from querio.ingest.s3_events import RecordResult, handle_body
from querio.observability import NAMESPACE, SERVICE, logger, metrics, tracer
from querio.service import QuerioService
from querio.wiring import get_service

settings = get_settings()  # cold start: a missing or invalid setting fails here, by name
# every failed record is reported, even when all fail (same effect as raising, cleaner logs)
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

_service_factory: Callable[[], QuerioService] = get_service
#: where page-range parts of large PDFs go (the same queue); unset = no splitting
_queue = SqsWorkQueue(settings.ingest_queue_url, aws_clients.sqs) if settings.ingest_queue_url else None


def set_service_factory(factory: Callable[[], QuerioService] | None, *, queue_url: str | None = None) -> None:
    """Tests plug in a service built on their own settings (and the queue for parts);
    ``None`` restores the defaults."""
    global _service_factory, _queue
    _service_factory = factory or get_service
    url = queue_url if factory is not None else settings.ingest_queue_url
    _queue = SqsWorkQueue(url, aws_clients.sqs) if url else None


def _failure_metric(reason: str) -> None:
    # Two metrics: CloudWatch identifies a metric by its full dimension set, so the alarm watches
    # IngestFailures{service} and the dashboard breaks it down with IngestFailuresByReason{service, reason}.
    metrics.add_metric(name="IngestFailures", unit=MetricUnit.Count, value=1)
    with single_metric(name="IngestFailuresByReason", unit=MetricUnit.Count, value=1, namespace=NAMESPACE,
                       default_dimensions={"service": SERVICE}) as metric:
        metric.add_dimension(name="reason", value=reason[:64])


def _emit(result: RecordResult) -> None:
    if result.status == "ingested":
        metrics.add_metric(name="DocumentsIngested", unit=MetricUnit.Count, value=1)
    if result.status == "ingested" or (result.kind == "part" and result.status == "in_progress"):
        # a large PDF's pages and chunks are counted part by part
        metrics.add_metric(name="PagesIngested", unit=MetricUnit.Count, value=result.pages)
        metrics.add_metric(name="ChunksIngested", unit=MetricUnit.Count, value=result.chunks)
    elif result.status == "failed":
        _failure_metric(result.reason or "unknown")
    elif result.status == "skipped":  # stale events, known bytes, objects gone: nothing pages
        metrics.add_metric(name="IngestSkipped", unit=MetricUnit.Count, value=1)


@tracer.capture_method
def record_handler(record: SQSRecord) -> list[RecordResult]:
    logger.set_correlation_id(record.message_id)
    logger.append_keys(receive_count=record.attributes.approximate_receive_count)
    try:
        results = handle_body(_service_factory(), record.body, _queue.send if _queue else None)
    except Exception as exc:
        # a dependency outage or a malformed body (the domain acknowledges everything else):
        # retried by SQS; after maxReceiveCount the message sits in the DLQ with this reason logged
        reason = exc.code if isinstance(exc, QuerioError) else type(exc).__name__
        logger.warning("ingest record failed; it will be retried", extra={"reason": reason, "error": str(exc)[:500]})
        _failure_metric(reason)
        raise
    for result in results:
        _emit(result)
        logger.info("ingest record done", extra={"status": result.status, "key": result.key,
                                                 "tenant_id": result.tenant_id, "document_id": result.document_id,
                                                 "reason": result.reason, "detail": result.message})
    return results


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
