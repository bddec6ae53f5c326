"""Query Lambda: API Gateway HTTP API (payload v2) events → the one router.

Identity comes from the JWT authorizer's claims (``querio.api.identity``); routing, rate
limits, validation and the error shape live in ``querio.api.router``. This module only adds
Powertools: structured logs with the request's correlation id, an X-Ray subsegment per
invocation, and CloudWatch EMF metrics (``QueryLatency`` in ms for search/query/chat,
``CacheHits``/``CacheMisses``/``CacheErrors``, ``ColdStart``) flushed when it returns.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from querio.api.router import app
from querio.config import get_settings
from querio.observability import logger, metrics, tracer

# Cold start: a missing or invalid setting fails here, with the variable's name, before any
# request is accepted. (Clients are still built lazily, on first use.)
get_settings()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
