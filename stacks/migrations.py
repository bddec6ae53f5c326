"""Schema migrations at deploy time: a custom resource runs ``functions/migrate`` (which calls
``querio.adapters.postgres.migrate``, the code the local stack runs) after the database exists
and before the API takes traffic. Its ``MigrationsHash`` property changes whenever a file in
``layers/querio/adapters/postgres/migrations`` does, so CloudFormation re-runs it then, and
only then. Migrations are idempotent (recorded in ``schema_migrations``).
"""

from __future__ import annotations

from aws_cdk import CustomResource
from constructs import Construct

from stacks.bundling import ROOT, hash_files
from stacks.compute import QuerioFunction
from stacks.custom_resources import provider

MIGRATIONS = ROOT / "layers" / "querio" / "adapters" / "postgres" / "migrations"


class SchemaMigrations(Construct):
    def __init__(self, scope: Construct, id: str, *, function: QuerioFunction) -> None:
        super().__init__(scope, id)
        schema = provider(self, "Provider", on_event=function.function)
        self.resource = CustomResource(self, "Schema", service_token=schema.service_token,
                                       resource_type="Custom::QuerioSchema",
                                       properties={"MigrationsHash": hash_files(MIGRATIONS)})
