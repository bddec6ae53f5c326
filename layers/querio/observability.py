"""Powertools Logger, Tracer and Metrics: the process-wide singletons, in one place.

Handlers decorate themselves with these objects; the domain and the adapters call
:func:`emit` (never ``metrics.add_metric`` directly) and log through the standard
``logging`` module under the ``querio.*`` names.

Inside Lambda (``AWS_LAMBDA_FUNCTION_NAME`` is set) the Powertools ``logger`` owns the
``querio`` logger, so every ``querio.*`` record comes out as structured JSON with the
correlation id; :func:`emit` adds CloudWatch EMF metrics, flushed by ``@metrics.log_metrics``
at the end of each invocation.

Outside Lambda (the CLI, ``querio serve``, tests) nothing here prints: the Powertools logger
gets a ``NullHandler`` and hands records on to the application's own logging setup, and
:func:`emit` only counts in :data:`counters` (Powertools would print EMF JSON on stdout once a
metric collects 100 values, and keep every value in memory until then).

Names: service from ``POWERTOOLS_SERVICE_NAME`` (default ``querio``), metric namespace from
``POWERTOOLS_METRICS_NAMESPACE`` (default ``Querio``).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections import defaultdict

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

__all__ = ["SERVICE", "MetricUnit", "counters", "emit", "in_lambda", "logger", "metrics", "tracer"]

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "querio"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Querio"


def in_lambda() -> bool:
    """True inside a Lambda runtime (read on every call, so tests can set the variable)."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


if in_lambda():
    logger = Logger(service=SERVICE)
else:
    # No output of its own, no filters on the root handlers, no level forced on ``querio.*``:
    # the CLI's and the test runner's logging configuration stay in charge.
    os.environ.setdefault("POWERTOOLS_LOG_DEDUPLICATION_DISABLED", "true")
    logger = Logger(service=SERVICE, logger_handler=logging.NullHandler())
    logging.getLogger(SERVICE).setLevel(logging.NOTSET)

tracer = Tracer(service=SERVICE)
# A request that emits nothing (a listing, a 401) is normal, not worth a warning per invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

#: Every metric emitted by this process, summed by name (cheap; read by tests and health).
counters: defaultdict[str, float] = defaultdict(float)
_lock = threading.Lock()


def emit(name: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    """Record a metric. Never raises: observability must not fail a request."""
    with _lock:
        counters[name] += value
    if not in_lambda():
        return
    try:
        metrics.add_metric(name=name, unit=unit, value=value)
    except Exception:  # a bad name or value is our bug, not the caller's problem
        logging.getLogger(__name__).warning("could not record metric %s", name, exc_info=True)
