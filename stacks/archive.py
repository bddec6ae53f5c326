"""The daily archive run: an EventBridge schedule → the archive function.

Failed asynchronous invocations (after EventBridge's retries) land in a DLQ; the run is
idempotent and resumable, so the next day's run also finishes whatever a failed one left.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from querio.tiers import Tier
from stacks.compute import QuerioFunction
from stacks.nag import acknowledge


class ArchiveSchedule(Construct):
    def __init__(self, scope: Construct, id: str, *, tier: Tier, function: QuerioFunction) -> None:
        super().__init__(scope, id)
        self.dlq = sqs.Queue(self, "Dlq", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
                             retention_period=Duration.days(14))
        acknowledge(self.dlq, "AwsSolutions-SQS3",
                    "This queue is the dead-letter queue of the schedule's Lambda target (EventBridge "
                    "DeadLetterConfig), which cdk-nag does not recognise as a redrive source.")
        self.rule = events.Rule(
            self, "Daily", description="Querio: archive cold documents, purge soft-deleted ones",
            schedule=events.Schedule.expression(tier.archive.schedule_expression),
            targets=[targets.LambdaFunction(function.function, retry_attempts=2,
                                            max_event_age=Duration.hours(6), dead_letter_queue=self.dlq)],
        )
