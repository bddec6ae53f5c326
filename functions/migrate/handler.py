"""Migrate Lambda: the deploy-time custom resource (``stacks/migrations.py``) that applies the
schema with :func:`querio.adapters.postgres.migrate.migrate`, the code the local stack runs.

Create and Update apply pending migrations (idempotent); Delete does nothing: tearing the
compute stack down must never touch data.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from querio.config import get_settings
from querio.migrations_job import apply_schema
from querio.observability import logger, tracer

settings = get_settings()  # cold start: a missing or invalid setting fails here, by name


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def on_event(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return apply_schema(event, settings)
