"""Cached boto3 client factories: one client per service per process (Lambda container).

Clients are built on first call, never at import time, so importing a handler costs no
network and no credentials lookup, and tests running under moto's ``mock_aws`` get clients
created inside the mock. :func:`reset_clients` drops the cache (tests; after a region change).

Every client shares one botocore ``Config``:

* ``connect_timeout`` 3 s / ``read_timeout`` 10 s (S3 and Secrets Manager answer in
  milliseconds; a stuck connection must fail well inside the Lambda timeout so SQS retries);
  Bedrock gets a longer read timeout (generation streams for tens of seconds);
* ``retries={"mode": "standard", "max_attempts": 3}``: exponential backoff with jitter on
  throttling and 5xx, the AWS SDKs' common retry policy;
* region from ``AWS_REGION`` (set by Lambda), else ``AWS_DEFAULT_REGION``, else us-east-1.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 10
# API Gateway HTTP APIs end an integration after 30 s: one 20 s Bedrock attempt leaves room for
# retrieval and the extractive fallback.
BEDROCK_READ_TIMEOUT_S = 20
MAX_ATTEMPTS = 3


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def client_config(*, read_timeout: int = READ_TIMEOUT_S, max_attempts: int = MAX_ATTEMPTS, **extra: Any) -> Any:
    from botocore.config import Config

    return Config(
        region_name=region(),
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=read_timeout,
        retries={"mode": "standard", "max_attempts": max_attempts},
        **extra,
    )


def _client(service: str, *, read_timeout: int = READ_TIMEOUT_S, **extra: Any) -> Any:
    import boto3

    return boto3.session.Session().client(service, region_name=region(),
                                          config=client_config(read_timeout=read_timeout, **extra))


@lru_cache(maxsize=1)
def s3() -> Any:
    # SigV4 and virtual-hosted addressing: presigned URLs name the regional endpoint
    return _client("s3", signature_version="s3v4", s3={"addressing_style": "virtual"})


@lru_cache(maxsize=1)
def sqs() -> Any:
    return _client("sqs")


@lru_cache(maxsize=1)
def secretsmanager() -> Any:
    return _client("secretsmanager")


@lru_cache(maxsize=1)
def bedrock_runtime() -> Any:
    return _client("bedrock-runtime", read_timeout=BEDROCK_READ_TIMEOUT_S, max_attempts=1)


def reset_clients() -> None:
    """Forget every cached client (tests entering a new ``mock_aws``; a changed region)."""
    for factory in (s3, sqs, secretsmanager, bedrock_runtime):
        factory.cache_clear()
