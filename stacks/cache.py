"""ElastiCache Redis: TLS in transit (required), AUTH token from Secrets Manager, encryption
at rest, node type, replicas and cluster mode per tier.

Functions get ``REDIS_URL=rediss://host:port/0`` and ``QUERIO_REDIS_AUTH_SECRET_ARN``; the
token is read at cold start, never placed in an environment variable.
"""

from __future__ import annotations

from aws_cdk import SecretValue
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from querio.tiers import Tier
from stacks.nag import acknowledge
from stacks.network import Network

#: Not 6379: out of default-port scans (cdk-nag AEC5).
PORT = 6380


class Cache(Construct):
    """``url`` (rediss://), ``auth_secret``, ``cluster_mode``."""

    def __init__(self, scope: Construct, id: str, *, tier: Tier, network: Network) -> None:
        super().__init__(scope, id)
        c = tier.cache
        self.security_group = ec2.SecurityGroup(self, "Sg", vpc=network.vpc, allow_all_outbound=False,
                                                description="Querio Redis: functions only")
        self.security_group.add_ingress_rule(network.functions_sg, ec2.Port.tcp(PORT), "functions to Redis")
        subnets = elasticache.CfnSubnetGroup(
            self, "Subnets", description="Querio Redis (isolated data subnets)",
            subnet_ids=network.vpc.select_subnets(subnet_group_name="data").subnet_ids)
        # ElastiCache AUTH tokens: 16-128 printable characters, no '@', '"' or '/'.
        self.auth_secret = secretsmanager.Secret(self, "AuthToken", description="Querio Redis AUTH token",
                                                 generate_secret_string=secretsmanager.SecretStringGenerator(
                                                     password_length=64, exclude_punctuation=True))
        acknowledge(self.auth_secret, "AwsSolutions-SMG4",
                    "ElastiCache cannot rotate an AUTH token through Secrets Manager rotation without a custom "
                    "two-step ModifyReplicationGroup flow; the token never leaves the VPC and TLS is required.")
        replicated = c.replicas_per_shard > 0
        props: dict[str, object] = {}
        if c.cluster_mode:
            props.update(num_node_groups=c.shards, replicas_per_node_group=c.replicas_per_shard,
                         cache_parameter_group_name="default.redis7.cluster.on")
        else:
            props.update(num_cache_clusters=1 + c.replicas_per_shard)
        self.group = elasticache.CfnReplicationGroup(
            self, "Redis", replication_group_description=f"Querio cache ({tier.name})", engine="redis",
            engine_version="7.1", cache_node_type=c.node_type, port=PORT,
            cache_subnet_group_name=subnets.ref, security_group_ids=[self.security_group.security_group_id],
            transit_encryption_enabled=True, transit_encryption_mode="required", at_rest_encryption_enabled=True,
            auth_token=SecretValue.secrets_manager(self.auth_secret.secret_arn).unsafe_unwrap(),
            automatic_failover_enabled=replicated or c.cluster_mode, multi_az_enabled=replicated,
            auto_minor_version_upgrade=True, snapshot_retention_limit=1 if replicated else 0,
            **props,  # type: ignore[arg-type]
        )
        host = (self.group.attr_configuration_end_point_address if c.cluster_mode
                else self.group.attr_primary_end_point_address)
        self.url = f"rediss://{host}:{PORT}/0"
        self.cluster_mode = c.cluster_mode
        if not replicated:
            acknowledge(self.group, "AwsSolutions-AEC4",
                        f"The {tier.name} tier runs one cache node by the seed's advice: Redis is an optimisation "
                        "here, and the runtime answers without it when it is down.")
