"""Versioned migrations against a real PostgreSQL: idempotent, serialised, tamper-evident."""

from __future__ import annotations

import dataclasses
import threading

import psycopg
import pytest

from querio.adapters.postgres.migrate import Migration, available_migrations, migrate
from querio.errors import ConfigurationError, TransientError

pytestmark = pytest.mark.integration

TABLES = {"users", "documents", "document_chunks", "chat_sessions", "chat_messages", "query_analytics",
          "tenant_usage", "schema_migrations"}


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def _recorded(dsn: str) -> list[tuple[int, str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT version, name, checksum FROM schema_migrations ORDER BY version"
                            ).fetchall()
    return [(int(v), str(n), str(c)) for v, n, c in rows]


def test_packaged_migrations_are_ordered_and_named() -> None:
    found = available_migrations()
    assert [m.version for m in found] == sorted({m.version for m in found})
    assert found[0].name == "0001_initial"
    assert "CREATE TABLE documents" in found[0].sql


def test_migrate_applies_everything_once(pg_dsn: str) -> None:
    first = migrate(pg_dsn)
    assert first == [m.name for m in available_migrations()]
    assert _tables(pg_dsn) >= TABLES
    assert migrate(pg_dsn) == []  # idempotent
    assert [(v, n, c) for v, n, c in _recorded(pg_dsn)] == [
        (m.version, m.name, m.checksum) for m in available_migrations()]


def test_schema_has_the_indexes_the_store_relies_on(pg_dsn: str) -> None:
    migrate(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
                            ).fetchall()
        indexes: dict[str, str] = {str(n): str(d) for n, d in rows}
        generated = conn.execute(
            "SELECT attgenerated FROM pg_attribute WHERE attrelid = 'document_chunks'::regclass"
            " AND attname = 'content_tsv'").fetchone()
    dedupe = indexes["uq_documents_tenant_sha256_live"]
    assert "UNIQUE" in dedupe and "(tenant_id, content_sha256)" in dedupe and "deleted_at IS NULL" in dedupe
    assert "gin (content_tsv)" in indexes["idx_chunks_content_tsv"]
    assert "(tenant_id, document_id)" in indexes["idx_chunks_tenant_document"]
    assert generated == ("s",)  # stored generated column


def test_concurrent_runners_apply_once(pg_dsn: str) -> None:
    barrier = threading.Barrier(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(migrate(pg_dsn))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert sorted(results, key=len) == [[], [m.name for m in available_migrations()]]
    assert len(_recorded(pg_dsn)) == len(available_migrations())


def test_changed_migration_is_detected(pg_dsn: str) -> None:
    migrate(pg_dsn)
    tampered = [dataclasses.replace(m, sql=m.sql + "\n-- edited", checksum="0" * 64)
                if m.version == 1 else m for m in available_migrations()]
    with pytest.raises(ConfigurationError, match="changed after it was applied"):
        migrate(pg_dsn, tampered)


def test_failing_migration_leaves_no_trace_and_later_ones_wait(pg_dsn: str) -> None:
    migrate(pg_dsn)
    broken = Migration(9001, "9001_broken", "CREATE TABLE half_done (x int); SELECT no_such_column;",
                       "f" * 64)
    with pytest.raises(ConfigurationError, match="9001_broken"):
        migrate(pg_dsn, [*available_migrations(), broken])
    assert "half_done" not in _tables(pg_dsn)
    assert [r[0] for r in _recorded(pg_dsn)] == [m.version for m in available_migrations()]
    fixed = Migration(9001, "9001_broken", "CREATE TABLE half_done (x int);", "e" * 64)
    assert migrate(pg_dsn, [*available_migrations(), fixed]) == ["9001_broken"]
    assert "half_done" in _tables(pg_dsn)


def test_unreachable_database_is_transient(tmp_path) -> None:
    with pytest.raises(TransientError):
        migrate(f"host={tmp_path} dbname=nothing connect_timeout=1")
