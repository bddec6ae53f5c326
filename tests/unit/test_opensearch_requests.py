"""The OpenSearch adapter's requests, pinned against OpenSearch's documented API: the real
opensearch-py client talks HTTP to a local recorder (tests/fixtures/opensearch_recorder.py) that
answers with the documented response shapes. Asserted: the create-index body (similarity,
analyzer, strict mapping, required routing), ``_bulk`` NDJSON (index and delete actions,
``_id`` = chunk id, routing), ``_delete_by_query`` and the ``_search`` body for each filter."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from querio.adapters.opensearch import (
    SIMILARITY,
    OpenSearchFullText,
    aws_region,
    epoch_us,
    opensearch_client,
    routing_key,
)
from querio.adapters.postgres.store import BM25_B, BM25_K1
from querio.errors import ConfigurationError, TransientError, ValidationFailed
from querio.models import SearchFilters
from querio.ports import IndexedChunk
from tests.fixtures.opensearch_recorder import Recorder

T0 = dt.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)


def adapter(rec: Recorder) -> OpenSearchFullText:
    return OpenSearchFullText(lambda: opensearch_client(rec.url), index_prefix="qx")


def chunk(tenant: str = "acme", content: str = "text", **kw: object) -> IndexedChunk:
    values: dict = dict(tenant_id=tenant, chunk_id=uuid.uuid4(), document_id=uuid.uuid4(), chunk_index=0,
                        page_number=3, page_end=4, content=content, tags=("a", "b"), uploaded_at=T0)
    return IndexedChunk(**(values | kw))


def test_index_created_once_with_bm25_english_and_required_routing(opensearch_recorder: Recorder) -> None:
    os_ = adapter(opensearch_recorder)
    assert os_.ensure_index() is True
    assert os_.ensure_index() is False  # checked once per process
    head = opensearch_recorder.of("HEAD", "/qx-v1")
    put = opensearch_recorder.of("PUT", "/qx-v1")
    assert len(head) == 1 and len(put) == 1
    body = put[0].json()
    settings = body["settings"]["index"]
    assert settings["similarity"][SIMILARITY] == {"type": "BM25", "k1": BM25_K1, "b": BM25_B}
    mappings = body["mappings"]
    assert mappings["dynamic"] == "strict" and mappings["_routing"] == {"required": True}
    props = mappings["properties"]
    assert props["content"] == {"type": "text", "analyzer": "english", "similarity": SIMILARITY}
    for keyword in ("tenant_id", "document_id", "chunk_id", "tags"):
        assert props[keyword] == {"type": "keyword"}
    assert props["uploaded_at_us"] == {"type": "long"}
    assert props["page"]["type"] == props["page_end"]["type"] == "integer"


def test_bulk_index_ndjson_with_chunk_ids_routing_and_normalized_text(opensearch_recorder: Recorder) -> None:
    os_ = adapter(opensearch_recorder)
    a = chunk("acme", "\ufb01nancial \uff30\uff24\uff26 re\u00adport")  # ligature, full width, soft hyphen
    b = chunk("org:x@eu", "second")
    assert os_.index_chunks([a, b]) == 1
    (bulk,) = opensearch_recorder.of("POST", "/_bulk")
    headers = {k.lower(): v for k, v in bulk.headers.items()}
    assert headers["content-type"] == "application/x-ndjson", headers  # what the Bulk API documents
    lines = bulk.ndjson()
    assert lines[0] == {"index": {"_index": "qx-v1", "_id": str(a.chunk_id), "routing": routing_key("acme")}}
    assert lines[1] == {"tenant_id": "acme", "document_id": str(a.document_id), "chunk_id": str(a.chunk_id),
                        "chunk_index": 0, "page": 3, "page_end": 4, "tags": ["a", "b"],
                        "uploaded_at_us": epoch_us(T0), "content": "financial PDF report"}
    assert lines[2]["index"]["routing"] == routing_key("org:x@eu") != routing_key("acme")
    assert len(lines) == 4


def test_bulk_is_cut_into_requests(opensearch_recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    import querio.adapters.opensearch as mod

    monkeypatch.setattr(mod, "BULK_MAX_ACTIONS", 2)
    assert adapter(opensearch_recorder).index_chunks([chunk() for _ in range(5)]) == 3
    assert [len(r.ndjson()) for r in opensearch_recorder.of("POST", "/_bulk")] == [4, 4, 2]


def test_bulk_delete_and_delete_by_query(opensearch_recorder: Recorder) -> None:
    os_ = adapter(opensearch_recorder)
    ids = [uuid.uuid4(), uuid.uuid4()]
    os_.delete_ids("acme", ids)
    lines = opensearch_recorder.of("POST", "/_bulk")[0].ndjson()
    assert lines == [{"delete": {"_index": "qx-v1", "_id": str(i), "routing": routing_key("acme")}} for i in ids]
    doc, keep = uuid.uuid4(), uuid.uuid4()
    assert os_.delete_document("acme", doc, keep=[keep]) == 0
    (dbq,) = opensearch_recorder.of("POST", "/qx-v1/_delete_by_query")
    assert dbq.query["routing"] == [routing_key("acme")] and dbq.query["conflicts"] == ["proceed"]
    assert dbq.json() == {"query": {"bool": {
        "filter": [{"term": {"tenant_id": "acme"}}, {"term": {"document_id": str(doc)}}],
        "must_not": [{"ids": {"values": [str(keep)]}}]}}}


DOC = uuid.UUID("00000000-0000-0000-0000-0000000000d1")


@pytest.mark.parametrize(("filters", "clauses"), [
    (SearchFilters(), []),
    (SearchFilters(document_ids=[DOC]), [{"terms": {"document_id": [str(DOC)]}}]),
    (SearchFilters(document_ids=[]), []),  # an empty list is no filter, as in SQL
    (SearchFilters(tags=["x", "y"]), [{"terms": {"tags": ["x", "y"]}}]),
    (SearchFilters(page_from=3), [{"range": {"page_end": {"gte": 3}}}]),
    (SearchFilters(page_to=5), [{"range": {"page": {"lte": 5}}}]),
    (SearchFilters(uploaded_after=T0), [{"range": {"uploaded_at_us": {"gte": epoch_us(T0)}}}]),
    (SearchFilters(uploaded_before=T0.replace(tzinfo=None)),  # naive = UTC
     [{"range": {"uploaded_at_us": {"lt": epoch_us(T0)}}}]),
    (SearchFilters(tags=["x"], page_from=2, page_to=2),
     [{"terms": {"tags": ["x"]}}, {"range": {"page_end": {"gte": 2}}}, {"range": {"page": {"lte": 2}}}]),
])
def test_search_body_maps_each_filter(opensearch_recorder: Recorder, filters: SearchFilters,
                                      clauses: list) -> None:
    cid = uuid.uuid4()
    opensearch_recorder.hits = [{"_index": "qx-v1", "_id": str(cid), "_score": 2.5, "sort": [2.5, str(cid)]}]
    refs = adapter(opensearch_recorder).search("acme", "\uff30\uff24\uff26  files", 7, filters)
    assert [(r.chunk_id, r.score) for r in refs] == [(cid, 2.5)]
    (req,) = opensearch_recorder.of("POST", "/qx-v1/_search")
    assert req.query["routing"] == [routing_key("acme")]
    assert req.json() == {
        "size": 7, "_source": False, "track_total_hits": False,
        "query": {"bool": {"must": [{"match": {"content": {"query": "PDF files", "operator": "or"}}}],
                           "filter": [{"term": {"tenant_id": "acme"}}, *clauses]}},
        "sort": [{"_score": {"order": "desc"}}, {"chunk_id": {"order": "asc"}}]}


def test_hostile_tenant_ids_stay_one_exact_term_and_one_routing_value(opensearch_recorder: Recorder) -> None:
    os_ = adapter(opensearch_recorder)
    for tenant in ("a,b", "*", 'x" OR "1"="1', "acme\\", "ACME"):
        os_.search(tenant, "query", 5, SearchFilters())
        req = opensearch_recorder.requests[-1]
        assert req.json()["query"]["bool"]["filter"][0] == {"term": {"tenant_id": tenant}}
        (routing,) = req.query["routing"]
        assert routing == routing_key(tenant) and "," not in routing and len(routing) == 16


def test_empty_query_or_k_sends_nothing(opensearch_recorder: Recorder) -> None:
    os_ = adapter(opensearch_recorder)
    assert os_.search("acme", "   ", 5, SearchFilters()) == []
    assert os_.search("acme", "x", 0, SearchFilters()) == []
    assert os_.index_chunks([]) == 0
    assert opensearch_recorder.requests == []


def test_errors_are_translated(opensearch_recorder: Recorder) -> None:
    os_ = adapter(opensearch_recorder)
    os_.ensure_index()
    opensearch_recorder.item_error = True
    with pytest.raises(TransientError, match=r"1 of 2 actions failed.*429"):
        os_.index_chunks([chunk(), chunk()])
    opensearch_recorder.fail["/_search"] = (403, {"error": {"type": "security_exception"}, "status": 403})
    with pytest.raises(ConfigurationError, match="403"):
        os_.search("acme", "q", 5, SearchFilters())
    opensearch_recorder.fail["/_search"] = (500, {"error": {"type": "exception"}, "status": 500})
    with pytest.raises(TransientError):
        os_.search("acme", "q", 5, SearchFilters())
    opensearch_recorder.fail["/_search"] = (400, {"error": {"type": "parsing_exception"}, "status": 400})
    with pytest.raises(ValidationFailed):
        os_.search("acme", "q", 5, SearchFilters())
    opensearch_recorder.fail["/_search"] = (404, {"error": {"type": "index_not_found_exception"}, "status": 404})
    with pytest.raises(ConfigurationError, match="backfill"):
        os_.search("acme", "q", 5, SearchFilters())


def test_aws_endpoints_are_signed_with_sigv4_for_es(monkeypatch: pytest.MonkeyPatch) -> None:
    from opensearchpy import RequestsAWSV4SignerAuth

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    host = "vpc-querio-abc123.eu-west-1.es.amazonaws.com"
    assert aws_region(host) == "eu-west-1" and aws_region("localhost") is None
    client = opensearch_client(f"https://{host}")
    connection = client.transport.connection_pool.connections[0]
    auth = connection.session.auth
    assert isinstance(auth, RequestsAWSV4SignerAuth)
    assert auth.service == "es" and auth.signer.region == "eu-west-1"
    import requests

    prepared = auth(requests.Request("POST", f"https://{host}/x/_search", data=b"{}").prepare())
    assert prepared.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/es/aws4_request" in prepared.headers["Authorization"]
    with pytest.raises(ConfigurationError):
        opensearch_client("ftp://example")
