"""Enterprise: the PDF bucket replicates to a second region (the seed's "Multi-region S3").

The replica bucket lives in ``replica_region`` while the stack lives in the primary region, and
one top-level stack cannot hold resources of two regions; so a custom resource
(``stacks/handlers/regional.py``, ``Custom::QuerioReplicaBucket``) creates it there: versioned,
SSE-S3 (bucket key), Block Public Access, bucket owner enforced, TLS-only. The primary bucket's
replication rule (``tenants/``, delete markers too) then points at it, with a role S3 assumes.

``replica_region`` comes from the ``replica_region`` context, else from :data:`REPLICA_REGIONS`
(a CloudFormation mapping keyed on the deploy region, so an environment-agnostic stack still gets
its default). The replica is retained on tear-down, like the primary bucket.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnMapping, CustomResource
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.custom_resources import provider, regional_function
from stacks.nag import acknowledge
from stacks.storage import TENANT_PREFIX, DocumentBucket, bucket_name, bucket_name_as_nag_prints_it

#: The default replica region for each primary region: the nearest region of the same jurisdiction.
REPLICA_REGIONS = {
    "us-east-1": "us-west-2", "us-east-2": "us-west-2", "us-west-1": "us-east-1", "us-west-2": "us-east-1",
    "ca-central-1": "us-east-1",
    "eu-west-1": "eu-central-1", "eu-west-2": "eu-west-1", "eu-west-3": "eu-central-1",
    "eu-central-1": "eu-west-1", "eu-north-1": "eu-central-1", "eu-south-1": "eu-central-1",
    "ap-northeast-1": "ap-northeast-3", "ap-northeast-3": "ap-northeast-1", "ap-northeast-2": "ap-northeast-1",
    "ap-southeast-1": "ap-southeast-2", "ap-southeast-2": "ap-southeast-1", "ap-south-1": "ap-southeast-1",
    "sa-east-1": "us-east-1",
}


def replica_bucket_name(stage: str) -> str:
    """Named after the *primary* region, so the name never depends on the replica's (a mapping token)."""
    return bucket_name(stage).replace("-pdfs-", "-pdfs-replica-")


class PdfReplication(Construct):
    """``replica_bucket_name``, ``replica_region``, ``role`` and the ``replica`` custom resource."""

    def __init__(self, scope: Construct, id: str, *, documents: DocumentBucket, stage: str,
                 replica_region: str | None) -> None:
        super().__init__(scope, id)
        if replica_region:
            self.replica_region = replica_region
        else:
            mapping = CfnMapping(self, "ReplicaRegions",
                                 mapping={primary: {"replica": r} for primary, r in REPLICA_REGIONS.items()})
            self.replica_region = mapping.find_in_map(Aws.REGION, "replica")
        self.replica_bucket_name = replica_bucket_name(stage)
        replica_arn = f"arn:{Aws.PARTITION}:s3:::{self.replica_bucket_name}"

        fn = regional_function(self, "CreateReplica", description="Deploy time: the PDF replica bucket in the "
                               "replica region")
        fn.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:CreateBucket", "s3:PutBucketPublicAccessBlock", "s3:PutBucketVersioning",
                     "s3:PutEncryptionConfiguration", "s3:PutBucketPolicy", "s3:PutBucketOwnershipControls"],
            resources=[replica_arn]))
        self.replica = CustomResource(
            self, "Replica", resource_type="Custom::QuerioReplicaBucket",
            service_token=provider(self, "Provider", on_event=fn).service_token,
            properties={"BucketName": self.replica_bucket_name, "Region": self.replica_region,
                        "Partition": Aws.PARTITION})

        source = documents.bucket
        source_arn = f"arn:{Aws.PARTITION}:s3:::{bucket_name(stage)}"  # as compute names it (nag ids match)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("s3.amazonaws.com"),
                             description="S3 replication of the Querio PDF bucket to its replica region")
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetReplicationConfiguration", "s3:ListBucket"], resources=[source_arn]))
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"],
            resources=[f"{source_arn}/{TENANT_PREFIX}*"]))
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
            resources=[f"{replica_arn}/{TENANT_PREFIX}*"]))
        policy = self.role.node.find_child("DefaultPolicy")
        nag_name = bucket_name_as_nag_prints_it(stage)
        acknowledge(policy, f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{nag_name}/{TENANT_PREFIX}*]",
                    "S3 replication reads every object version under tenants/ (created at run time); the key "
                    "prefix is the narrowest static scope.")
        acknowledge(policy, "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::"
                    f"{nag_name.replace('-pdfs-', '-pdfs-replica-')}/{TENANT_PREFIX}*]",
                    "S3 replication writes every replicated object version under tenants/ of the replica; the key "
                    "prefix is the narrowest static scope.")

        cfn = source.node.default_child
        assert isinstance(cfn, s3.CfnBucket)
        cfn.replication_configuration = s3.CfnBucket.ReplicationConfigurationProperty(
            role=self.role.role_arn,
            rules=[s3.CfnBucket.ReplicationRuleProperty(
                id="ToReplicaRegion", status="Enabled", priority=1,
                filter=s3.CfnBucket.ReplicationRuleFilterProperty(prefix=TENANT_PREFIX),
                delete_marker_replication=s3.CfnBucket.DeleteMarkerReplicationProperty(status="Enabled"),
                destination=s3.CfnBucket.ReplicationDestinationProperty(
                    # an attribute of the custom resource: S3 checks at PutBucketReplication that the
                    # destination exists and is versioned, so the bucket must wait for it
                    bucket=self.replica.get_att_string("Arn")))])

