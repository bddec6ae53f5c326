"""The service with OpenSearch as its full-text backend: chunks reach the index after the commit,
a failed write leaves the document ``indexing`` (visible, counted) until ``sync_pending`` retries
it, stale hits are dropped and repaired, deletes follow. Real PostgreSQL; OpenSearch is the local
recorder (documented response shapes), so what is asserted is what the service sends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from querio.adapters.opensearch import routing_key
from querio.config import Settings
from querio.errors import ConfigurationError
from querio.models import DocumentStatus, Principal, SearchMode, SearchRequest
from querio.service import QuerioService
from querio.wiring import build_service
from tests.fixtures.opensearch_recorder import Recorder
from tests.fixtures.pdfs import make_text_pdf
from tests.fixtures.service import make_settings

pytestmark = pytest.mark.integration

WHO = Principal(tenant_id="acme", user_id="u1")


@pytest.fixture
def os_service(tmp_path: Path, pg_dsn: str, opensearch_recorder: Recorder) -> Iterator[QuerioService]:
    settings = make_settings(tmp_path / "data", pg_dsn, opensearch_url=opensearch_recorder.url,
                             fulltext_backend="opensearch", result_cache=False)
    svc = build_service(settings)
    yield svc
    svc.close()


def chunk_ids(svc: QuerioService, doc_id: uuid.UUID) -> set[str]:
    with svc.documents.connection() as conn:  # type: ignore[attr-defined]
        return {str(r[0]) for r in conn.execute("SELECT id FROM document_chunks WHERE document_id = %s", (doc_id,))}


def indexed_ids(rec: Recorder) -> set[str]:
    return {line["index"]["_id"] for r in rec.of("POST", "/_bulk") for line in r.ndjson() if "index" in line}


def test_settings_require_the_url() -> None:
    with pytest.raises(ConfigurationError, match="QUERIO_OPENSEARCH_URL"):
        from querio.config import load_settings

        load_settings(fulltext_backend="opensearch")
    assert Settings(fulltext_backend="postgres").opensearch_url is None


def test_failed_write_stays_indexing_until_retried_then_searches_drop_stale_hits(
        os_service: QuerioService, opensearch_recorder: Recorder) -> None:
    rec = opensearch_recorder
    assert os_service.search_engine is None  # the legs are fused in the domain
    rec.fail["/_bulk"] = (500, {"error": {"type": "exception", "reason": "boom"}, "status": 500})
    outcome = os_service.ingest(WHO, make_text_pdf(["The walrus manual. Walruses rest on ice floes."]), "w.pdf")
    doc = outcome.document
    assert outcome.status == "ingested" and doc is not None
    assert doc.processing_status == DocumentStatus.INDEXING  # visible: stored, not yet searchable
    assert os_service.documents.indexing_candidates() == [doc]

    done = os_service.sync_pending(doc)  # the archive schedule's sweep, or the queue's retry
    assert done.processing_status == DocumentStatus.COMPLETED
    ids = chunk_ids(os_service, doc.id)
    assert indexed_ids(rec) == ids  # every chunk, by its id, after the commit
    bulk = rec.of("POST", "/_bulk")[-1].ndjson()
    assert {line["index"]["routing"] for line in bulk if "index" in line} == {routing_key("acme")}
    # the retry was a re-sync: the document's other records go, its own are kept
    (dbq,) = rec.of("POST", "/_delete_by_query")
    assert sorted(dbq.json()["query"]["bool"]["must_not"][0]["ids"]["values"]) == sorted(ids)

    live = sorted(ids)[0]
    orphan = str(uuid.uuid4())
    rec.hits = [{"_index": "x", "_id": orphan, "_score": 3.0}, {"_index": "x", "_id": live, "_score": 2.0}]
    result = os_service.search(WHO, SearchRequest(query="walrus", k=5, mode=SearchMode.TEXT))
    assert [str(h.chunk_id) for h in result.results] == [live]  # the orphan is dropped...
    assert {line["delete"]["_id"] for r in rec.of("POST", "/_bulk") for line in r.ndjson()
            if "delete" in line} == {orphan}  # ...and deleted from the index
    search = rec.of("POST", "/_search")[0].json()
    assert search["query"]["bool"]["filter"][0] == {"term": {"tenant_id": "acme"}}

    os_service.delete_document(WHO, doc.id)
    last = rec.of("POST", "/_delete_by_query")[-1].json()["query"]["bool"]
    assert last["filter"][1] == {"term": {"document_id": str(doc.id)}} and last["must_not"] == []


def test_postgres_backend_with_a_url_writes_but_does_not_wait(tmp_path: Path, pg_dsn: str,
                                                               opensearch_recorder: Recorder) -> None:
    settings = make_settings(tmp_path / "data", pg_dsn, opensearch_url=opensearch_recorder.url,
                             fulltext_backend="postgres")
    svc = build_service(settings)
    try:
        assert svc.search_engine is not None  # both legs still in one PostgreSQL statement
        opensearch_recorder.fail["/_bulk"] = (500, {"error": {"type": "exception"}, "status": 500})
        outcome = svc.ingest(WHO, make_text_pdf(["Okapi notes."]), "o.pdf")
        assert outcome.document is not None and outcome.document.processing_status == DocumentStatus.COMPLETED
        svc.ingest(WHO, make_text_pdf(["Zebra notes."]), "z.pdf")
        assert opensearch_recorder.of("POST", "/_bulk")  # dual writes reached OpenSearch
        assert opensearch_recorder.of("POST", "/_search") == []  # PostgreSQL answers
    finally:
        svc.close()
