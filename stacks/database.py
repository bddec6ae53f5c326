"""RDS PostgreSQL 16 with pgvector: metadata, chunks, BM25 postings and (small tier) vectors.

Encrypted, in the isolated data subnets, TLS forced (``rds.force_ssl``), credentials in
Secrets Manager rotated every 30 days, backups and Multi-AZ/deletion protection per tier.
The schema is applied at deploy time by ``stacks.migrations`` with the runtime's own
``querio.adapters.postgres.migrate`` (the same code the local stack runs).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from constructs import Construct

from querio.tiers import Tier
from stacks.nag import acknowledge
from stacks.network import Network

#: Not 5432: a non-default port takes the database out of default-port scans (cdk-nag RDS11).
PORT = 5433
ENGINE = rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_16_9)


class Database(Construct):
    """``instance`` and ``secret`` (JSON: host, port, username, password, dbname)."""

    def __init__(self, scope: Construct, id: str, *, tier: Tier, network: Network) -> None:
        super().__init__(scope, id)
        db = tier.database
        self.security_group = ec2.SecurityGroup(self, "Sg", vpc=network.vpc, allow_all_outbound=False,
                                                description="Querio PostgreSQL: functions only")
        self.security_group.add_ingress_rule(network.functions_sg, ec2.Port.tcp(PORT), "functions to PostgreSQL")
        params = rds.ParameterGroup(self, "Params", engine=ENGINE, parameters={
            "rds.force_ssl": "1",
            "log_min_duration_statement": "1000",  # slow queries (ms) into the exported log
        })
        self.instance = rds.DatabaseInstance(
            self, "Postgres", engine=ENGINE, port=PORT, parameter_group=params,
            instance_type=ec2.InstanceType(db.instance_class.removeprefix("db.")),
            vpc=network.vpc, vpc_subnets=network.data_subnets, security_groups=[self.security_group],
            credentials=rds.Credentials.from_generated_secret("querio"), database_name="querio",
            allocated_storage=db.allocated_storage_gib, max_allocated_storage=db.max_allocated_storage_gib,
            storage_type=rds.StorageType.GP3, storage_encrypted=True, multi_az=db.multi_az,
            backup_retention=Duration.days(db.backup_retention_days), deletion_protection=db.deletion_protection,
            removal_policy=RemovalPolicy.SNAPSHOT, publicly_accessible=False, auto_minor_version_upgrade=True,
            cloudwatch_logs_exports=["postgresql", "upgrade"], copy_tags_to_snapshot=True,
        )
        assert self.instance.secret is not None
        self.secret = self.instance.secret
        self.rotation = self.instance.add_rotation_single_user(
            automatically_after=Duration.days(30), vpc_subnets=network.app_subnets,
            security_group=network.functions_sg,
        )
        self.port = PORT
        if not db.multi_az:
            acknowledge(self.instance, "AwsSolutions-RDS3",
                        f"The {tier.name} tier is single-AZ by the seed's advice (Multi-AZ is the Enterprise "
                        "tier's); automated backups and snapshots cover recovery.")
        if not db.deletion_protection:
            acknowledge(self.instance, "AwsSolutions-RDS10",
                        f"The {tier.name} tier is meant to be torn down freely; removal takes a final snapshot.")
