"""The PDF bucket (with its access-log bucket) and the ingest queue with its DLQ, wired by
S3 notifications: ``tenants/`` ObjectCreated and ObjectRemoved → SQS → the ingest function.

The queue lives with the bucket (not with the function) because the bucket's notification
configuration references it: keeping both in the stateful stack avoids a cycle, and a
redeploy of the compute stack never drops messages in flight.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from querio.tiers import Tier
from stacks.nag import acknowledge

#: The key scheme (runtime: querio.ingest.s3_events): tenants/{tenant}/uploads/{id or name}.pdf
TENANT_PREFIX = "tenants/"


def bucket_name(stage: str) -> str:
    """The PDF bucket's name, unique per account, region and stage.

    Deterministic so the compute stack can scope its IAM statements to the bucket without a
    cross-stack import (each stack resolves the pseudo-parameters itself). The bucket is
    retained on tear-down: delete it before re-creating the same stage in the same region.
    """
    return f"querio{'-' + stage.lower() if stage else ''}-pdfs-{Aws.ACCOUNT_ID}-{Aws.REGION}"


def bucket_name_as_nag_prints_it(stage: str) -> str:
    """:func:`bucket_name` as cdk-nag flattens it in finding ids (pseudo-parameters in angle brackets)."""
    return f"querio{'-' + stage.lower() if stage else ''}-pdfs-<AWS::AccountId>-<AWS::Region>"


class DocumentBucket(Construct):
    """``bucket``: SSE-S3, versioned, Block Public Access, TLS only, access-logged, the seed's lifecycle."""

    def __init__(self, scope: Construct, id: str, *, tier: Tier, cors_origins: list[str], stage: str = "") -> None:
        super().__init__(scope, id)
        st = tier.storage
        self.access_logs = s3.Bucket(
            self, "AccessLogs", encryption=s3.BucketEncryption.S3_MANAGED,  # log delivery needs SSE-S3
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED, removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(id="ExpireAccessLogs",
                                              expiration=Duration.days(st.access_logs_expire_days))],
        )
        self.bucket = s3.Bucket(
            self, "Pdfs", bucket_name=bucket_name(stage), encryption=s3.BucketEncryption.S3_MANAGED,
            bucket_key_enabled=True, versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs, server_access_logs_prefix="pdfs/",
            removal_policy=RemovalPolicy.RETAIN,
            cors=[s3.CorsRule(allowed_methods=[s3.HttpMethods.PUT, s3.HttpMethods.GET],
                              allowed_origins=cors_origins, allowed_headers=["*"], exposed_headers=["ETag"],
                              max_age=3000)],
            lifecycle_rules=[
                # seed > Raw PDF Storage > S3 Lifecycle Configuration
                s3.LifecycleRule(id="ArchiveOldDocuments", prefix=TENANT_PREFIX, transitions=[
                    s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                                  transition_after=Duration.days(st.infrequent_access_after_days)),
                    s3.Transition(storage_class=s3.StorageClass.GLACIER,
                                  transition_after=Duration.days(st.glacier_after_days)),
                ]),
                s3.LifecycleRule(id="ExpireNoncurrentVersions",
                                 noncurrent_version_expiration=Duration.days(st.noncurrent_versions_expire_days),
                                 expired_object_delete_marker=True,
                                 abort_incomplete_multipart_upload_after=Duration.days(7)),
            ],
        )


class IngestQueue(Construct):
    """``queue`` and ``dlq``: SQS-managed encryption, TLS only, redrive after ``max_receive_count``."""

    def __init__(self, scope: Construct, id: str, *, tier: Tier) -> None:
        super().__init__(scope, id)
        q = tier.queue
        self.dlq = sqs.Queue(self, "Dlq", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
                             retention_period=Duration.days(q.dlq_retention_days))
        self.queue = sqs.Queue(
            self, "Queue", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            visibility_timeout=Duration.seconds(tier.queue_visibility_timeout_s),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=q.max_receive_count),
        )


def notify_ingest(bucket: s3.Bucket, queue: sqs.Queue) -> None:
    """ObjectCreated and ObjectRemoved under ``tenants/`` go to the ingest queue."""
    key_filter = s3.NotificationKeyFilter(prefix=TENANT_PREFIX)
    for event in (s3.EventType.OBJECT_CREATED, s3.EventType.OBJECT_REMOVED):
        bucket.add_event_notification(event, s3n.SqsDestination(queue), key_filter)
    # aws-cdk-lib applies notifications through its own singleton handler function.
    stack = Stack.of(bucket)
    handler = next(c for c in stack.node.children if c.node.id.startswith("BucketNotificationsHandler"))
    acknowledge(handler.node.find_child("Role"),
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "aws-cdk-lib's bucket-notification handler only writes its own logs with this AWS policy.")
