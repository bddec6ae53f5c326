"""The one-statement hybrid search (querio.adapters.postgres.search) against a real PostgreSQL.

Pins correctness only (speed lives in bench/): BM25 against a Python reference implementation,
document frequencies kept at write time, the one-statement fusion against the domain's fusion of
the two legs, k rows under selective filters on every vector plan (the tenant's own HNSW index,
the exact scan, the shared index), and tenant isolation on each.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import psycopg
import pytest

from querio.adapters.postgres import search as search_sql
from querio.adapters.postgres.migrate import migrate
from querio.adapters.postgres.search import PostgresChunkSearch
from querio.adapters.postgres.store import BM25_B, BM25_K1, PostgresDocumentStore
from querio.adapters.postgres.vectors import HNSW_INDEX, PgVectorStore, tenant_index_name
from querio.models import ChunkRef, SearchFilters
from querio.retrieval.hybrid import rrf_fuse
from tests.fixtures.postgres import drafts, fresh_database, ingest, unit_vectors

pytestmark = pytest.mark.integration

BIG, SMALL = "acme", "globex"
NOFILTER = SearchFilters()
K = 10
WORDS = ("terminal", "output", "plot", "gnuplot", "axis", "label", "font", "size", "package", "install",
         "library", "compile", "server", "socket", "memory", "buffer", "index", "vector", "query", "search",
         "table", "column", "row", "matrix", "array", "function", "argument", "default", "option", "command",
         "shell", "script", "variable", "value", "string", "number", "integer", "float", "error", "warning",
         "debug", "log", "file", "directory", "path", "system", "user", "group", "network", "port",
         "address", "protocol", "request", "response", "header", "body")
QUERIES = ["How do I change the default output terminal?", "install the package library",
           "matrix column row index", "server socket port address", "error warning log file", "plot axis label font",
           "the", "zebra"]


def _texts(n: int, seed: int) -> list[str]:
    """Sentences over a small vocabulary with a skewed (Zipf) word choice: common lexemes have
    far more postings than rare ones, as in real text."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(WORDS) + 1)
    weights /= weights.sum()
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 30)), p=weights)) for _ in range(n)]


@dataclass
class Corpus:
    store: PostgresDocumentStore
    dsn: str
    vectors: dict[str, np.ndarray]  # tenant -> (n, 384), row-aligned with ids
    ids: dict[str, list[uuid.UUID]]
    docs: dict[str, list[uuid.UUID]]


PER_DOC = 100
SIZES = {BIG: 1200, SMALL: 300}


@pytest.fixture(scope="module")
def corpus(pg_server_dsn: str) -> Iterator[Corpus]:
    with fresh_database(pg_server_dsn, prefix="querio_hybrid") as dsn:
        migrate(dsn)
        store = PostgresDocumentStore(dsn, pool_max=4)
        vectors = {t: unit_vectors(n, seed=i + 5) for i, (t, n) in enumerate(SIZES.items())}
        docs: dict[str, list[uuid.UUID]] = {}
        for i, (tenant, n) in enumerate(SIZES.items()):
            texts = _texts(n, seed=i)
            docs[tenant] = []
            for start in range(0, n, PER_DOC):
                doc = ingest(store, tenant, texts[start:start + PER_DOC],
                             embeddings=vectors[tenant][start:start + PER_DOC],
                             pages=[1 + j % 20 for j in range(PER_DOC)], filename=f"{tenant}-{start}.pdf",
                             tags=["rare"] if start // PER_DOC == 1 else ["common"])
                docs[tenant].append(doc.id)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ANALYZE")
            ids = {t: [r[0] for r in conn.execute(
                "SELECT c.id FROM document_chunks c JOIN unnest(%s::uuid[]) WITH ORDINALITY AS o(id, n)"
                " ON o.id = c.document_id ORDER BY o.n, c.chunk_index", (docs[t],)).fetchall()] for t in SIZES}
        try:
            yield Corpus(store, dsn, vectors, ids, docs)
        finally:
            store.close()


# --- BM25 against a reference --------------------------------------------------------------------


def reference_bm25(dsn: str, tenant: str, query: str) -> dict[uuid.UUID, float]:
    """Okapi BM25 (k1 1.2, b 0.75, idf ln(1 + (N - df + 0.5)/(df + 0.5))) computed in Python over
    the tenant's live chunks. Only the tokenizer is PostgreSQL's (to_tsvector('english')); N,
    avgdl, df and tf are all counted here from the chunks themselves."""
    with psycopg.connect(dsn) as conn:
        lexemes = {r[0] for r in conn.execute("SELECT unnest(tsvector_to_array(to_tsvector('english', %s)))",
                                                (query,))}
        rows = conn.execute(
            "SELECT c.id, u.lexeme, cardinality(u.positions), d.deleted_at IS NULL AND"
            " d.processing_status = 'completed' FROM document_chunks c JOIN documents d ON d.id = c.document_id"
            " CROSS JOIN LATERAL unnest(c.content_tsv) u WHERE c.tenant_id = %s", (tenant,)).fetchall()
    tf: dict[uuid.UUID, dict[str, int]] = {}
    live: dict[uuid.UUID, bool] = {}
    for cid, lexeme, count, is_live in rows:
        tf.setdefault(cid, {})[lexeme] = count
        live[cid] = is_live
    n = len(tf)
    avgdl = sum(sum(t.values()) for t in tf.values()) / n
    df = {lx: sum(1 for t in tf.values() if lx in t) for lx in lexemes}
    scores: dict[uuid.UUID, float] = {}
    for cid, terms in tf.items():
        dl = sum(terms.values())
        s = 0.0
        for lx in lexemes & terms.keys():
            idf = math.log(1 + (n - df[lx] + 0.5) / (df[lx] + 0.5))
            f = terms[lx]
            s += idf * f * (BM25_K1 + 1) / (f + BM25_K1 * (1 - BM25_B + BM25_B * dl / avgdl))
        if s > 0 and live[cid]:
            scores[cid] = s
    return scores


def _assert_ranked_like(got: list, ref: dict[uuid.UUID, float], k: int) -> None:
    """Same chunks in the same order as the reference's top k; chunks whose reference scores tie
    (within float summation error) may come in either order."""
    expected = sorted(ref.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    assert len(got) == len(expected)
    for g, (cid, score) in zip(got, expected, strict=True):
        assert g.score == pytest.approx(score, rel=1e-9)
        assert g.chunk_id == cid or ref[g.chunk_id] == pytest.approx(score, rel=1e-9)
    assert {g.chunk_id for g in got} == {cid for cid, _ in expected} or expected[-1][1] == pytest.approx(
        sorted(ref.values(), reverse=True)[k] if len(ref) > k else -1, rel=1e-9)


@pytest.mark.parametrize(("exact", "blocks"), [(False, True), (False, False), (True, False)])
def test_bm25_ranks_like_the_reference(corpus: Corpus, exact: bool, blocks: bool) -> None:
    # blocks: the packed postings scored in numpy; else every list read whole from chunk_terms
    search = PostgresChunkSearch(PgVectorStore(corpus.store), budget=10**6,
                                 block_max_postings=10**9 if blocks else 0)
    for query in QUERIES:
        ref = reference_bm25(corpus.dsn, BIG, query)
        _assert_ranked_like(search.fulltext(BIG, query, 25, NOFILTER, exact=exact), ref, 25)
    assert search.fulltext(BIG, "the", 5, NOFILTER) == []  # stop words only
    assert corpus.store.fulltext_search(BIG, QUERIES[0], 25, NOFILTER) == search.fulltext(BIG, QUERIES[0], 25,
                                                                                            NOFILTER)


def test_bm25_with_cut_lists_scores_every_result_exactly(corpus: Corpus) -> None:
    """Posting lists read only 20 deep past a budget of 100 (the lexemes of 1,200 chunks have hundreds): the
    chunks returned still carry their exact BM25 over ALL query lexemes (the cut lexemes are
    probed), in score order."""
    search = PostgresChunkSearch(PgVectorStore(corpus.store), text_depth=20, text_rescore=60, budget=100,
                                 block_max_postings=0)  # the postings path, not the blocks
    with psycopg.connect(corpus.dsn) as conn:
        cut = conn.execute("SELECT count(*) FROM tenant_terms WHERE tenant_id = %s AND df > 20", (BIG,)).fetchone()
    assert cut is not None and cut[0] > 10  # the cut really happens
    for query in QUERIES[:6]:
        ref = reference_bm25(corpus.dsn, BIG, query)
        got = search.fulltext(BIG, query, 10, NOFILTER)
        assert len(got) == 10
        assert [g.score for g in got] == sorted((g.score for g in got), reverse=True)
        for g in got:
            assert g.score == pytest.approx(ref[g.chunk_id], rel=1e-9)


def test_bm25_filtered_ranks_like_the_reference(corpus: Corpus) -> None:
    search = PostgresChunkSearch(PgVectorStore(corpus.store), budget=10**6)
    doc = corpus.docs[BIG][2]
    with psycopg.connect(corpus.dsn) as conn:
        in_doc = {r[0] for r in conn.execute("SELECT id FROM document_chunks WHERE document_id = %s", (doc,))}
    ref = {c: s for c, s in reference_bm25(corpus.dsn, BIG, QUERIES[2]).items() if c in in_doc}
    _assert_ranked_like(search.fulltext(BIG, QUERIES[2], 10, SearchFilters(document_ids=[doc])), ref, 10)
    with psycopg.connect(corpus.dsn) as conn:  # a page range: the postings path, filtered before the depth
        on_pages = {r[0] for r in conn.execute("SELECT id FROM document_chunks WHERE page_number BETWEEN 3 AND 5")}
    for exact in (False, True):
        ref = {c: s for c, s in reference_bm25(corpus.dsn, BIG, QUERIES[3]).items() if c in on_pages}
        got = search.fulltext(BIG, QUERIES[3], 10, SearchFilters(page_from=3, page_to=5), exact=exact)
        _assert_ranked_like(got, ref, 10)


# Every shape of the filtered BM25 leg against the reference: "scan" reads postings testing each (a
# page range on the posting's own span, document-level filters by a join), "set" tests them against
# the hashed set of kept chunks, "probe" probes every kept chunk.
FILTER_SHAPES = [SearchFilters(page_from=3, page_to=5), SearchFilters(page_from=18),
                 SearchFilters(page_to=2), SearchFilters(page_from=3, page_to=9, tags=["common"]),
                 SearchFilters(tags=["rare"])]


@pytest.mark.parametrize(("shape", "scan_ratio"), [("scan", 10), ("set", 10), ("probe", 0), ("probe", 10),
                                                   ("probe", 10**9)])
def test_bm25_every_filter_shape_ranks_like_the_reference(corpus: Corpus, shape: search_sql.FilterShape,
                                                          scan_ratio: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # probing: every lexeme probed (0), the rare ones read whole (10), every one read whole (10**9)
    monkeypatch.setattr(search_sql, "PROBE_SCAN_RATIO", scan_ratio)
    with psycopg.connect(corpus.dsn) as conn:
        rows = conn.execute("SELECT c.id, c.page_number, d.tags FROM document_chunks c"
                            " JOIN documents d ON d.id = c.document_id WHERE c.tenant_id = %s", (BIG,)).fetchall()

    def keeps(f: SearchFilters, page: int, tags: list[str]) -> bool:
        return (f.page_from is None or page >= f.page_from) and (f.page_to is None or page <= f.page_to) \
            and (not f.tags or bool(set(f.tags) & set(tags)))

    with corpus.store.connection() as conn:
        for f in FILTER_SHAPES:
            kept = {cid for cid, page, tags in rows if keeps(f, page, tags)}
            for query in QUERIES[:6]:
                ref = {c: s for c, s in reference_bm25(corpus.dsn, BIG, query).items() if c in kept}
                stmt, params = search_sql.fulltext_statement(BIG, query, 10, f, budget=10**6, shape=shape)
                got = [ChunkRef(chunk_id=r[0], score=float(r[1])) for r in conn.execute(stmt, params).fetchall()]
                _assert_ranked_like(got, ref, 10)
                # lists cut 20 deep past a budget of 100: still k rows of the filter, each scored exactly
                stmt, params = search_sql.fulltext_statement(BIG, query, 10, f, depth=20, rescore=60, budget=100,
                                                             shape=shape)
                cut = [ChunkRef(chunk_id=r[0], score=float(r[1])) for r in conn.execute(stmt, params).fetchall()]
                assert len(cut) == min(10, len(ref))
                for g in cut:
                    assert g.score == pytest.approx(ref[g.chunk_id], rel=1e-9)


# the same shapes and more on the block-scored leg: document ids, tags, upload dates, page ranges
BLOCK_FILTERS = [*FILTER_SHAPES, SearchFilters(tags=["nosuchtag"]), SearchFilters(page_from=50),
                 SearchFilters(uploaded_after=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)),
                 SearchFilters(uploaded_before=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))]


def _kept_chunks(corpus: Corpus, tenant: str, f: SearchFilters) -> set[uuid.UUID]:
    """The tenant's chunk ids a filter keeps, by the filter's plain meaning (not by our SQL)."""
    with psycopg.connect(corpus.dsn) as conn:
        rows = conn.execute("SELECT c.id, c.document_id, c.page_number, d.tags, d.uploaded_at FROM document_chunks c"
                            " JOIN documents d ON d.id = c.document_id WHERE c.tenant_id = %s", (tenant,)).fetchall()
    return {cid for cid, doc, page, tags, uploaded in rows
            if (not f.document_ids or doc in f.document_ids) and (not f.tags or set(f.tags) & set(tags))
            and (f.page_from is None or page >= f.page_from) and (f.page_to is None or page <= f.page_to)
            and (f.uploaded_after is None or uploaded >= f.uploaded_after)
            and (f.uploaded_before is None or uploaded < f.uploaded_before)}


def test_the_block_scored_leg_ranks_like_the_reference_under_every_filter(corpus: Corpus) -> None:
    """term_blocks scored in numpy (migration 0009) against the Python BM25, per filter, for
    both tenants (another tenant's document id keeps nothing); the leg really answers (no
    fallback) and hands over to the postings path past its bound."""
    search = PostgresChunkSearch(PgVectorStore(corpus.store), block_max_postings=10**9)
    for tenant in (BIG, SMALL):
        filters = [NOFILTER, *BLOCK_FILTERS, SearchFilters(document_ids=[corpus.docs[BIG][3]]),
                   SearchFilters(document_ids=[corpus.docs[BIG][3]], page_from=4, page_to=12)]
        for f in filters:
            kept = _kept_chunks(corpus, tenant, f)
            for query in QUERIES[:6]:
                ref = {c: s for c, s in reference_bm25(corpus.dsn, tenant, query).items() if c in kept}
                _assert_ranked_like(search.fulltext(tenant, query, 10, f), ref, 10)
    with corpus.store.connection() as conn:
        assert search_sql.block_text_leg(conn, BIG, QUERIES[0], 10, NOFILTER) is not None
        assert search_sql.block_text_leg(conn, BIG, QUERIES[0], 10, NOFILTER, max_postings=10) is None
        assert search_sql.block_text_leg(conn, BIG, QUERIES[0], 10, NOFILTER, max_tenant_chunks=SIZES[BIG] - 1) is None
        # a document filter bounds the read by the chunks it keeps (100 here), whatever the tenant's lists
        one = SearchFilters(document_ids=[corpus.docs[BIG][0]])
        assert search_sql.block_text_leg(conn, BIG, QUERIES[0], 10, one, kept=100, max_tenant_chunks=1,
                                         max_postings=100 * search_sql.BLOCK_FILTER_LEXEMES) is not None


def _decoded_blocks(dsn: str) -> dict[tuple[str, str, uuid.UUID, int], tuple[int, int, int, int]]:
    """term_blocks unpacked to one entry per (tenant, lexeme, document, chunk_index)."""
    out = {}
    with psycopg.connect(dsn) as conn:
        for tenant, lexeme, doc, blob in conn.execute(
                "SELECT tenant_id, lexeme, document_id, postings FROM term_blocks"):
            for ci, tf, dl, first, last in np.frombuffer(blob, dtype=">i4").reshape(-1, 5).tolist():
                assert (tenant, lexeme, doc, ci) not in out  # no posting twice
                out[(tenant, lexeme, doc, ci)] = (tf, dl, first, last)
    return out


def _counted_df(dsn: str) -> dict[tuple[str, str], int]:
    with psycopg.connect(dsn) as conn:
        kept = {(t, lx): df for t, lx, df in conn.execute("SELECT tenant_id, lexeme, df FROM tenant_terms") if df}
        counted = {(t, lx): int(n) for t, lx, n in conn.execute(
            "SELECT tenant_id, lexeme, count(*) FROM chunk_terms GROUP BY 1, 2")}
        # every posting carries its chunk's page span (migration 0008), as page-range searches read it
        stale = conn.execute(
            "SELECT count(*) FROM chunk_terms t JOIN document_chunks c ON c.id = t.chunk_id"
            " WHERE t.page_first IS DISTINCT FROM c.page_number"
            " OR t.page_last IS DISTINCT FROM COALESCE(c.page_end, c.page_number)").fetchone()
        # the packed postings (migration 0009) hold exactly the postings of chunk_terms
        postings = {(t, lx, doc, ci): (tf, dl, first, last) for t, lx, doc, ci, tf, dl, first, last in conn.execute(
            "SELECT t.tenant_id, t.lexeme, c.document_id, c.chunk_index, t.tf, t.dl,"
            " COALESCE(t.page_first, 2147483647), COALESCE(t.page_last, -2147483648)"
            " FROM chunk_terms t JOIN document_chunks c ON c.id = t.chunk_id")}
    assert kept == counted
    assert stale == (0,)
    assert _decoded_blocks(dsn) == postings
    return kept


def test_document_frequencies_follow_every_write(pg_store: PostgresDocumentStore, pg_dsn: str) -> None:
    """tenant_terms.df equals the postings counted, after ingest, reprocess, page-range parts
    (a done part stored again changes nothing), soft delete (still counted, as before) and purge."""
    a = ingest(pg_store, BIG, ["alpha beta gamma", "beta gamma", "gamma delta"])
    ingest(pg_store, SMALL, ["alpha alpha", "omega"])
    assert _counted_df(pg_dsn)[(BIG, "gamma")] == 3
    pg_store.reset_for_reprocess(BIG, a.id)
    assert pg_store.try_start_processing(BIG, a.id, stale_after_s=600) is not None
    pg_store.complete_document(BIG, a.id, chunks=drafts(["epsilon gamma", "zeta"]), embeddings=None, info={})
    df = _counted_df(pg_dsn)
    assert df[(BIG, "gamma")] == 1 and (BIG, "beta") not in df and df[(SMALL, "alpha")] == 1
    b = ingest(pg_store, BIG, ["placeholder"])
    pg_store.reset_for_reprocess(BIG, b.id)
    assert pg_store.try_start_processing(BIG, b.id, stale_after_s=600) is not None
    pg_store.start_parts(BIG, b.id, [(1, 1), (2, 2)])
    assert (BIG, "placeholder") not in _counted_df(pg_dsn)
    for part, text in ((0, "kappa lambda"), (0, "kappa kappa"), (1, "lambda mu")):
        pg_store.claim_part(BIG, b.id, part, stale_after_s=0)
        chunk = drafts([text])[0].model_copy(update={"chunk_index": part * 1000})
        pg_store.store_part(BIG, b.id, part, chunks=[chunk], embeddings=None, stats={}, index_stride=1000)
    df = _counted_df(pg_dsn)
    assert df[(BIG, "kappa")] == 1 and df[(BIG, "lambda")] == 2
    pg_store.soft_delete(BIG, b.id)
    assert _counted_df(pg_dsn)[(BIG, "kappa")] == 1
    pg_store.purge_document(BIG, b.id)
    pg_store.purge_document(BIG, a.id)
    assert {t for t, _ in _counted_df(pg_dsn)} == {SMALL}


def test_bulk_load_writes_the_same_postings_and_blocks(pg_store: PostgresDocumentStore, pg_dsn: str) -> None:
    """The bench's loader (binary COPY, then the ingest path's statements set-wise) leaves the
    same statistics and packed postings as ingest, pages included."""
    docs = [(uuid.uuid4(), f"d{i}.pdf", ["rare"] if i else []) for i in range(3)]
    texts = _texts(30, seed=11)
    chunks = [(docs[i % 3][0], t, i // 3, 1 + i % 7) for i, t in enumerate(texts)]
    pg_store.bulk_load(BIG, docs, chunks, None)
    df = _counted_df(pg_dsn)
    assert df and all(t == BIG for t, _ in df)
    search = PostgresChunkSearch(PgVectorStore(pg_store), block_max_postings=10**9)
    for query in QUERIES[:6]:
        _assert_ranked_like(search.fulltext(BIG, query, 10, NOFILTER), reference_bm25(pg_dsn, BIG, query), 10)


def test_the_block_scored_leg_skips_deleted_and_reprocessing_documents(pg_store: PostgresDocumentStore,
                                                                        pg_dsn: str) -> None:
    """Liveness is the document's, read with the blocks: a soft-deleted document and one being
    reprocessed return nothing (their blocks stay until purge or the new chunks replace them);
    another tenant's same words never come back."""
    search = PostgresChunkSearch(PgVectorStore(pg_store), block_max_postings=10**9)
    kept = ingest(pg_store, BIG, ["gamma delta", "delta epsilon"])
    gone = ingest(pg_store, BIG, ["gamma gamma gamma", "gamma zeta"])
    hidden = ingest(pg_store, BIG, ["gamma eta"])
    ingest(pg_store, SMALL, ["gamma gamma", "gamma theta"])
    chunk_docs = {}
    with psycopg.connect(pg_dsn) as conn:
        chunk_docs = dict(conn.execute("SELECT id, document_id FROM document_chunks").fetchall())
    assert {chunk_docs[r.chunk_id] for r in search.fulltext(BIG, "gamma", 10, NOFILTER)} == \
        {kept.id, gone.id, hidden.id}
    pg_store.soft_delete(BIG, gone.id)
    pg_store.reset_for_reprocess(BIG, hidden.id)
    got = search.fulltext(BIG, "gamma", 10, NOFILTER)
    assert {chunk_docs[r.chunk_id] for r in got} == {kept.id}
    _assert_ranked_like(got, reference_bm25(pg_dsn, BIG, "gamma"), 10)


def test_the_block_scored_leg_handles_the_sparse_chunk_indexes_of_page_range_parts(
        pg_store: PostgresDocumentStore, pg_dsn: str) -> None:
    """A large PDF's parts number their chunks PART_INDEX_STRIDE (100,000) apart: the leg still
    scores every chunk (sorting instead of a dense array of millions of slots), beside a plain
    document, and ranks like the reference."""
    from querio.ingest.parts import PART_INDEX_STRIDE

    texts = _texts(60, seed=21)
    ingest(pg_store, BIG, texts[:20])
    doc = ingest(pg_store, BIG, ["placeholder"])
    pg_store.reset_for_reprocess(BIG, doc.id)
    assert pg_store.try_start_processing(BIG, doc.id, stale_after_s=600) is not None
    parts = 8
    pg_store.start_parts(BIG, doc.id, [(p + 1, p + 1) for p in range(parts)])
    for part in range(parts):
        assert pg_store.claim_part(BIG, doc.id, part, stale_after_s=0) is not None
        chunks = [c.model_copy(update={"chunk_index": part * PART_INDEX_STRIDE + i})
                  for i, c in enumerate(drafts(texts[20 + 5 * part:25 + 5 * part]))]
        pg_store.store_part(BIG, doc.id, part, chunks=chunks, embeddings=None, stats={},
                            index_stride=PART_INDEX_STRIDE)
    search = PostgresChunkSearch(PgVectorStore(pg_store), block_max_postings=10**9)
    for query in QUERIES[:6]:
        _assert_ranked_like(search.fulltext(BIG, query, 10, NOFILTER), reference_bm25(pg_dsn, BIG, query), 10)
    _counted_df(pg_dsn)  # the parts' blocks hold exactly their postings


def test_a_tenant_index_search_sets_its_hnsw_settings_on_the_session_once(corpus: Corpus, indexed: PgVectorStore
                                                                        ) -> None:
    """The tenant's own index needs no transaction: ef_search is put on the pooled connection's
    session when it differs (a wide page range raises it to the maximum, the next plain search
    puts it back), so each search still runs with its own plan's value."""
    store = PostgresDocumentStore(corpus.dsn, pool_min=1, pool_max=1)  # one connection: its session is seen
    try:
        vectors = PgVectorStore(store, tenant_index_min_rows=1000, exact_scan_max_rows=0)
        search = PostgresChunkSearch(vectors)
        q = _near(corpus, BIG, 5)

        def session_ef() -> str:
            with store.connection() as conn:
                row = conn.execute("SHOW hnsw.ef_search").fetchone()
            return str(row[0]) if row else ""

        wide = SearchFilters(page_from=1, page_to=15)
        for f in (NOFILTER, wide, NOFILTER):
            with store.connection() as conn:
                plan = vectors.plan(conn, BIG, f, 4 * K)
            assert plan.kind == "tenant_hnsw"
            got = search.hybrid(BIG, QUERIES[0], q, k=K, filters=f, alpha=0.5, rrf_k=60, candidates=4 * K)
            assert len(got) == K
            assert session_ef() == str(plan.ef_search)
    finally:
        store.close()


# --- one statement against the domain's fusion ----------------------------------------------------


Fused = list[tuple[uuid.UUID, float, int | None, int | None]]


def _domain_fusion(corpus: Corpus, vectors: PgVectorStore, tenant: str, query: str, v: np.ndarray | None,
                   k: int, filters: SearchFilters, alpha: float) -> Fused:
    """The multi-round-trip path: each leg alone, rrf_fuse, then the fetch (QuerioService._fuse_here)."""
    n = 4 * k
    vector_refs = vectors.query(tenant, v, n, filters) if alpha > 0 and v is not None else []
    text_refs = corpus.store.fulltext_search(tenant, query, n, filters) if alpha < 1 else []
    fused = rrf_fuse(vector_refs, text_refs, alpha=alpha, rrf_k=60, limit=k)
    chunks = corpus.store.fetch_chunks(tenant, [f.chunk_id for f in fused])
    return [(f.chunk_id, f.score, f.vector_rank, f.text_rank) for f in fused if f.chunk_id in chunks]


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_one_statement_equals_the_domain_fusion(corpus: Corpus, alpha: float) -> None:
    vectors = PgVectorStore(corpus.store)  # exact plans: both paths are deterministic
    search = PostgresChunkSearch(vectors)
    filters = [NOFILTER, SearchFilters(tags=["rare"]), SearchFilters(page_from=3, page_to=5),
               SearchFilters(document_ids=[corpus.docs[BIG][1]])]
    for i, query in enumerate(QUERIES):
        v = corpus.vectors[BIG][i * 37]
        for f in filters:
            got = search.hybrid(BIG, query, v, k=K, filters=f, alpha=alpha, rrf_k=60, candidates=4 * K)
            want = _domain_fusion(corpus, vectors, BIG, query, v, K, f, alpha)
            assert [(r.chunk.id, r.score, r.vector_rank, r.text_rank) for r in got] == want
            fetched = corpus.store.fetch_chunks(BIG, [r.chunk.id for r in got])
            assert all(fetched[r.chunk.id] == r.chunk for r in got)


# --- vector plans: k rows under filters, and tenant isolation ---------------------------------------


@pytest.fixture(scope="module")
def indexed(corpus: Corpus) -> PgVectorStore:
    """BIG gets its own HNSW index (1,200 rows > 1,000); SMALL (300) does not."""
    vectors = PgVectorStore(corpus.store, tenant_index_min_rows=1000)
    assert vectors.index_due(BIG) and not vectors.index_due(SMALL)
    assert vectors.ensure_tenant_indexes() == [BIG]
    assert not vectors.index_due(BIG) and not vectors.ensure_tenant_index(BIG)  # idempotent
    return vectors


def _near(corpus: Corpus, tenant: str, row: int) -> np.ndarray:
    q = corpus.vectors[tenant][row] + np.random.default_rng(row).standard_normal(384).astype(np.float32) * 0.02
    return q / np.linalg.norm(q)


def test_the_tenant_index_is_planned_with_the_tenant_as_a_literal(corpus: Corpus, indexed: PgVectorStore) -> None:
    explained = indexed.explain(BIG, _near(corpus, BIG, 0), K, NOFILTER, hnsw=True)
    assert tenant_index_name(BIG) in explained and HNSW_INDEX not in explained
    assert tenant_index_name(BIG) not in indexed.explain(SMALL, _near(corpus, SMALL, 0), K, NOFILTER, hnsw=True)
    with corpus.store.connection() as conn:
        assert indexed.plan(conn, BIG, NOFILTER, K).kind == "tenant_hnsw"
        assert indexed.plan(conn, SMALL, NOFILTER, K).kind == "exact"
        assert indexed.plan(conn, BIG, SearchFilters(document_ids=[corpus.docs[BIG][0]]), K).kind == "exact"


def test_a_filter_keeping_few_rows_is_scanned_exactly(corpus: Corpus, indexed: PgVectorStore) -> None:
    """A tenant with its own HNSW index, under a filter that keeps at most ``exact_scan_max_rows``
    rows (``filter_reach``), gets the exact scan of those rows: the exact nearest, k of them, in
    one statement (no HNSW pass whose candidates the filter would mostly reject)."""
    rare, pages = SearchFilters(tags=["rare"]), SearchFilters(page_from=2, page_to=3)
    with corpus.store.connection() as conn:
        assert indexed.plan(conn, BIG, rare, K).kind == "exact"  # 100 rows of 1,200
        assert indexed.plan(conn, BIG, pages, K).kind == "exact"  # 120 rows
        assert indexed.plan(conn, BIG, NOFILTER, K).kind == "tenant_hnsw"
        narrow = PgVectorStore(corpus.store, tenant_index_min_rows=1000, exact_scan_max_rows=70)
        assert narrow.plan(conn, BIG, rare, K).kind == "tenant_hnsw"  # keeps more than 70 rows
        # the smaller of the two parts' counts: page 2 has 60 rows (5 of them tagged)
        assert narrow.plan(conn, BIG, SearchFilters(page_from=2, page_to=2, tags=["rare"]), K).kind == "exact"
    tagged = np.arange(PER_DOC, 2 * PER_DOC)  # the "rare" document's rows
    for row in (120, 170):
        q = _near(corpus, BIG, row)
        truth = [corpus.ids[BIG][i] for i in tagged[np.argsort(-(corpus.vectors[BIG][tagged] @ q))[:K]]]
        assert [r.chunk_id for r in indexed.query(BIG, q, K, rare)] == truth
        got = PostgresChunkSearch(indexed).hybrid(BIG, "zebra", q, k=K, filters=rare, alpha=1.0, rrf_k=60,
                                                  candidates=4 * K)
        assert [r.chunk.id for r in got] == truth


PLANS = {
    "tenant_hnsw": dict(tenant_index_min_rows=1000),
    "exact": dict(exact_scan_max_rows=10**9),
    "shared_hnsw": dict(exact_scan_max_rows=0),
}


@pytest.mark.parametrize("plan", PLANS)
def test_filtered_hybrid_returns_k_rows_of_the_tenant_only(corpus: Corpus, indexed: PgVectorStore, plan: str) -> None:
    """Selective filters (one document, a page range: 10% of rows, a tag: one document in 12)
    still give k rows from the vector leg alone, on every plan of pgvector 0.6.2 (the exact
    fallback covers a short HNSW answer); no plan ever returns another tenant's chunk."""
    vectors = PgVectorStore(corpus.store, **PLANS[plan])  # type: ignore[arg-type]
    if plan == "shared_hnsw":  # the shared index must answer, so the tenant's own is hidden
        vectors._tenants[BIG] = (float("inf"), SIZES[BIG], False)
    search = PostgresChunkSearch(vectors)
    own = {t: set(ids) for t, ids in corpus.ids.items()}
    with psycopg.connect(corpus.dsn) as conn:
        pages = {r[0]: r[1] for r in conn.execute("SELECT id, page_number FROM document_chunks")}
    cases = [NOFILTER, SearchFilters(document_ids=[corpus.docs[BIG][4]]), SearchFilters(page_from=2, page_to=3),
             SearchFilters(tags=["rare"])]
    for tenant in (BIG, SMALL):
        for f in cases:
            for row in (3, 150):
                q = _near(corpus, tenant, row)
                got = search.hybrid(tenant, "zebra", q, k=K, filters=f, alpha=1.0, rrf_k=60, candidates=4 * K)
                ids = [r.chunk.id for r in got]
                assert set(ids) <= own[tenant]
                if f.document_ids and tenant == SMALL:
                    assert ids == []  # another tenant's document: nothing, not an error
                    continue
                assert len(ids) == K, (tenant, f)
                if f.page_from:
                    assert {pages[i] for i in ids} <= {2, 3}
                text = search.hybrid(tenant, QUERIES[3], None, k=K, filters=f, alpha=0.0, rrf_k=60, candidates=4 * K)
                assert {r.chunk.id for r in text} <= own[tenant] and text
                both = search.hybrid(tenant, QUERIES[3], q, k=K, filters=f, alpha=0.5, rrf_k=60, candidates=4 * K)
                assert {r.chunk.id for r in both} <= own[tenant] and len(both) == K
