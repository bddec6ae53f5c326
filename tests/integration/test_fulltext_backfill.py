"""``querio fulltext backfill`` against real PostgreSQL and the OpenSearch request recorder
(tests/fixtures/opensearch_recorder.py): what reaches ``_bulk`` and when the checkpoint moves.
The recorder does not index, so search agreement is the conformance suite's business; here the
point is that a killed or failed run resumes after the last accepted batch, never repeating or
skipping a chunk, and that only live chunks are sent."""

from __future__ import annotations

import pytest

from querio.adapters.opensearch import OpenSearchFullText, opensearch_client, routing_key
from querio.adapters.postgres.fulltext import PostgresChunkSource
from querio.adapters.postgres.store import PostgresDocumentStore
from querio.errors import TransientError, ValidationFailed
from querio.fulltext.ops import backfill, backfill_name
from tests.fixtures.opensearch_recorder import Recorder
from tests.fixtures.postgres import ingest

pytestmark = pytest.mark.integration


def sent_ids(rec: Recorder) -> list[str]:
    """Chunk ids of every ``index`` action sent so far, in order."""
    return [line["index"]["_id"] for r in rec.of("POST", "/_bulk") for line in r.ndjson() if "index" in line]


def live_ids(store: PostgresDocumentStore) -> list[str]:
    with store.connection() as conn:
        rows = conn.execute("SELECT c.id::text FROM document_chunks c JOIN documents d ON d.id = c.document_id"
                            " WHERE d.deleted_at IS NULL AND d.processing_status = 'completed' ORDER BY c.id")
        return [r[0] for r in rows]


@pytest.fixture
def parts(pg_store: PostgresDocumentStore, opensearch_recorder: Recorder) -> tuple[PostgresChunkSource,
                                                                                   OpenSearchFullText]:
    ingest(pg_store, "acme", [f"acme chunk {i}" for i in range(7)])
    ingest(pg_store, "beta", [f"beta chunk {i}" for i in range(4)])
    gone = ingest(pg_store, "acme", ["deleted text", "more deleted text"], filename="gone.pdf")
    pg_store.soft_delete("acme", gone.id)
    index = OpenSearchFullText(lambda: opensearch_client(opensearch_recorder.url), index_prefix="bf")
    return PostgresChunkSource(pg_store), index


def test_dry_run_counts_and_sends_nothing(parts: tuple[PostgresChunkSource, OpenSearchFullText],
                                          opensearch_recorder: Recorder) -> None:
    source, index = parts
    report = backfill(source, index, batch_size=4, dry_run=True)
    assert (report.total_live, report.remaining_at_start, report.batches) == (11, 11, 3)
    assert report.planned_per_tenant == {"acme": 7, "beta": 4}
    assert opensearch_recorder.requests == []
    assert source.checkpoint(backfill_name(index)) is None


def test_stopped_run_resumes_after_last_batch_without_repeats(
        parts: tuple[PostgresChunkSource, OpenSearchFullText], opensearch_recorder: Recorder,
        pg_store: PostgresDocumentStore) -> None:
    source, index = parts
    first = backfill(source, index, batch_size=4, stop_after=2)
    assert first.stopped_early and not first.completed and (first.copied, first.batches) == (8, 2)
    assert opensearch_recorder.of("PUT", "/bf-v1"), "the index is created before the first write"
    checkpoint = source.checkpoint(backfill_name(index))
    assert checkpoint is not None and checkpoint["status"] == "running" and checkpoint["copied"] == 8
    assert str(checkpoint["last_chunk_id"]) == sent_ids(opensearch_recorder)[-1]

    second = backfill(source, index, batch_size=4)
    assert second.resumed and second.completed and (second.copied, second.copied_total) == (3, 11)
    assert sent_ids(opensearch_recorder) == live_ids(pg_store)  # each live chunk once, in id order
    done = source.checkpoint(backfill_name(index))
    assert done is not None and done["status"] == "completed" and done["runs"] == 2
    assert opensearch_recorder.of("POST", "/bf-v1/_refresh")
    routings = {line["index"]["routing"] for r in opensearch_recorder.of("POST", "/_bulk")
                for line in r.ndjson() if "index" in line}
    assert routings == {routing_key("acme"), routing_key("beta")}

    again = backfill(source, index, batch_size=4)  # a completed pass run again: a new pass
    assert not again.resumed and again.copied == 11


def test_failed_batch_keeps_cursor_and_next_run_resends_it(
        parts: tuple[PostgresChunkSource, OpenSearchFullText], opensearch_recorder: Recorder,
        pg_store: PostgresDocumentStore) -> None:
    source, index = parts
    backfill(source, index, batch_size=5, stop_after=1)
    opensearch_recorder.item_error = True  # OpenSearch rejects an item of the next bulk (429)
    with pytest.raises(TransientError, match="429"):
        backfill(source, index, batch_size=5)
    checkpoint = source.checkpoint(backfill_name(index))
    assert checkpoint is not None and checkpoint["copied"] == 5 and checkpoint["status"] == "running"
    report = backfill(source, index, batch_size=5)
    assert report.resumed and report.copied == 6 and report.completed
    sent = sent_ids(opensearch_recorder)
    assert sent[5:10] == sent[10:15]  # the rejected batch, sent again whole (idempotent by _id)
    assert sorted(set(sent)) == live_ids(pg_store)


def test_arguments_are_checked(parts: tuple[PostgresChunkSource, OpenSearchFullText]) -> None:
    source, index = parts
    for kwargs in ({"batch_size": 0}, {"batch_size": 5001}, {"stop_after": 0}):
        with pytest.raises(ValidationFailed):
            backfill(source, index, **kwargs)  # type: ignore[arg-type]
