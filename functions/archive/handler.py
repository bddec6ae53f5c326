"""Archive Lambda, run daily by an EventBridge schedule: one call to
:func:`querio.archive.run_archive`, bounded by the invocation's remaining time.

A run cut short (``complete: false``) is finished by the next one; every step is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from querio.archive import run_archive
from querio.config import get_settings
from querio.observability import logger, metrics, tracer
from querio.service import QuerioService
from querio.wiring import get_service

settings = get_settings()  # cold start: a missing or invalid setting fails here, by name

_service_factory: Callable[[], QuerioService] = get_service


def set_service_factory(factory: Callable[[], QuerioService] | None) -> None:
    global _service_factory
    _service_factory = factory or get_service


@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = run_archive(_service_factory(), time_left_ms=context.get_remaining_time_in_millis)
    metrics.add_metric(name="DocumentsArchived", unit=MetricUnit.Count, value=report.archived)
    metrics.add_metric(name="DocumentsPurged", unit=MetricUnit.Count, value=report.purged)
    metrics.add_metric(name="ArchiveErrors", unit=MetricUnit.Count, value=len(report.errors))
    logger.info("archive run finished", extra=report.as_dict())
    return report.as_dict()
