"""``querio fulltext backfill | verify | reconcile`` on real PostgreSQL, OpenSearch being the local
recorder: the backfill is resumable from its checkpoint and idempotent, verify reports counts and
the top-k overlap per question, reconcile indexes what is missing and deletes orphans."""

from __future__ import annotations

import uuid

import pytest

from querio.adapters.opensearch import OpenSearchFullText, opensearch_client
from querio.adapters.postgres.fulltext import PostgresChunkSource, PostgresFullText
from querio.adapters.postgres.store import PostgresDocumentStore
from querio.fulltext.ops import backfill, backfill_name, overlap, reconcile, verify
from querio.models import ChunkRef, SearchFilters
from tests.fixtures.opensearch_recorder import Recorder
from tests.fixtures.postgres import ingest

pytestmark = pytest.mark.integration


def indexed(rec: Recorder) -> list[str]:
    return [line["index"]["_id"] for r in rec.of("POST", "/_bulk") for line in r.ndjson() if "index" in line]


def test_backfill_resumes_after_its_checkpoint(pg_store: PostgresDocumentStore, opensearch_recorder: Recorder) -> None:
    ingest(pg_store, "a", [f"alpha {i}" for i in range(5)])
    ingest(pg_store, "b", [f"beta {i}" for i in range(4)])
    gone = ingest(pg_store, "a", ["deleted text"])
    pg_store.soft_delete("a", gone.id)  # not live: never copied
    source = PostgresChunkSource(pg_store)
    index = OpenSearchFullText(lambda: opensearch_client(opensearch_recorder.url), index_prefix="bf")
    dry = backfill(source, index, batch_size=2, dry_run=True)
    assert (dry.total_live, dry.batches, opensearch_recorder.requests) == (9, 5, [])
    first = backfill(source, index, batch_size=2, stop_after=2)
    assert first.stopped_early and first.copied == 4 and first.index_created
    assert source.checkpoint(backfill_name(index))["copied"] == 4  # type: ignore[index]
    second = backfill(source, index, batch_size=2)
    assert second.resumed and second.copied == 5 and second.completed and second.copied_total == 9
    ids = indexed(opensearch_recorder)
    assert len(ids) == len(set(ids)) == 9 and ids == sorted(ids)  # chunk-id order, each once
    assert opensearch_recorder.of("POST", "/bf-v1/_refresh")
    again = backfill(source, index, batch_size=50)  # a completed pass run again: a new pass
    assert not again.resumed and again.copied == 9


def test_verify_and_reconcile(pg_store: PostgresDocumentStore, opensearch_recorder: Recorder) -> None:
    ingest(pg_store, "a", ["walrus tusks", "walrus ice", "penguin"])
    source = PostgresChunkSource(pg_store)
    index = OpenSearchFullText(lambda: opensearch_client(opensearch_recorder.url), index_prefix="vr")
    live = sorted(source.live_ids("a"))
    orphan = str(uuid.uuid4())
    walrus = [c.chunk_id for c in PostgresFullText(pg_store).search("a", "walrus", 10, SearchFilters())]
    opensearch_recorder.hits = [{"_id": str(walrus[0]), "_score": 1.0, "sort": [str(walrus[0])]},
                                {"_id": orphan, "_score": 0.5, "sort": [orphan]}]
    report = verify(source, PostgresFullText(pg_store), index, questions=["walrus"], k=10)
    assert report.counts == {"a": {"postgres": 3, "opensearch": 0}} and not report.counts_match
    assert report.queries == 1 and report.agreement_at_k == 0.5  # 1 shared of max(2, 2)
    fixed = reconcile(source, index, tenants=["a"])
    assert fixed.tenants["a"].missing == 2 and fixed.tenants["a"].orphans == 1
    assert sorted(indexed(opensearch_recorder)) == sorted(i for i in live if i != str(walrus[0]))
    deletes = [line["delete"]["_id"] for r in opensearch_recorder.of("POST", "/_bulk") for line in r.ndjson()
               if "delete" in line]
    assert deletes == [orphan]


def test_overlap() -> None:
    a, b, c = (ChunkRef(chunk_id=uuid.uuid4(), score=1.0) for _ in range(3))
    assert overlap([], []) == 1.0
    assert overlap([a, b], [b, c]) == 0.5
    assert overlap([a], []) == 0.0
