"""The ingest work queue on SQS: re-enqueues page-range parts of large PDFs."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from querio.adapters.s3_blobs import classify_error
from querio.errors import ConfigurationError, TransientError

SQS_BATCH = 10  # SendMessageBatch's limit


class SqsWorkQueue:
    """``send(items)``: one JSON message per item, in batches of 10; any refusal raises
    ``TransientError`` (the caller's message is then retried)."""

    def __init__(self, queue_url: str | None, client_factory: Callable[[], Any]) -> None:
        self.queue_url = queue_url
        self._client = client_factory

    def send(self, items: Sequence[dict[str, Any]]) -> None:
        if not self.queue_url:
            raise ConfigurationError("QUERIO_INGEST_QUEUE_URL is required to split large PDFs into parts")
        for i in range(0, len(items), SQS_BATCH):
            entries = [{"Id": str(n), "MessageBody": json.dumps(item)} for n, item in enumerate(items[i:i + SQS_BATCH])]
            try:
                resp = self._client().send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as exc:
                mapped = classify_error(exc, "sqs send")
                if mapped is None:
                    raise
                raise mapped from exc
            if resp.get("Failed"):
                raise TransientError(f"SQS refused {len(resp['Failed'])} messages: {resp['Failed'][:2]}")
