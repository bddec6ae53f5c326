"""The background analytics writer against a real PostgreSQL: batches land, a dead database
costs the caller nothing (records are dropped and counted, never raised)."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from querio.adapters.postgres.store import PostgresDocumentStore
from querio.analytics import AnalyticsWriter
from querio.ports import QueryRecord
from tests.fixtures.postgres import ingest

pytestmark = pytest.mark.integration


def _record(tenant: str, query: str) -> QueryRecord:
    return QueryRecord(tenant_id=tenant, user_id="alice", query=query, response_time_ms=3, chunks_retrieved=2,
                       success=True, created_at=dt.datetime.now(dt.UTC))


def test_records_and_access_times_are_written_in_batches(pg_store: PostgresDocumentStore, pg_dsn: str) -> None:
    doc = ingest(pg_store, "t-a", ["walrus facts"])
    other = ingest(pg_store, "t-b", ["other tenant"])
    writer = AnalyticsWriter(pg_store)
    for i in range(5):
        writer.submit(_record("t-a", f"q{i}\x00"), [doc.id, other.id])  # another tenant's id: ignored
    assert writer.flush()
    writer.close()
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT tenant_id, query FROM query_analytics ORDER BY query").fetchall()
    assert rows == [("t-a", f"q{i} ") for i in range(5)]  # NUL cannot be stored: replaced
    assert pg_store.get_document("t-a", doc.id).accessed_at is not None
    assert pg_store.get_document("t-b", other.id).accessed_at is None  # never across tenants
    assert (writer.written, writer.dropped, writer.errors) == (5, 0, 0)


def test_a_dead_database_never_reaches_the_caller() -> None:
    dead = PostgresDocumentStore("postgresql://nobody@127.0.0.1:1/none", connect_timeout_s=1.0)
    writer = AnalyticsWriter(dead, max_queue=2)
    for i in range(20):
        writer.submit(_record("t-a", f"q{i}"))  # never raises
    assert writer.dropped > 0  # the bounded queue overflowed while the first write was failing
    writer.close(timeout_s=30)
    assert writer.errors > 0 and writer.written == 0
    dead.close()
