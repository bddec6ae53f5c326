"""The deploy-time schema job (``functions/migrate``) against real PostgreSQL, with the database
credentials read from a Secrets Manager secret (moto) exactly as in Lambda."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from querio.adapters.postgres.migrate import available_migrations
from querio.migrations_job import PHYSICAL_ID, apply_schema
from querio.wiring import dsn_from_secret
from tests.fixtures.aws_events import aws, lambda_context  # noqa: F401
from tests.fixtures.service import make_settings

pytestmark = pytest.mark.integration


def cfn_event(request_type: str, physical_id: str | None = None) -> dict[str, Any]:
    event = {"RequestType": request_type, "ResourceType": "Custom::QuerioSchema", "LogicalResourceId": "Schema",
             "ResourceProperties": {"MigrationsHash": "abc"}}
    if physical_id:
        event["PhysicalResourceId"] = physical_id
    return event


def test_create_applies_every_migration_then_update_is_a_no_op(tmp_path: Path, pg_dsn: str) -> None:
    settings = make_settings(tmp_path, pg_dsn)
    first = apply_schema(cfn_event("Create"), settings)
    assert first["PhysicalResourceId"] == PHYSICAL_ID
    assert first["Data"]["Applied"].split(",") == [m.name for m in available_migrations()]
    again = apply_schema(cfn_event("Update", PHYSICAL_ID), settings)
    assert again == {"PhysicalResourceId": PHYSICAL_ID, "Data": {"Applied": ""}}


def test_delete_never_touches_the_database(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "postgresql://nobody@127.0.0.1:1/none")  # unreachable on purpose
    assert apply_schema(cfn_event("Delete", PHYSICAL_ID), settings) == {"PhysicalResourceId": PHYSICAL_ID}


def test_unknown_request_type_fails_the_deploy(tmp_path: Path, pg_dsn: str) -> None:
    with pytest.raises(ValueError, match="RequestType"):
        apply_schema(cfn_event("Replace"), make_settings(tmp_path, pg_dsn))


def test_migrate_handler_reads_rds_credentials_from_secrets_manager(aws: Any, tmp_path: Path,  # noqa: F811
                                                                    pg_dsn: str, monkeypatch) -> None:
    from querio.adapters import aws_clients

    parts = conninfo_to_dict(pg_dsn)
    secret = {"host": parts.get("host", "127.0.0.1"), "port": int(parts.get("port", 5432)),
              "username": parts.get("user", "postgres"), "password": parts.get("password", ""),
              "dbname": parts["dbname"]}
    arn = aws_clients.secretsmanager().create_secret(Name="querio-db", SecretString=json.dumps(secret))["ARN"]
    dsn_from_secret.cache_clear()
    settings = make_settings(tmp_path, None, database_secret_arn=arn)  # type: ignore[arg-type]
    # the embedded test server speaks no TLS; RDS always does (sslmode=require in the real DSN)
    monkeypatch.setattr("querio.wiring.dsn_from_secret", lambda a: dsn_from_secret(a).replace(
        "sslmode=require", "sslmode=disable"))
    result = apply_schema(cfn_event("Create"), settings)
    assert result["Data"]["Applied"]
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM documents").fetchone() == (0,)
    dsn_from_secret.cache_clear()
