"""S3 → SQS → ingest function: the event source mapping (the queue itself is in ``storage``).

``ReportBatchItemFailures`` lets the handler's Powertools batch processor return only the
failed records, so one bad PDF never makes its batch retry; ``MaximumConcurrency`` caps the
ingest workers per tier (database connections, not Lambda, are the scarce resource).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from querio.tiers import Tier
from stacks.compute import QuerioFunction


class IngestEvents(Construct):
    def __init__(self, scope: Construct, id: str, *, tier: Tier, function: QuerioFunction, queue: sqs.IQueue
                 ) -> None:
        super().__init__(scope, id)
        q = tier.queue
        window = Duration.seconds(q.max_batching_window_s) if q.max_batching_window_s else None
        self.source = sources.SqsEventSource(queue, batch_size=q.batch_size, max_batching_window=window,
                                             report_batch_item_failures=True, max_concurrency=q.max_concurrency)
        function.function.add_event_source(self.source)
