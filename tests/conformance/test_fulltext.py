"""The FullTextSearch contract, run against every adapter: PostgreSQL BM25 always (CI), and
OpenSearch when ``QUERIO_OPENSEARCH_URL`` names a live endpoint (skipped otherwise). Chunks are
written to PostgreSQL (the system of record) and, for OpenSearch, synced after the commit as in
production (``SyncedFullText``); each test uses its own index, deleted afterwards.

    QUERIO_OPENSEARCH_URL=https://vpc-...es.amazonaws.com pytest tests/conformance -k fulltext
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from querio.adapters.postgres.fulltext import PostgresChunkSource, PostgresFullText
from querio.adapters.postgres.store import PostgresDocumentStore
from querio.models import Document, SearchFilters
from querio.ports import FullTextSearch
from tests.fixtures.postgres import drafts, ingest

pytestmark = pytest.mark.integration

NOFILTER = SearchFilters()
LIVE_URL = os.environ.get("QUERIO_OPENSEARCH_URL")


@dataclass
class FullTextHarness:
    backend: str
    search: FullTextSearch
    pg: PostgresDocumentStore
    synced: object | None = None  # SyncedFullText for OpenSearch

    def add(self, tenant: str, texts: Sequence[str], *, pages: Sequence[int] | None = None,
            tags: Sequence[str] = ()) -> tuple[Document, list[uuid.UUID]]:
        doc = ingest(self.pg, tenant, texts, pages=pages, tags=tags, filename=f"{uuid.uuid4().hex[:8]}.pdf")
        self._stored(tenant, doc.id)
        return doc, self.ids(tenant, doc.id)

    def ids(self, tenant: str, document_id: uuid.UUID) -> list[uuid.UUID]:
        with self.pg.connection() as conn:
            return [r[0] for r in conn.execute("SELECT id FROM document_chunks WHERE tenant_id = %s AND"
                                               " document_id = %s ORDER BY chunk_index", (tenant, document_id))]

    def reprocess(self, tenant: str, doc: Document, texts: Sequence[str]) -> list[uuid.UUID]:
        self.pg.reset_for_reprocess(tenant, doc.id)
        assert self.pg.try_start_processing(tenant, doc.id, stale_after_s=600) is not None
        self.pg.complete_document(tenant, doc.id, chunks=drafts(texts), embeddings=None, info={})
        self._stored(tenant, doc.id, replaced=True)
        return self.ids(tenant, doc.id)

    def delete(self, tenant: str, doc: Document) -> None:
        self.pg.soft_delete(tenant, doc.id)
        if self.synced is not None:
            self.synced.document_purged(tenant, doc.id)  # type: ignore[attr-defined]
            self._refresh()
        self.pg.purge_document(tenant, doc.id)

    def _stored(self, tenant: str, document_id: uuid.UUID, *, replaced: bool = False) -> None:
        if self.synced is not None:
            assert self.synced.document_stored(tenant, document_id, replaced=replaced)  # type: ignore[attr-defined]
            self._refresh()

    def _refresh(self) -> None:
        self.synced.index.refresh()  # type: ignore[attr-defined]

    def got(self, tenant: str, query: str, k: int = 50, **filters: object) -> list[uuid.UUID]:
        return [r.chunk_id for r in self.search.search(tenant, query, k, SearchFilters(**filters))]  # type: ignore[arg-type]


@pytest.fixture(params=["postgres", "opensearch"])
def fulltext(request: pytest.FixtureRequest, pg_store: PostgresDocumentStore) -> Iterator[FullTextHarness]:
    if request.param == "postgres":
        yield FullTextHarness("postgres", PostgresFullText(pg_store), pg_store)
        return
    if not LIVE_URL:
        pytest.skip("QUERIO_OPENSEARCH_URL is not set: no live OpenSearch to run the full-text suite against")
    from querio.adapters.opensearch import OpenSearchFullText, opensearch_client
    from querio.fulltext.sync import SyncedFullText

    index = OpenSearchFullText(lambda: opensearch_client(LIVE_URL), index_prefix=f"querio-test-{uuid.uuid4().hex[:8]}",
                               shards=2, replicas=0)
    synced = SyncedFullText(index, PostgresChunkSource(pg_store))
    try:
        yield FullTextHarness("opensearch", synced, pg_store, synced)
    finally:
        index.client.indices.delete(index=index.index, ignore_unavailable=True)


def test_ranking_sanity(fulltext: FullTextHarness) -> None:
    _, ids = fulltext.add("t1", [
        "walrus walrus walrus tusks on the ice",
        "a walrus was seen near the harbour among many boats and gulls and people and cars",
        "penguins dive for fish",
        "the walruses rest",  # stemming: walruses ~ walrus
    ])
    got = fulltext.got("t1", "walrus")
    assert got[0] == ids[0]  # most occurrences in a short chunk
    assert set(got) == {ids[0], ids[1], ids[3]}
    assert fulltext.got("t1", "walrus", k=2) == got[:2]  # k honoured, same order
    assert fulltext.got("t1", "penguin fish")[0] == ids[2]
    assert fulltext.got("t1", "the of and") == []  # stop words only
    assert fulltext.got("t1", "   ") == []
    assert fulltext.got("t1", "zeppelin") == []


def test_each_filter(fulltext: FullTextHarness) -> None:
    d1, i1 = fulltext.add("t1", ["llama one", "llama two", "llama three"], pages=[1, 2, 3], tags=["alpha", "beta"])
    d2, i2 = fulltext.add("t1", ["llama four", "llama five"], pages=[2, 5], tags=["gamma"])
    d3, i3 = fulltext.add("t1", ["llama six"], pages=[10], tags=[])
    everything = set(i1) | set(i2) | set(i3)
    assert set(fulltext.got("t1", "llama")) == everything
    assert set(fulltext.got("t1", "llama", document_ids=[d1.id, d3.id])) == set(i1) | set(i3)
    assert set(fulltext.got("t1", "llama", document_ids=[])) == everything  # empty list: no filter
    assert set(fulltext.got("t1", "llama", tags=["beta", "gamma"])) == set(i1) | set(i2)  # ANY tag
    assert fulltext.got("t1", "llama", tags=["nope"]) == []
    assert set(fulltext.got("t1", "llama", page_from=2, page_to=3)) == {i1[1], i1[2], i2[0]}
    assert set(fulltext.got("t1", "llama", page_from=5)) == {i2[1], i3[0]}
    assert set(fulltext.got("t1", "llama", page_to=1)) == {i1[0]}
    assert set(fulltext.got("t1", "llama", tags=["alpha"], page_to=2)) == {i1[0], i1[1]}  # AND
    uploaded = sorted([(d.uploaded_at, ids) for d, ids in ((d1, i1), (d2, i2), (d3, i3))], key=lambda x: x[0])
    mid = uploaded[1][0]
    assert set(fulltext.got("t1", "llama", uploaded_after=mid)) == set(uploaded[1][1]) | set(uploaded[2][1])
    assert set(fulltext.got("t1", "llama", uploaded_before=mid)) == set(uploaded[0][1])  # exclusive
    assert fulltext.got("t1", "llama", uploaded_after=uploaded[2][0] + dt.timedelta(microseconds=1)) == []
    assert set(fulltext.got("t1", "llama", uploaded_after=mid.replace(tzinfo=None))) == \
        set(uploaded[1][1]) | set(uploaded[2][1])  # naive = UTC (the server runs in UTC)


@pytest.mark.parametrize("hostile", ["acme*", "*", "acme,other", "ACME", "acme\\", 'acme" OR "1"="1', "acme "])
def test_tenant_isolation_with_hostile_ids(fulltext: FullTextHarness, hostile: str) -> None:
    doc, ids = fulltext.add("acme", ["secret merger budget"])
    _, other = fulltext.add("other", ["merger budget of other"])
    assert fulltext.got("acme", "merger budget") == ids
    assert fulltext.got(hostile, "merger budget") == []
    assert fulltext.got(hostile, "merger budget", document_ids=[doc.id]) == []
    assert fulltext.got("other", "merger budget", document_ids=[doc.id]) == []  # another tenant's document
    assert fulltext.got("other", "merger budget") == other
    assert fulltext.got("other", "secret") == []


def test_delete_and_reprocess_follow(fulltext: FullTextHarness) -> None:
    keep, kept = fulltext.add("t1", ["armadillo shell"])
    gone, _ = fulltext.add("t1", ["armadillo burrow"])
    fulltext.delete("t1", gone)
    assert fulltext.got("t1", "armadillo") == kept
    old = fulltext.ids("t1", keep.id)
    new = fulltext.reprocess("t1", keep, ["okapi stripes", "okapi forest"])
    assert fulltext.got("t1", "armadillo") == []  # the old chunks are gone
    assert set(fulltext.got("t1", "okapi")) == set(new) and not set(new) & set(old)


def test_soft_deleted_chunks_never_match(fulltext: FullTextHarness) -> None:
    doc, _ = fulltext.add("t1", ["marmalade jar"])
    fulltext.pg.soft_delete("t1", doc.id)  # not purged yet (the retention path)
    assert fulltext.got("t1", "marmalade") == []


def test_unicode_normalization_matches_both_ways(fulltext: FullTextHarness) -> None:
    _, ids = fulltext.add("t1", ["the financial PDF report"])
    assert fulltext.got("t1", "\ufb01nancial") == ids  # a ligature pasted from a PDF viewer
    assert fulltext.got("t1", "\uff30\uff24\uff26") == ids  # full-width letters
    _, ids2 = fulltext.add("t1", ["caf\u00e9 cr\u00e8me"])
    assert fulltext.got("t1", "cafe\u0301") == ids2  # decomposed accent, NFKC-composed
