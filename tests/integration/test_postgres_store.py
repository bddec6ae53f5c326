"""PostgresDocumentStore against a real PostgreSQL: dedupe, tenancy, atomicity, search, chat."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest

from querio.adapters.postgres.store import PostgresDocumentStore
from querio.adapters.postgres.vectors import PgVectorStore
from querio.errors import Conflict, NotFound, TransientError, ValidationFailed
from querio.models import ChatRole, DocumentStatus, S3Binding, SearchFilters
from tests.fixtures.postgres import drafts, ingest, new_document, unit_vectors

pytestmark = pytest.mark.integration

A, B = "tenant-a", "tenant-b"
NOFILTER = SearchFilters()


def _count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


# --- claiming and the status machine --------------------------------------------------------------


def test_claim_dedupes_per_tenant_and_reopens_after_delete(pg_store: PostgresDocumentStore) -> None:
    wanted = new_document(A, b"same bytes", filename="a.pdf")
    first, created = pg_store.claim_document(wanted)
    assert created and first.processing_status is DocumentStatus.PENDING
    assert first.id == wanted.id  # the id chosen by the domain (it is part of the blob key)
    assert (first.storage_path, first.content_sha256, first.file_size) == (
        wanted.storage_path, wanted.content_sha256, wanted.file_size)
    again, created_again = pg_store.claim_document(new_document(A, b"same bytes", filename="renamed.pdf"))
    assert not created_again and again.id == first.id and again.filename == "a.pdf"

    other, created_other = pg_store.claim_document(new_document(B, b"same bytes"))
    assert created_other and other.id != first.id  # dedupe is per tenant

    pg_store.soft_delete(A, first.id)
    fresh, created_fresh = pg_store.claim_document(new_document(A, b"same bytes"))
    assert created_fresh and fresh.id != first.id  # a deleted file may be uploaded again


def test_concurrent_claims_of_the_same_bytes_create_one_document(pg_store: PostgresDocumentStore) -> None:
    barrier = threading.Barrier(8)
    outcomes: list[tuple[uuid.UUID, bool]] = []
    errors: list[BaseException] = []

    def claim() -> None:
        try:
            barrier.wait()
            doc, created = pg_store.claim_document(new_document(A, b"racing upload"))
            outcomes.append((doc.id, created))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(outcomes) == 8
    assert sum(created for _, created in outcomes) == 1
    assert len({doc_id for doc_id, _ in outcomes}) == 1


def test_claim_rejects_malformed_rows(pg_store: PostgresDocumentStore) -> None:
    bad = new_document(A).model_copy(update={"content_sha256": "NOT-HEX"})
    with pytest.raises(ValidationFailed):
        pg_store.claim_document(bad)
    too_long = new_document(A).model_copy(update={"filename": "x" * 300})
    with pytest.raises(ValidationFailed):
        pg_store.claim_document(too_long)


def test_get_list_and_touch(pg_store: PostgresDocumentStore) -> None:
    docs = [pg_store.claim_document(new_document(A, filename=f"{i}.pdf"))[0] for i in range(3)]
    got = pg_store.get_document(A, docs[0].id)
    assert got.id == docs[0].id and got.accessed_at is None
    touched = pg_store.get_document(A, docs[0].id, touch=True)
    assert touched.accessed_at is not None
    assert abs((touched.accessed_at - dt.datetime.now(dt.UTC)).total_seconds()) < 60

    page, total = pg_store.list_documents(A, limit=2)
    assert total == 3 and len(page) == 2
    assert [d.id for d in page] == [docs[2].id, docs[1].id]  # newest first
    rest, _ = pg_store.list_documents(A, limit=2, offset=2)
    assert [d.id for d in rest] == [docs[0].id]

    pg_store.mark_failed(A, docs[1].id, code="corrupt_pdf", message="bad xref")
    failed, n_failed = pg_store.list_documents(A, status=DocumentStatus.FAILED)
    assert n_failed == 1 and failed[0].error_code == "corrupt_pdf" and failed[0].error_message == "bad xref"

    pg_store.soft_delete(A, docs[2].id)
    with pytest.raises(NotFound):
        pg_store.get_document(A, docs[2].id)
    assert pg_store.list_documents(A)[1] == 2


def test_try_start_processing_is_a_compare_and_set(pg_store: PostgresDocumentStore) -> None:
    doc, _ = pg_store.claim_document(new_document(A))
    started = pg_store.try_start_processing(A, doc.id, stale_after_s=600)
    assert started is not None and started.processing_status is DocumentStatus.PROCESSING
    assert started.processing_started_at is not None
    assert pg_store.try_start_processing(A, doc.id, stale_after_s=600) is None  # held by a live worker

    time.sleep(0.05)
    stolen = pg_store.try_start_processing(A, doc.id, stale_after_s=0)  # the holder looks crashed
    assert stolen is not None

    pg_store.mark_failed(A, doc.id, code="x", message="boom")
    retried = pg_store.try_start_processing(A, doc.id, stale_after_s=600)
    assert retried is not None and retried.error_code is None and retried.error_message is None

    pg_store.complete_document(A, doc.id, chunks=drafts(["text"]), embeddings=None, info={})
    assert pg_store.try_start_processing(A, doc.id, stale_after_s=0) is None  # completed stays completed
    with pytest.raises(NotFound):
        pg_store.try_start_processing(B, doc.id, stale_after_s=0)


def test_concurrent_starts_admit_one_worker(pg_store: PostgresDocumentStore) -> None:
    doc, _ = pg_store.claim_document(new_document(A))
    barrier = threading.Barrier(6)
    wins: list[bool] = []

    def start() -> None:
        barrier.wait()
        wins.append(pg_store.try_start_processing(A, doc.id, stale_after_s=600) is not None)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(wins) == [False] * 5 + [True]


def test_reset_for_reprocess(pg_store: PostgresDocumentStore) -> None:
    doc, _ = pg_store.claim_document(new_document(A))
    with pytest.raises(Conflict):
        pg_store.reset_for_reprocess(A, doc.id)  # pending is busy
    pg_store.try_start_processing(A, doc.id, stale_after_s=600)
    with pytest.raises(Conflict):
        pg_store.reset_for_reprocess(A, doc.id)  # processing is busy
    pg_store.complete_document(A, doc.id, chunks=drafts(["x"]), embeddings=None, info={})
    assert pg_store.reset_for_reprocess(A, doc.id).processing_status is DocumentStatus.PENDING
    with pytest.raises(NotFound):
        pg_store.reset_for_reprocess(B, doc.id)


# --- completing, replacing, deleting --------------------------------------------------------------


def test_complete_document_writes_chunks_and_metadata(pg_store: PostgresDocumentStore) -> None:
    texts = ["alpha page one", "beta page two", "gamma page three"]
    doc = ingest(pg_store, A, texts, embeddings=unit_vectors(3))
    assert doc.processing_status is DocumentStatus.COMPLETED and doc.chunk_count == 3
    assert doc.page_count == 3 and doc.title == "doc" and doc.processing_completed_at is not None

    doc2, _ = pg_store.claim_document(new_document(A))
    pg_store.try_start_processing(A, doc2.id, stale_after_s=60)
    info = {"page_count": 9, "word_count": 1234, "empty_page_count": 2, "title": "T" * 900,
            "author": "Ann", "language": "en-US", "created_date": dt.date(2020, 5, 17)}
    done = pg_store.complete_document(A, doc2.id, chunks=drafts(["only"]), embeddings=None, info=info)
    assert (done.page_count, done.word_count, done.empty_page_count) == (9, 1234, 2)
    assert done.title == "T" * 500  # cut to the column width, not an error
    assert (done.author, done.language, done.created_date) == ("Ann", "en-US", dt.date(2020, 5, 17))

    hits = pg_store.fulltext_search(A, "beta", 5, NOFILTER)
    assert len(hits) == 1
    chunk = pg_store.fetch_chunks(A, [hits[0].chunk_id])[hits[0].chunk_id]
    assert (chunk.content, chunk.page_number, chunk.page_end, chunk.chunk_index) == ("beta page two", 2, 2, 1)
    assert (chunk.document_id, chunk.filename, chunk.title) == (doc.id, "doc.pdf", "doc")


def test_complete_document_is_atomic(pg_store: PostgresDocumentStore, pg_dsn: str) -> None:
    doc = ingest(pg_store, A, ["original chunk about zebras"], embeddings=unit_vectors(1))
    pg_store.reset_for_reprocess(A, doc.id)
    pg_store.try_start_processing(A, doc.id, stale_after_s=60)

    # Fails mid-transaction: the old chunks are already deleted and the first new rows copied
    # when PostgreSQL rejects the 3-dimensional vector.
    with pytest.raises(ValidationFailed):
        pg_store.complete_document(A, doc.id, chunks=drafts(["new one", "new two"]),
                                   embeddings=np.ones((2, 3), dtype=np.float32), info={"page_count": 2})
    after = pg_store.get_document(A, doc.id)
    assert after.processing_status is DocumentStatus.PROCESSING and after.chunk_count == 1
    assert _count(pg_dsn, "document_chunks") == 1
    with psycopg.connect(pg_dsn) as conn:
        kept = conn.execute("SELECT content FROM document_chunks").fetchone()
    assert kept == ("original chunk about zebras",)

    with pytest.raises(ValidationFailed):  # row count mismatch is caught before any write
        pg_store.complete_document(A, doc.id, chunks=drafts(["a", "b"]), embeddings=unit_vectors(3), info={})
    with pytest.raises(ValidationFailed):  # duplicate chunk_index
        pg_store.complete_document(A, doc.id, chunks=drafts(["a"]) * 2, embeddings=None, info={})
    assert _count(pg_dsn, "document_chunks") == 1


def test_reprocess_replaces_chunks(pg_store: PostgresDocumentStore, pg_dsn: str) -> None:
    doc = ingest(pg_store, A, ["old text about walruses", "more old text"], embeddings=unit_vectors(2))
    old_ids = [h.chunk_id for h in pg_store.fulltext_search(A, "walruses old", 10, NOFILTER)]
    assert len(old_ids) == 2
    pg_store.reset_for_reprocess(A, doc.id)
    pg_store.try_start_processing(A, doc.id, stale_after_s=60)
    done = pg_store.complete_document(A, doc.id, chunks=drafts(["new text about penguins"]),
                                      embeddings=unit_vectors(1, seed=5), info={})
    assert done.chunk_count == 1
    assert pg_store.fetch_chunks(A, old_ids) == {}
    assert pg_store.fulltext_search(A, "walruses", 10, NOFILTER) == []
    assert len(pg_store.fulltext_search(A, "penguins", 10, NOFILTER)) == 1
    assert _count(pg_dsn, "document_chunks") == 1
    with psycopg.connect(pg_dsn) as conn:
        usage = conn.execute("SELECT chunk_rows FROM tenant_usage WHERE tenant_id = %s", (A,)).fetchone()
    assert usage == (1,)


def test_delete_racing_an_ingest_wins(pg_store: PostgresDocumentStore, pg_dsn: str) -> None:
    doc, _ = pg_store.claim_document(new_document(A))
    pg_store.try_start_processing(A, doc.id, stale_after_s=60)
    pg_store.soft_delete(A, doc.id)
    with pytest.raises(NotFound):
        pg_store.complete_document(A, doc.id, chunks=drafts(["late"]), embeddings=None, info={})
    assert _count(pg_dsn, "document_chunks") == 0


def test_soft_delete_hides_chunks_everywhere_at_once(pg_store: PostgresDocumentStore,
                                                     pg_vectors: PgVectorStore) -> None:
    vecs = unit_vectors(2)
    doc = ingest(pg_store, A, ["armadillo facts", "armadillo habitats"], embeddings=vecs)
    ids = [h.chunk_id for h in pg_store.fulltext_search(A, "armadillo", 10, NOFILTER)]
    assert len(ids) == 2 and len(pg_vectors.query(A, vecs[0], 5, NOFILTER)) == 2

    pg_store.soft_delete(A, doc.id)
    assert pg_store.fulltext_search(A, "armadillo", 10, NOFILTER) == []
    assert pg_vectors.query(A, vecs[0], 5, NOFILTER) == []
    assert pg_store.fetch_chunks(A, ids) == {}
    with pytest.raises(NotFound):
        pg_store.soft_delete(A, doc.id)  # already gone


def test_unfinished_documents_are_not_searchable(pg_store: PostgresDocumentStore,
                                                 pg_vectors: PgVectorStore) -> None:
    vecs = unit_vectors(1)
    doc = ingest(pg_store, A, ["okapi sightings"], embeddings=vecs)
    pg_store.reset_for_reprocess(A, doc.id)  # back to pending: chunks stay but are hidden
    assert pg_store.fulltext_search(A, "okapi", 5, NOFILTER) == []
    assert pg_vectors.query(A, vecs[0], 5, NOFILTER) == []


def test_purge_removes_rows_and_is_idempotent(pg_store: PostgresDocumentStore, pg_dsn: str) -> None:
    live = ingest(pg_store, A, ["one", "two"], embeddings=unit_vectors(2))
    deleted = ingest(pg_store, A, ["three"], embeddings=unit_vectors(1, seed=1))
    pg_store.soft_delete(A, deleted.id)

    pg_store.purge_document(B, live.id)  # another tenant: nothing happens
    assert _count(pg_dsn, "documents") == 2

    pg_store.purge_document(A, deleted.id)  # soft-deleted rows can be purged
    pg_store.purge_document(A, live.id)
    pg_store.purge_document(A, live.id)  # again: no error
    assert _count(pg_dsn, "documents") == 0
    assert _count(pg_dsn, "document_chunks") == 0
    with psycopg.connect(pg_dsn) as conn:
        usage = conn.execute("SELECT chunk_rows FROM tenant_usage WHERE tenant_id = %s", (A,)).fetchone()
    assert usage == (0,)


# --- tenancy --------------------------------------------------------------------------------------


def test_tenant_b_cannot_reach_tenant_a(pg_store: PostgresDocumentStore, pg_vectors: PgVectorStore) -> None:
    vecs = unit_vectors(2)
    doc = ingest(pg_store, A, ["confidential merger plan", "secret budget"], embeddings=vecs)
    chunk_ids = [h.chunk_id for h in pg_store.fulltext_search(A, "merger budget", 10, NOFILTER)]
    session = pg_store.create_chat_session(A, "alice", "private")
    pg_store.add_chat_message(A, session.id, ChatRole.USER, "hello")

    with pytest.raises(NotFound):
        pg_store.get_document(B, doc.id)
    assert pg_store.list_documents(B) == ([], 0)
    assert pg_store.fulltext_search(B, "merger budget", 10, NOFILTER) == []
    assert pg_vectors.query(B, vecs[0], 10, NOFILTER) == []
    assert pg_vectors.query(B, vecs[0], 10, SearchFilters(document_ids=[doc.id])) == []
    assert pg_store.fetch_chunks(B, chunk_ids) == {}
    for call in (lambda: pg_store.soft_delete(B, doc.id),
                 lambda: pg_store.mark_failed(B, doc.id, code="x", message="y"),
                 lambda: pg_store.complete_document(B, doc.id, chunks=drafts(["evil"]), embeddings=None,
                                                    info={}),
                 lambda: pg_store.get_chat_session(B, session.id),
                 lambda: pg_store.add_chat_message(B, session.id, ChatRole.USER, "intrude"),
                 lambda: pg_store.chat_history(B, session.id),
                 lambda: pg_store.delete_chat_session(B, session.id)):
        with pytest.raises(NotFound):
            call()
    assert pg_store.list_chat_sessions(B) == []
    pg_store.touch_documents(B, [doc.id])
    pg_vectors.delete_document(B, doc.id)

    # A's data is intact
    assert pg_store.get_document(A, doc.id).accessed_at is None
    assert len(pg_store.fetch_chunks(A, chunk_ids)) == 2
    assert len(pg_vectors.query(A, vecs[0], 10, NOFILTER)) == 2
    assert pg_store.get_chat_session(A, session.id).message_count == 1
    assert pg_store.stats(B).documents == 0


# --- full-text search -----------------------------------------------------------------------------


def test_fulltext_ranks_by_matching_terms_with_or_semantics(pg_store: PostgresDocumentStore) -> None:
    ingest(pg_store, A, [
        "gnuplot can change the default output terminal with set terminal",
        "the terminal emulator is unrelated software",
        "bananas are yellow",
    ])
    question = "How do I change the default output terminal in gnuplot?"
    hits = pg_store.fulltext_search(A, question, 10, NOFILTER)
    assert len(hits) == 2  # OR semantics: partial matches count, non-matches do not
    contents = pg_store.fetch_chunks(A, [h.chunk_id for h in hits])
    assert contents[hits[0].chunk_id].content.startswith("gnuplot")
    assert hits[0].score > hits[1].score > 0
    assert len(pg_store.fulltext_search(A, "terminal", 1, NOFILTER)) == 1  # k is honoured


@pytest.mark.parametrize("query", [
    "", "   ", "the and of", "?!", "'", "\\", "''''", "a'b\\c", "foo:* & !bar | (baz",
    "'; DROP TABLE documents; --", "\" OR 1=1 --", "x' || pg_sleep(1) || '", "%s %(x)s {}",
    "http://evil.com/a'b\\c", "/usr/lo'cal/b\\in", "ünïcödé café", "nul\x00byte",
    "word " * 400,
])
def test_fulltext_survives_hostile_queries(pg_store: PostgresDocumentStore, pg_dsn: str, query: str) -> None:
    ingest(pg_store, A, ["documents table drop survives", "http://evil.com/a'b\\c path /usr/lo'cal/b\\in"])
    hits = pg_store.fulltext_search(A, query, 5, NOFILTER)
    assert isinstance(hits, list) and len(hits) <= 5
    assert _count(pg_dsn, "documents") == 1


def test_fulltext_matches_lexemes_with_quotes_and_backslashes(pg_store: PostgresDocumentStore) -> None:
    ingest(pg_store, A, ["see http://evil.com/a'b\\c for details"])
    assert len(pg_store.fulltext_search(A, "http://evil.com/a'b\\c", 5, NOFILTER)) == 1
    assert pg_store.fulltext_search(A, "the of and", 5, NOFILTER) == []


# --- filters (shared by both retrievers) ----------------------------------------------------------


@pytest.fixture
def filter_corpus(pg_store: PostgresDocumentStore, pg_dsn: str) -> dict[str, uuid.UUID]:
    """Three documents about llamas: pages 1..3 each, distinct tags and upload times."""
    docs: dict[str, uuid.UUID] = {}
    layout = (("old", ["archive"], 30), ("mid", ["manual", "v2"], 10), ("new", ["manual"], 1))
    for name, tags, days_ago in layout:
        doc = ingest(pg_store, A, [f"llama {name} page {p}" for p in (1, 2, 3)], pages=[1, 2, 3], tags=tags,
                     embeddings=unit_vectors(3, seed=len(docs)), filename=f"{name}.pdf")
        with psycopg.connect(pg_dsn) as conn:
            conn.execute("UPDATE documents SET uploaded_at = now() - make_interval(days => %s) WHERE id = %s",
                         (days_ago, doc.id))
        docs[name] = doc.id
    return docs


def _docs_hit(pg_store: PostgresDocumentStore, refs: list) -> set[uuid.UUID]:
    return {c.document_id for c in pg_store.fetch_chunks(A, [r.chunk_id for r in refs]).values()}


def _pages_hit(pg_store: PostgresDocumentStore, refs: list) -> set[int]:
    return {c.page_number for c in pg_store.fetch_chunks(A, [r.chunk_id for r in refs]).values()}


@pytest.mark.parametrize("retriever", ["fulltext", "vector"])
def test_filters_apply_inside_both_retrievers(pg_store: PostgresDocumentStore, pg_vectors: PgVectorStore,
                                              filter_corpus: dict[str, uuid.UUID], retriever: str) -> None:
    probe = unit_vectors(1, seed=99)[0]

    def search(filters: SearchFilters) -> list:
        if retriever == "fulltext":
            return pg_store.fulltext_search(A, "llama", 50, filters)
        return pg_vectors.query(A, probe, 50, filters)

    docs = filter_corpus
    now = dt.datetime.now(dt.UTC)
    assert len(search(NOFILTER)) == 9
    assert _docs_hit(pg_store, search(SearchFilters(document_ids=[docs["mid"]]))) == {docs["mid"]}
    assert _docs_hit(pg_store, search(SearchFilters(tags=["manual"]))) == {docs["mid"], docs["new"]}
    assert _docs_hit(pg_store, search(SearchFilters(tags=["archive", "v2"]))) == {docs["old"], docs["mid"]}
    assert search(SearchFilters(tags=["nope"])) == []
    assert _pages_hit(pg_store, search(SearchFilters(page_from=2))) == {2, 3}
    assert _pages_hit(pg_store, search(SearchFilters(page_from=2, page_to=2))) == {2}
    assert _pages_hit(pg_store, search(SearchFilters(page_to=1))) == {1}
    recent = dt.timedelta(days=5)
    assert _docs_hit(pg_store, search(SearchFilters(uploaded_after=now - recent))) == {docs["new"]}
    assert _docs_hit(pg_store, search(SearchFilters(uploaded_before=now - recent))) == {
        docs["old"], docs["mid"]}
    naive = (now - dt.timedelta(days=20)).replace(tzinfo=None)  # naive = UTC
    assert _docs_hit(pg_store, search(SearchFilters(uploaded_after=naive, tags=["manual"], page_to=1))) == {
        docs["mid"], docs["new"]}
    assert len(search(SearchFilters(uploaded_after=naive, tags=["manual"], page_to=1))) == 2


# --- chat, analytics, lifecycle -------------------------------------------------------------------


def test_chat_sessions_and_messages(pg_store: PostgresDocumentStore, pg_dsn: str) -> None:
    s1 = pg_store.create_chat_session(A, "alice", "first")
    s2 = pg_store.create_chat_session(A, "bob", None)
    assert s1.message_count == 0 and s2.title is None
    chunk = uuid.uuid4()
    m1 = pg_store.add_chat_message(A, s1.id, ChatRole.USER, "question?")
    m2 = pg_store.add_chat_message(A, s1.id, ChatRole.ASSISTANT, "answer.", source_chunks=[chunk],
                                   metadata={"mode": "extractive"})
    assert m2.source_chunks == [chunk] and m2.metadata == {"mode": "extractive"}
    assert m2.role is ChatRole.ASSISTANT
    session = pg_store.get_chat_session(A, s1.id)
    assert session.message_count == 2 and session.updated_at >= s1.updated_at
    assert [m.id for m in pg_store.chat_history(A, s1.id)] == [m1.id, m2.id]
    assert [m.id for m in pg_store.chat_history(A, s1.id, limit=1)] == [m2.id]  # the latest, oldest first
    assert [s.id for s in pg_store.list_chat_sessions(A)] == [s1.id, s2.id]  # most recently active first
    assert [s.id for s in pg_store.list_chat_sessions(A, limit=1, offset=1)] == [s2.id]

    pg_store.delete_chat_session(A, s1.id)
    with pytest.raises(NotFound):
        pg_store.get_chat_session(A, s1.id)
    with pytest.raises(NotFound):
        pg_store.add_chat_message(A, s1.id, ChatRole.USER, "late")
    assert _count(pg_dsn, "chat_messages") == 0  # cascaded
    assert _count(pg_dsn, "users") == 2  # alice, bob: one row per (tenant, subject)


def test_concurrent_messages_keep_the_count_exact(pg_store: PostgresDocumentStore) -> None:
    session = pg_store.create_chat_session(A, "alice", None)

    def post(i: int) -> None:
        pg_store.add_chat_message(A, session.id, ChatRole.USER, f"m{i}")

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert pg_store.get_chat_session(A, session.id).message_count == 8
    assert len(pg_store.chat_history(A, session.id)) == 8


def test_record_query_and_stats(pg_store: PostgresDocumentStore) -> None:
    ingest(pg_store, A, ["a", "b", "c"])
    pending, _ = pg_store.claim_document(new_document(A, b"12345"))
    gone = ingest(pg_store, A, ["z"])
    pg_store.soft_delete(A, gone.id)
    pg_store.record_query(A, "alice", "what is a?", response_time_ms=12, chunks_retrieved=3, success=True)
    pg_store.record_query(A, "alice", "b?", response_time_ms=7, chunks_retrieved=0, success=False)
    pg_store.record_query(B, "bob", "other tenant", response_time_ms=1, chunks_retrieved=0, success=True)

    stats = pg_store.stats(A)
    assert stats.documents == 2
    assert stats.documents_by_status == {"completed": 1, "pending": 1}
    assert (stats.chunks, stats.pages, stats.queries) == (3, 3, 2)
    assert stats.bytes == 16 + pending.file_size
    assert stats.popular_queries == [] and stats.daily_active_users is None


def test_health_and_unavailable_database(pg_store: PostgresDocumentStore, tmp_path: Path) -> None:
    assert pg_store.healthy()
    pg_store.close()
    pg_store.close()  # idempotent
    assert pg_store.healthy()  # a closed store reopens lazily

    dead = PostgresDocumentStore(f"host={tmp_path} dbname=nothing", connect_timeout_s=0.5)
    try:
        t0 = time.monotonic()
        assert dead.healthy() is False
        with pytest.raises(TransientError):
            dead.get_document(A, uuid.uuid4())
        assert time.monotonic() - t0 < 10
    finally:
        dead.close()


def test_statement_timeout_is_transient(pg_dsn: str, pg_store: PostgresDocumentStore) -> None:
    quick = PostgresDocumentStore(pg_dsn, statement_timeout_ms=50)
    try:
        with pytest.raises(TransientError), quick.connection() as conn:
            conn.execute("SELECT pg_sleep(1)")
        assert quick.healthy()
    finally:
        quick.close()


# --- the embedded server --------------------------------------------------------------------------

_WRITE = """
import sys
from pathlib import Path
from querio.adapters.postgres.embedded import start_embedded
from querio.adapters.postgres.migrate import migrate
from querio.adapters.postgres.store import PostgresDocumentStore
from tests.fixtures.postgres import ingest
dsn = start_embedded(Path(".querio/pg"))
migrate(dsn)
store = PostgresDocumentStore(dsn)
doc = ingest(store, "local", ["persistent aardvark"], filename="kept.pdf")
store.close()
print(doc.id)
"""

_READ = """
import sys, uuid
from pathlib import Path
from querio.adapters.postgres.embedded import start_embedded
from querio.adapters.postgres.migrate import migrate
from querio.adapters.postgres.store import PostgresDocumentStore
from querio.models import SearchFilters
dsn = start_embedded(Path(".querio/pg"))
assert migrate(dsn) == []
store = PostgresDocumentStore(dsn)
doc = store.get_document("local", uuid.UUID(sys.argv[1]))
hits = store.fulltext_search("local", "aardvark", 5, SearchFilters())
store.close()
print(doc.filename, len(hits))
"""


@pytest.mark.slow
def test_embedded_server_keeps_data_across_restarts(tmp_path: Path) -> None:
    """Each process starts the server on a relative, nested data dir; it stops when the
    process exits, and the next one finds the data."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def run(code: str, *args: str) -> str:
        out = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout.strip().splitlines()[-1]

    doc_id = run(_WRITE)
    pg_dir = tmp_path / ".querio" / "pg"
    assert (pg_dir / "PG_VERSION").exists()
    assert not (pg_dir / "postmaster.pid").exists()  # the server stopped with its last user

    # Leftovers of a container restart: a pid file naming a live process that is not
    # PostgreSQL (this test runner), and a dead process in pgserver's handle list.
    (pg_dir / "postmaster.pid").write_text(f"{os.getpid()}\n{pg_dir}\n0\n5432\n{pg_dir}\n\n0 0\nready\n")
    (pg_dir / ".handle_pids.json").write_text("[999999999]")
    assert run(_READ, doc_id) == "kept.pdf 1"
    assert not (pg_dir / "postmaster.pid").exists()  # stopped again: the dead handle was dropped


# --- S3 keys: one live document per key, events ordered by sequencer (issue 11) --------------------


def test_s3_events_are_ordered_by_padded_sequencer(pg_store: PostgresDocumentStore) -> None:
    record = lambda seq: pg_store.record_s3_event("tenant-a", "bkt", "tenants/tenant-a/uploads/k.pdf",  # noqa: E731
                                                  sequencer=seq, event_name="ObjectCreated:Put", etag=None,
                                                  version_id=None)
    assert record("00FF")
    assert not record("F0")  # 00F0 < 00FF once padded, though "F0" > "00FF" as plain text
    assert record("00ff")  # the same event again (a redelivery) is applied again
    assert record("100")
    assert not record("0FF")
    # keys and tenants are separate
    assert pg_store.record_s3_event("tenant-b", "bkt", "tenants/tenant-a/uploads/k.pdf", sequencer="1",
                                    event_name="ObjectRemoved:Delete", etag=None, version_id=None)


def test_an_older_version_finishing_last_retires_itself(pg_store: PostgresDocumentStore) -> None:
    key = "tenants/tenant-a/uploads/k.pdf"

    def claim(seq: str) -> uuid.UUID:
        base = new_document()
        doc, created = pg_store.claim_document(base.model_copy(update={
            "storage_path": key, "s3": S3Binding(bucket="bkt", key=key, sequencer=seq, etag=seq)}))
        assert created and pg_store.try_start_processing("tenant-a", doc.id, stale_after_s=60)
        return doc.id

    older, newer = claim("0A"), claim("B")  # both versions ingested at once
    done = pg_store.complete_document("tenant-a", newer, chunks=drafts(["newer wording"]), embeddings=unit_vectors(1),
                                      info={})
    assert done.deleted_at is None
    late = pg_store.complete_document("tenant-a", older, chunks=drafts(["stale marmalade"]), embeddings=unit_vectors(1),
                                      info={})
    assert late.deleted_at is not None  # the stale version never wins
    assert pg_store.find_by_s3_key("tenant-a", "bkt", key).id == newer  # type: ignore[union-attr]
    assert [d.id for d in pg_store.retired_by_key("tenant-a", "bkt", key)] == [older]
    assert pg_store.fulltext_search("tenant-a", "marmalade", 5, SearchFilters()) == []
    # a third version replaces the current one in the transaction that completes it
    third = claim("0C")
    pg_store.complete_document("tenant-a", third, chunks=drafts(["third text"]), embeddings=unit_vectors(1), info={})
    assert [d.id for d in pg_store.list_documents("tenant-a")[0]] == [third]
