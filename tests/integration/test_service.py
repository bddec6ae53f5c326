"""The domain end to end on real parts: PostgreSQL + pgvector, filesystem blobs, the real model."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from querio.errors import NotFound
from querio.models import (
    ChatRequest,
    DocumentStatus,
    Principal,
    QueryRequest,
    SearchFilters,
    SearchMode,
    SearchRequest,
)
from querio.service import QuerioService
from tests.fixtures.pdfs import make_text_pdf

pytestmark = pytest.mark.integration

PAGES = [
    "Gardening basics. Tomatoes need full sun, regular watering and a sturdy stake to climb. "
    "Pinch out side shoots so the plant puts its energy into fruit.",
    "Bicycle maintenance. To fix a flat tyre, remove the wheel, lever the tyre off the rim, "
    "find the puncture in the inner tube and apply a rubber patch with glue.",
    "Baking bread. Knead the dough for ten minutes, let it rise until doubled in size, "
    "then bake at two hundred and twenty degrees Celsius for thirty minutes.",
]


def chunk_rows(dsn: str, tenant: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM document_chunks WHERE tenant_id = %s", (tenant,)).fetchone()
        assert row is not None
        return int(row[0])


def search(service: QuerioService, who: Principal, query: str, **kw: object) -> list:
    return service.search(who, SearchRequest(query=query, **kw)).results  # type: ignore[arg-type]


def test_ingest_then_search_cites_the_right_page(service: QuerioService, alice: Principal) -> None:
    outcome = service.ingest(alice, make_text_pdf(PAGES, title="Handbook"), "handbook.pdf")
    assert outcome.status == "ingested"
    assert outcome.pages == 3 and outcome.chunks >= 3
    doc = service.get_document(alice, outcome.document.id)  # type: ignore[union-attr]
    assert doc.processing_status == DocumentStatus.COMPLETED
    assert doc.page_count == 3 and doc.title == "Handbook" and doc.word_count and doc.word_count > 50

    hits = search(service, alice, "how do I repair a punctured inner tube?", k=3)
    assert hits[0].filename == "handbook.pdf"
    assert hits[0].page == 2
    assert "puncture" in hits[0].snippet

    for mode in SearchMode:
        top = search(service, alice, "how long should bread dough be kneaded", k=1, mode=mode)
        assert top and top[0].page == 3, mode


def test_reingesting_identical_bytes_creates_no_duplicates(service: QuerioService, alice: Principal,
                                                           pg_dsn: str) -> None:
    pdf = make_text_pdf(PAGES)
    first = service.ingest(alice, pdf, "a.pdf")
    before = chunk_rows(pg_dsn, alice.tenant_id)
    second = service.ingest(alice, pdf, "renamed.pdf")
    assert (first.status, second.status) == ("ingested", "duplicate")
    assert second.document and first.document and second.document.id == first.document.id
    assert chunk_rows(pg_dsn, alice.tenant_id) == before
    assert service.list_documents(alice).total == 1


def test_bad_files_get_reasons_and_good_files_still_ingest(service: QuerioService, alice: Principal,
                                                           bad_pdfs: dict[str, bytes]) -> None:
    outcomes = {name: service.ingest(alice, data, f"{name}.pdf") for name, data in bad_pdfs.items()}
    good = service.ingest(alice, make_text_pdf(PAGES), "good.pdf")
    assert good.status == "ingested"
    for name, outcome in outcomes.items():
        if outcome.status == "ingested":  # e.g. an empty-password PDF or a mixed text+scan PDF
            continue
        assert outcome.status == "failed", name
        assert outcome.error_code and outcome.reason, name
        stored = service.get_document(alice, outcome.document.id)  # type: ignore[union-attr]
        assert stored.processing_status == DocumentStatus.FAILED
        assert stored.error_message == outcome.reason
    failed_codes = {o.error_code for o in outcomes.values() if o.status == "failed"}
    assert {"empty_file", "not_a_pdf", "corrupt_pdf", "encrypted_pdf", "no_extractable_text"} <= failed_codes


def test_scanned_pages_are_counted_not_dropped(service: QuerioService, alice: Principal,
                                               mixed_pdf_bytes: bytes) -> None:
    outcome = service.ingest(alice, mixed_pdf_bytes, "mixed.pdf")
    assert outcome.status == "ingested"
    assert outcome.empty_pages == 1
    assert service.get_document(alice, outcome.document.id).empty_page_count == 1  # type: ignore[union-attr]


def test_concurrent_ingests_of_the_same_file_make_one_document(service: QuerioService, alice: Principal) -> None:
    pdf = make_text_pdf(PAGES)
    results: list[str] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        results.append(service.ingest(alice, pdf, "same.pdf").status)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results).count("ingested") == 1, results
    assert set(results) <= {"ingested", "duplicate", "in_progress"}
    assert service.list_documents(alice).total == 1


def test_search_path_reads_the_corpus_version_once_and_writes_analytics_later(
        service: QuerioService, alice: Principal, pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Off the request path: the corpus version is read once per tenant (not per search) until
    this process writes, and query analytics are written by the background writer, not by the
    search (stats() flushes it)."""
    service.ingest(alice, make_text_pdf(PAGES), "one.pdf")
    reads: list[str] = []
    real_version = service.documents.corpus_version
    monkeypatch.setattr(service.documents, "corpus_version", lambda t: reads.append(t) or real_version(t))
    writes: list[int] = []
    real_record = service.documents.record_queries
    monkeypatch.setattr(service.documents, "record_queries", lambda rs: writes.append(len(rs)) or real_record(rs))
    monkeypatch.setattr(service.documents, "record_query", lambda *a, **kw: pytest.fail("written on the request path"))
    for q in ("fix a flat tyre", "knead the dough", "fix a flat tyre", "tomato stakes"):
        service.search(alice, SearchRequest(query=q, k=3))
    assert reads == [alice.tenant_id]
    assert service.stats(alice).queries == 3 and sum(writes) == 3  # a cached answer is not recorded
    service.ingest(alice, make_text_pdf(["Another page about tomatoes."]), "two.pdf")
    service.search(alice, SearchRequest(query="tomato stakes", k=3))
    assert reads == [alice.tenant_id] * 2  # this process's write forgot the version


def test_delete_removes_blob_chunks_vectors_and_cached_results(service: QuerioService, alice: Principal,
                                                               pg_dsn: str) -> None:
    outcome = service.ingest(alice, make_text_pdf(PAGES), "gone.pdf")
    doc = outcome.document
    assert doc and doc.storage_path
    blob = Path(service.settings.blob_dir) / doc.storage_path
    assert blob.exists()
    request = SearchRequest(query="fix a flat tyre", k=3)
    assert service.search(alice, request).results
    assert service.search(alice, request).cached  # the second identical search is a cache hit

    service.delete_document(alice, doc.id)

    after = service.search(alice, request)
    assert after.results == [] and not after.cached
    assert not blob.exists()
    assert chunk_rows(pg_dsn, alice.tenant_id) == 0
    with pytest.raises(NotFound):
        service.get_document(alice, doc.id)
    # the same bytes can come back as a new document
    assert service.ingest(alice, make_text_pdf(PAGES), "gone.pdf").status == "ingested"


def test_filters_restrict_both_retrievers(service: QuerioService, alice: Principal) -> None:
    a = service.ingest(alice, make_text_pdf(PAGES), "a.pdf", tags=["Garden", "home"]).document
    b = service.ingest(alice, make_text_pdf([p + " Second edition." for p in PAGES]), "b.pdf",
                       tags=["archive"]).document
    assert a and b
    for mode in SearchMode:
        only_b = search(service, alice, "tomatoes sun", k=5, mode=mode,
                        filters=SearchFilters(document_ids=[b.id]))
        assert only_b and {h.document_id for h in only_b} == {b.id}
        tagged = search(service, alice, "tomatoes sun", k=5, mode=mode, filters=SearchFilters(tags=["garden"]))
        assert tagged and {h.document_id for h in tagged} == {a.id}
        # "tomatoes" is on page 1 only: the page filter must keep the retrievers on pages 2-3
        pages = search(service, alice, "tomatoes sun tyre", k=5, mode=mode,
                       filters=SearchFilters(page_from=2, page_to=3))
        assert pages and all(2 <= h.page <= 3 for h in pages)
        future = search(service, alice, "tomatoes sun", k=5, mode=mode,
                        filters=SearchFilters(uploaded_after=b.uploaded_at.replace(year=2100)))
        assert future == []


def test_tenants_never_see_each_other(service: QuerioService, alice: Principal, bob: Principal) -> None:
    doc = service.ingest(alice, make_text_pdf(PAGES), "private.pdf").document
    assert doc
    assert search(service, bob, "fix a flat tyre") == []
    assert service.list_documents(bob).total == 0
    with pytest.raises(NotFound):
        service.get_document(bob, doc.id)
    with pytest.raises(NotFound):
        service.delete_document(bob, doc.id)
    assert service.stats(bob).documents == 0
    assert search(service, alice, "fix a flat tyre")  # still there for its owner


def test_query_gives_an_extractive_answer_with_page_citations(service: QuerioService, alice: Principal) -> None:
    service.ingest(alice, make_text_pdf(PAGES), "handbook.pdf")
    answer = service.query(alice, QueryRequest(query="At what temperature should bread be baked?"))
    assert answer.mode == "extractive"
    assert "Celsius" in answer.answer
    assert answer.citations[0].page == 3 and answer.citations[0].filename == "handbook.pdf"


def test_chat_keeps_history_per_session(service: QuerioService, alice: Principal, bob: Principal) -> None:
    service.ingest(alice, make_text_pdf(PAGES), "handbook.pdf")
    first = service.chat(alice, ChatRequest(message="How do I patch an inner tube?"))
    second = service.chat(alice, ChatRequest(message="And how long does the bread rise?",
                                             session_id=first.session_id))
    assert second.session_id == first.session_id
    history = service.chat_history(alice, first.session_id)
    assert [m.role for m in history] == ["user", "assistant", "user", "assistant"]
    assert [s.id for s in service.list_chat_sessions(alice)] == [first.session_id]
    with pytest.raises(NotFound):
        service.chat_history(bob, first.session_id)
    service.delete_chat_session(alice, first.session_id)
    assert service.list_chat_sessions(alice) == []


def test_reprocess_rebuilds_chunks(service: QuerioService, alice: Principal, pg_dsn: str) -> None:
    doc = service.ingest(alice, make_text_pdf(PAGES), "r.pdf").document
    assert doc
    before = chunk_rows(pg_dsn, alice.tenant_id)
    outcome = service.reprocess(alice, doc.id)
    assert outcome.status == "ingested"
    assert chunk_rows(pg_dsn, alice.tenant_id) == before
    assert search(service, alice, "fix a flat tyre")[0].document_id == doc.id
