"""The in-memory fakes (``tests/fakes``) and the PostgreSQL adapters pass the same contract cases,
so a unit test that passes on a fake says something about production. Each case runs twice:
``memory`` and ``postgres`` (a fresh migrated database)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from querio.adapters.postgres.vector_source import PostgresMigrationCheckpoints, PostgresVectorSource
from querio.errors import NotFound
from querio.models import ChatRole, Document, DocumentStatus, SearchFilters
from querio.ports import ChatStore, DocumentStore, MigrationCheckpoints, Sweeps, VectorSource
from tests.fakes import InMemoryChats, InMemoryCheckpoints, InMemoryDocuments, InMemorySweeps, InMemoryVectorSource
from tests.fixtures.postgres import drafts, new_document, unit_vectors


@dataclass
class Ports:
    documents: DocumentStore
    chats: ChatStore
    sweeps: Sweeps
    source: VectorSource
    checkpoints: MigrationCheckpoints


@pytest.fixture(params=["memory", "postgres"])
def ports(request: pytest.FixtureRequest) -> Iterator[Ports]:
    if request.param == "memory":
        docs = InMemoryDocuments()
        yield Ports(docs, InMemoryChats(), InMemorySweeps(docs), InMemoryVectorSource(docs), InMemoryCheckpoints())
        return
    store: Any = request.getfixturevalue("pg_store")  # one adapter class serves several ports
    yield Ports(store, store, store, PostgresVectorSource(store), PostgresMigrationCheckpoints(store))


def _completed(documents: DocumentStore, tenant: str, texts: list[str], seed: int = 0) -> Document:
    doc, created = documents.claim_document(new_document(tenant))
    assert created and documents.try_start_processing(tenant, doc.id, stale_after_s=600) is not None
    info = {"page_count": len(texts), "word_count": 0, "empty_page_count": 0, "title": "t"}
    return documents.complete_document(tenant, doc.id, chunks=drafts(texts),
                                       embeddings=unit_vectors(len(texts), seed), info=info)


def test_documents_claim_start_complete_delete_per_tenant(ports: Ports) -> None:
    docs = ports.documents
    first, created = docs.claim_document(new_document("a", b"same bytes"))
    again, created_again = docs.claim_document(new_document("a", b"same bytes"))
    _, created_b = docs.claim_document(new_document("b", b"same bytes"))
    assert (created, created_again, created_b) == (True, False, True) and again.id == first.id
    with pytest.raises(NotFound):
        docs.get_document("b", first.id)
    assert docs.try_start_processing("a", first.id, stale_after_s=600) is not None
    assert docs.try_start_processing("a", first.id, stale_after_s=600) is None  # held by the first worker
    before = docs.corpus_version("a")
    done = docs.complete_document("a", first.id, chunks=drafts(["one", "two"]), embeddings=unit_vectors(2),
                                  info={"page_count": 2, "word_count": 2, "empty_page_count": 0, "title": "t"})
    assert done.processing_status == DocumentStatus.COMPLETED and docs.corpus_version("a") != before
    ids = [r.chunk_id for r in docs.fulltext_search("a", "one two", 5, SearchFilters())]
    assert len(ids) == 2 and set(docs.fetch_chunks("a", ids)) == set(ids)
    assert docs.fetch_chunks("b", ids) == {}  # another tenant's chunk ids are silently absent
    docs.soft_delete("a", first.id)
    with pytest.raises(NotFound):
        docs.get_document("a", first.id)
    assert docs.fetch_chunks("a", ids) == {} and docs.list_documents("a") == ([], 0)


def test_chats_are_per_tenant_and_keep_order(ports: Ports) -> None:
    chats = ports.chats
    session = chats.create_chat_session("a", "u", "title")
    for i in range(3):
        chats.add_chat_message("a", session.id, ChatRole.USER, f"m{i}")
    assert [m.content for m in chats.chat_history("a", session.id, limit=2)] == ["m1", "m2"]
    assert chats.get_chat_session("a", session.id).message_count == 3
    for call in (lambda: chats.get_chat_session("b", session.id),
                 lambda: chats.chat_history("b", session.id),
                 lambda: chats.add_chat_message("b", session.id, ChatRole.USER, "x"),
                 lambda: chats.delete_chat_session("b", session.id)):
        with pytest.raises(NotFound):
            call()
    chats.delete_chat_session("a", session.id)
    assert chats.list_chat_sessions("a") == []


def test_sweeps_page_every_tenant_by_id(ports: Ports) -> None:
    docs = [_completed(ports.documents, tenant, ["x"]) for tenant in ("a", "b", "c")]
    for d in docs:
        ports.documents.soft_delete(d.tenant_id, d.id)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    pages, after = [], None
    while page := ports.sweeps.purge_candidates(later, after_id=after, limit=2):
        pages.append([d.id for d in page])
        after = page[-1].id
    assert [len(p) for p in pages] == [2, 1] and sorted(i for p in pages for i in p) == sorted(d.id for d in docs)
    assert ports.sweeps.purge_candidates(dt.datetime.now(dt.UTC) - dt.timedelta(days=1)) == []


def test_vector_source_counts_live_vectors_only(ports: Ports) -> None:
    live = _completed(ports.documents, "a", ["one", "two"])
    gone = _completed(ports.documents, "a", ["three"], seed=1)
    pending, _ = ports.documents.claim_document(new_document("b"))
    ports.documents.soft_delete("a", gone.id)
    assert ports.source.live_counts() == {"a": 2}
    assert ports.source.count_after(None) == 2 and len(ports.source.batch_after(None, 10)) == 2
    first = ports.source.batch_after(None, 1)[0]
    assert [v.chunk_id for v in ports.source.batch_after(first.chunk_id, 10)] != [first.chunk_id]
    assert [v.chunk_index for v in ports.source.document_vectors("a", live.id)] == [0, 1]
    assert ports.source.document_vectors("b", live.id) == []  # another tenant's document
    assert ports.source.live_ids("a") == {str(v.chunk_id) for v in ports.source.document_vectors("a", live.id)}
    assert pending.processing_status == DocumentStatus.PENDING


def test_checkpoints_resume_where_they_stopped(ports: Ports) -> None:
    cp = ports.checkpoints
    assert cp.load("m") is None
    cp.begin("m", resumed=False)
    cursor = uuid.uuid4()
    cp.advance("m", cursor, 25)
    cp.advance("m", cursor, 5)
    cp.begin("m", resumed=True)
    row = cp.load("m")
    assert row is not None
    assert (row["status"], row["last_chunk_id"], row["copied"], row["batches"], row["runs"]) == (
        "running", cursor, 30, 2, 2)
    cp.finish("m")
    assert (cp.load("m") or {})["status"] == "completed"
