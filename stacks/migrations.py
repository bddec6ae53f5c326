"""Schema migrations at deploy time: a custom resource runs ``functions/migrate`` (which calls
``querio.adapters.postgres.migrate``, the code the local stack runs) after the database exists
and before the API takes traffic. Its ``MigrationsHash`` property changes whenever a file in
``layers/querio/adapters/postgres/migrations`` does, so CloudFormation re-runs it then, and
only then. Migrations are idempotent (recorded in ``schema_migrations``).
"""

from __future__ import annotations

from aws_cdk import CustomResource, RemovalPolicy, Stack
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.bundling import ROOT, hash_files
from stacks.compute import QuerioFunction
from stacks.nag import acknowledge

MIGRATIONS = ROOT / "layers" / "querio" / "adapters" / "postgres" / "migrations"


class SchemaMigrations(Construct):
    def __init__(self, scope: Construct, id: str, *, function: QuerioFunction) -> None:
        super().__init__(scope, id)
        provider = cr.Provider(self, "Provider", on_event_handler=function.function,
                               log_group=logs.LogGroup(self, "ProviderLogs", retention=logs.RetentionDays.ONE_MONTH,
                                                       removal_policy=RemovalPolicy.DESTROY))
        self.resource = CustomResource(self, "Schema", service_token=provider.service_token,
                                       resource_type="Custom::QuerioSchema",
                                       properties={"MigrationsHash": hash_files(MIGRATIONS)})
        framework = provider.node.find_child("framework-onEvent")
        role = framework.node.find_child("ServiceRole")
        acknowledge(role, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AWSLambdaBasicExecutionRole]",
                    "aws-cdk-lib's custom-resource framework function only writes its own logs.")
        fn_id = Stack.of(function).get_logical_id(function.function.node.default_child)  # type: ignore[arg-type]
        acknowledge(role.node.find_child("DefaultPolicy"), f"AwsSolutions-IAM5[Resource::<{fn_id}.Arn>:*]",
                    "The framework invokes the migrate function's versions/aliases; aws-cdk-lib scopes it so.")
