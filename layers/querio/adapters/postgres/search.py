"""The hybrid-search SQL: both legs, RRF fusion and the chunk fetch in ONE statement.

``PostgresChunkSearch.hybrid`` answers a whole search in one round trip (the domain's other
path, a vector service plus the full-text leg fused in Python, is ``QuerioService._retrieve``
with ``rrf_fuse``; both give the same ranking, tests/integration/test_hybrid_search.py):

* the vector leg: the ``n`` nearest live chunks of the tenant, under the plan
  ``PgVectorStore.plan`` picks (the tenant's own HNSW index, an exact scan, or the shared
  index), filters inside the scan;
* the full-text leg: the ``n`` best live chunks by Okapi BM25 (:func:`text_leg`);
* RRF fusion exactly as ``querio.retrieval.hybrid.rrf_fuse`` (same float operations, same
  tie-breaks), then the ``k`` best joined with their document for the answer.

Filters and the tenant apply inside each leg, before its LIMIT. On pgvector < 0.8 an HNSW
vector leg that yields fewer than ``n`` rows is redone with the exact scan (a second
statement, only then).

BM25 at scale (migration 0005). Document frequencies come from ``tenant_terms`` (kept at write
time), N and avgdl from ``tenant_usage``. Without filters, the leg does not sum every posting
of every query lexeme. The query's rarest lexemes are read whole, rarest first, while their
postings fit in ``text_budget`` (they decide which chunks score high); each other lexeme's
``text_depth`` best postings by impact (the BM25 term-frequency part at a reference length) come
from ``idx_chunk_terms_impact``. The chunks met are scored with the exact BM25 of the lexemes they
were met with, the ``text_rescore`` best get the exact contributions of the cut lexemes added
(probes by chunk and lexeme), and those are ranked. A query whose lexemes all fit in the budget
(every query on a small tenant) is ranked exactly as full BM25; otherwise the leg is measured
against full BM25 in ``make bench`` (recall@10).

Filters. ``filter_reach`` (one bounded read: the kept documents' chunk counts, the page index)
says about how many chunks a filter keeps, once per search for both legs (``FilterShape``). At
most ``PROBE_MAX_CHUNKS``: every kept chunk is scored exactly (a lexeme with few postings read
whole and tested against the hashed set of kept chunks, the others probed per kept chunk). More:
the postings path, reading only postings that pass the filter: a page range is tested on the
posting's own page span inside the index-only scan (migration 0008), document-level filters
(documents, tags, dates) against the hashed set of kept chunks up to ``CHUNK_SET_MAX``, past it by
joining the posting to its chunk and document. The vector leg scans the kept rows exactly when
they are at most ``exact_scan_max_rows`` (``PgVectorStore.plan``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from psycopg import sql

from querio.adapters.postgres.store import (
    BM25_B,
    BM25_K1,
    LIVE_CHUNKS,
    LIVE_WHERE,
    document_filters,
    filter_reach,
    search_filter_sql,
)
from querio.adapters.postgres.vectors import PgVectorStore, VectorPlan, query_vector
from querio.models import ChunkRef, SearchFilters
from querio.ports import RankedChunk, StoredChunk, Vector

#: postings of the query's rarest lexemes read whole (lexemes taken rarest first while they fit)
TEXT_BUDGET = 20_000
#: postings read from each other lexeme, best impact first
TEXT_DEPTH = 200
#: chunks whose partial score is among this many best get their missing lexemes added
TEXT_RESCORE = 200
#: a filter keeping at most this many chunks (``filter_reach``) is scored by probing each kept
#: chunk for each query lexeme; past it, probes cost more than reading the postings (10K tenant:
#: 350 chunks probed in ~3 ms, every chunk probed 2x slower than the postings path)
PROBE_MAX_CHUNKS = 2_000
#: probing the kept chunks, a lexeme with at most this many postings per kept chunk is read whole
#: instead (an index-only scan entry costs about a tenth of a probe's three-page descent). 100K
#: tenant, BM25 SQL p50 probing all / with this split: one document 11.0 / 9.8 ms, a tag 23.5 / 18.0 ms
#: (8 and 16 alike; reading every lexeme whole: 26.6 / 17.3 ms)
PROBE_SCAN_RATIO = 10
#: a filter keeping at most this many chunks (past ``PROBE_MAX_CHUNKS``) has its postings tested
#: against the set of chunks it keeps (hashed once per query); past it, each posting is joined to
#: its chunk and document (pays per posting read, but reads few: a filter keeping a large share).
#: 100K tenant, a tag on 1,444 chunks: joined 250-300 ms, hashed 25-35 ms, probed 33 ms
CHUNK_SET_MAX = 20_000
#: how ``text_leg`` applies a filter: no filter or a wide one ("scan": read postings, testing
#: each), a filter keeping up to ``CHUNK_SET_MAX`` chunks ("set"), up to ``PROBE_MAX_CHUNKS`` ("probe")
FilterShape = Literal["scan", "set", "probe"]
#: the block-scored leg (:func:`block_text_leg`) answers while the query's lexemes have at most this
#: many postings in the tenant (their document frequencies summed), or while a document-level
#: filter keeps at most ``BLOCK_MAX_POSTINGS // BLOCK_FILTER_LEXEMES`` chunks; past both, the
#: impact-ordered postings (``text_leg``), bounded but approximate. 20 bytes a posting; measured
#: (read and scored, quiet): 10K-chunk tenant ~9K postings 2 ms; 100K tenant ~91K postings 13-16 ms,
#: its largest query 220K postings 26-34 ms (the bounded path, same run before this bound: text-only
#: p99 86.6 ms, and one query's recall@10 0.2).
#: 500K keeps every query of a 100K-chunk tenant exact; at 1M most queries take the bounded path
BLOCK_MAX_POSTINGS = 500_000
#: ... and while the tenant holds at most this many chunks (unfiltered or page-range searches). The
#: blocks a query reads grow with its postings (~24 a row), and a big tenant's do not stay in memory:
#: 1M-chunk tenant, queries under the postings bound read up to ~20K rows (500K postings at ~24 a row,
#: estimated), hybrid p99 1,484 ms against
#: 108 ms on the bounded path (bench/results/2026-12-06-s10-1m.md, 2026-12-06-issue12-1m.md)
BLOCK_MAX_TENANT_CHUNKS = 250_000
#: query lexemes assumed when bounding a document filter's postings by the chunks it keeps
BLOCK_FILTER_LEXEMES = 32
#: a packed posting (migration 0009): chunk_index, tf, dl, first page, last page, big-endian int4
_POSTING_FIELDS = 5
_POSTING_INT = np.dtype(">i4")
#: RRF tie-break for a chunk one leg did not return (``rrf_fuse``'s ``1 << 30``)
_NO_RANK = 1 << 30

_BM25 = ("{q}.idf * {p}.tf * (%(k1)s + 1) / ({p}.tf + %(k1)s * (1 - %(b)s + %(b)s * {p}.dl / st.avgdl))")


def _bm25(posting: str) -> sql.SQL:
    return sql.SQL(_BM25.format(q="q", p=posting))


# The tenant's statistics and the query's lexemes with their idf (one row per lexeme the
# tenant has; a stop-word-only query has none).
_TEXT_STATS = (
    "t_st AS MATERIALIZED (SELECT GREATEST(chunk_rows, 1)::float8 AS n,"
    "  GREATEST(term_occurrences, 1)::float8 / GREATEST(chunk_rows, 1) AS avgdl"
    "  FROM tenant_usage WHERE tenant_id = %(tenant)s),")
_TEXT_TERMS = (
    _TEXT_STATS +
    # bit: the lexeme's flag in a chunk's "met with" mask (lexemes past the 62nd have none: never "met")
    # depth: the postings read from the lexeme's list, best first: the rarest lexemes are read whole
    # while their postings fit in the budget (they decide which chunks score high), the others
    # ``depth`` deep
    " t_q AS MATERIALIZED (SELECT x.*, CASE WHEN sum(x.df) OVER (ORDER BY x.df, x.n) <= %(budget)s"
    "  THEN x.df ELSE %(depth)s END AS depth FROM"
    "  (SELECT tt.lexeme, tt.df, ln(1 + (st.n - tt.df + 0.5) / (tt.df + 0.5)) AS idf,"
    "  l.n, CASE WHEN l.n <= 62 THEN 1::int8 << (l.n::int - 1) ELSE 0 END AS bit"
    "  FROM unnest(tsvector_to_array(to_tsvector('english', %(query)s))) WITH ORDINALITY AS l(lexeme, n)"
    "  JOIN tenant_terms tt ON tt.tenant_id = %(tenant)s AND tt.lexeme = l.lexeme AND tt.df > 0"
    "  CROSS JOIN t_st st) x),"
)


_BLOCK_READ = (
    "WITH " + _TEXT_STATS
    + " t_q AS MATERIALIZED (SELECT l.n, tt.lexeme, tt.df, ln(1 + (st.n - tt.df + 0.5) / (tt.df + 0.5)) AS idf"
    "  FROM unnest(tsvector_to_array(to_tsvector('english', %(query)s))) WITH ORDINALITY AS l(lexeme, n)"
    "  JOIN tenant_terms tt ON tt.tenant_id = %(tenant)s AND tt.lexeme = l.lexeme AND tt.df > 0"
    "  CROSS JOIN t_st st),"
    " t_sum AS MATERIALIZED (SELECT COALESCE(sum(df), 0) AS total FROM t_q)"
    # one row even when the blocks are not read (too many postings): the caller learns why
    " SELECT s.total, st.avgdl, x.n, x.idf, uuid_send(x.document_id), x.postings, st.n FROM t_sum s CROSS JOIN t_st st"
    " LEFT JOIN LATERAL (SELECT q.n, q.idf, b.document_id, b.chunk_lo, b.postings FROM t_q q"
    "  JOIN term_blocks b ON b.tenant_id = %(tenant)s AND b.lexeme = q.lexeme"
    "  JOIN documents d ON d.id = b.document_id AND d.tenant_id = b.tenant_id"
    "  WHERE ((s.total <= %(max)s AND st.n <= %(max_chunks)s) OR %(bounded)s)"
    "  AND d.deleted_at IS NULL AND d.processing_status = 'completed'"
    "  {filters}) x ON true ORDER BY x.n, x.document_id, x.chunk_lo")


@dataclass(frozen=True)
class TextHits:
    """The full-text leg scored in the adapter: chunks as (document, chunk_index) with their BM25,
    the ``n`` best and any tied with the ``n``-th (the statement ranks them by score, then id)."""

    documents: list[uuid.UUID]
    indexes: list[int]
    scores: list[float]


def block_text_leg(conn: Any, tenant_id: str, query: str, n: int, filters: SearchFilters, *,
                   kept: int | None = None, max_postings: int = BLOCK_MAX_POSTINGS,
                   max_tenant_chunks: int = BLOCK_MAX_TENANT_CHUNKS) -> TextHits | None:
    """Exact Okapi BM25 over the packed postings (``term_blocks``, migration 0009) in one read,
    scored with numpy; ``None`` when the tenant holds more than ``max_tenant_chunks`` chunks or the
    query's lexemes have more than ``max_postings`` postings
    in the tenant (and no document filter keeping few chunks bounds the read): then ``text_leg``.

    Same statistics as ``text_leg`` (df from ``tenant_terms``, N and avgdl from ``tenant_usage``)
    and the same float operations per posting; liveness and the document-level filters apply to
    the documents whose blocks are read, a page range to each posting's page span. ``kept``: how
    many chunks the filter keeps (``filter_reach``), if known."""
    where, params = search_filter_sql(filters, documents_only=True)
    bounded = (kept is not None and document_filters(filters) and filters.page_from is None
               and filters.page_to is None and kept * BLOCK_FILTER_LEXEMES <= max_postings)
    params.update(tenant=tenant_id, query=_text(query), max=max_postings, bounded=bounded,
                  max_chunks=max_tenant_chunks)
    # binary: the postings arrive as bytes (text would hex-encode them: 1.9 → 1.3 ms on a 10K tenant)
    rows = conn.execute(sql.SQL(_BLOCK_READ).format(filters=where), params, binary=True).fetchall()
    if not rows:  # the tenant has no statistics row: nothing was ever stored
        return TextHits([], [], [])
    total, avgdl, chunks = rows[0][0], rows[0][1], rows[0][6]
    if (total > max_postings or chunks > max_tenant_chunks) and not bounded:
        return None
    blocks = [r for r in rows if r[5] is not None]
    if n <= 0 or not blocks:
        return TextHits([], [], [])
    postings = np.frombuffer(b"".join(r[5] for r in blocks), dtype=_POSTING_INT).reshape(-1, _POSTING_FIELDS)
    counts = np.array([len(r[5]) for r in blocks], dtype=np.intp) // (_POSTING_FIELDS * _POSTING_INT.itemsize)
    # documents by their 16 bytes (hashing bytes is cheaper than hashing UUID objects)
    ordinal: dict[bytes, int] = {}
    block_doc = np.array([ordinal.setdefault(r[4], len(ordinal)) for r in blocks], dtype=np.intp)
    index = postings[:, 0].astype(np.intp)
    tf = postings[:, 1].astype(np.float64)
    dl = postings[:, 2].astype(np.float64)
    idf = np.repeat(np.array([r[3] for r in blocks], dtype=np.float64), counts)
    # text_leg's expression, operation for operation (_BM25)
    score = idf * tf * (BM25_K1 + 1) / (tf + BM25_K1 * (1 - BM25_B + BM25_B * dl / avgdl))
    # a chunk's slot: its document's base plus its chunk_index, the bases packed by each document's
    # highest index met (one array about the size of the documents read: no sort, no sparse range)
    starts = np.cumsum(counts) - counts
    width = np.zeros(len(ordinal), dtype=np.intp)
    np.maximum.at(width, block_doc, np.maximum.reduceat(index, starts) + 1)
    base = np.cumsum(width) - width
    slot = np.repeat(base[block_doc], counts) + index
    if filters.page_from is not None or filters.page_to is not None:
        keep = np.ones(len(slot), dtype=bool)
        if filters.page_from is not None:
            keep &= postings[:, 4] >= filters.page_from
        if filters.page_to is not None:
            keep &= postings[:, 3] <= filters.page_to
        slot, score = slot[keep], score[keep]
    span = int(width.sum())
    held: np.ndarray[Any, Any]
    sums: np.ndarray[Any, Any]
    if span <= 4 * len(slot) + 65_536:  # dense: one array over the slots, no sort
        totals = np.zeros(span)
        np.add.at(totals, slot, score)  # in posting order: each chunk's sum in lexeme order
        held = np.flatnonzero(totals)  # every posting scores > 0 (tf ≥ 1, idf > 0)
        sums = totals[held]
    else:  # sparse: page-range parts number their chunks PART_INDEX_STRIDE apart, so sort instead
        held, where_held = np.unique(slot, return_inverse=True)
        sums = np.bincount(where_held, weights=score, minlength=len(held))
    if len(held) > n:
        best = sums >= np.partition(sums, len(sums) - n)[len(sums) - n]
        chosen, chosen_sums = held[best], sums[best]
    else:
        chosen, chosen_sums = held, sums
    doc_of = np.searchsorted(base, chosen, side="right") - 1
    documents = list(ordinal)
    return TextHits(documents=[uuid.UUID(bytes=documents[int(d)]) for d in doc_of],
                    indexes=[int(i) for i in chosen - base[doc_of]], scores=[float(x) for x in chosen_sums])


def hits_leg(hits: TextHits) -> tuple[sql.Composed, dict[str, Any]]:
    """``text_leg(id, rank, score)`` from chunks already scored (:func:`block_text_leg`): the
    ``%(n)s`` best that are still live, ranked by score, then chunk id (as ``text_leg``)."""
    body = sql.SQL(
        " text_leg AS MATERIALIZED (SELECT c.id, row_number() OVER (ORDER BY x.score DESC, c.id) AS rank, x.score"
        "  FROM unnest(%(t_doc)s::uuid[], %(t_ci)s::int[], %(t_score)s::float8[]) AS x(doc, ci, score)"
        "  JOIN {live} ON c.document_id = x.doc AND c.chunk_index = x.ci WHERE {live_where}"
        "  ORDER BY x.score DESC, c.id LIMIT %(n)s)").format(live=LIVE_CHUNKS, live_where=LIVE_WHERE)
    return body, {"t_doc": hits.documents, "t_ci": hits.indexes, "t_score": hits.scores}


def fulltext_refs(conn: Any, tenant_id: str, query: str, n: int, filters: SearchFilters, *, exact: bool = False,
                  depth: int = TEXT_DEPTH, rescore: int = TEXT_RESCORE, budget: int = TEXT_BUDGET,
                  max_postings: int = BLOCK_MAX_POSTINGS) -> list[ChunkRef]:
    """The full-text leg alone, best first: the block-scored leg when it answers, else
    ``text_leg`` (``exact``: every posting summed in SQL, the reference)."""
    if n <= 0 or not query.strip():
        return []
    kept = None if filters.is_empty() else filter_reach(conn, tenant_id, filters, CHUNK_SET_MAX)
    hits = None if exact else block_text_leg(conn, tenant_id, query, n, filters, kept=kept,
                                              max_postings=max_postings)
    if hits is not None:
        body, params = hits_leg(hits)
        params.update(tenant=tenant_id, n=n)
        stmt = sql.SQL("WITH {} SELECT id, score FROM text_leg ORDER BY rank").format(body)
    else:
        stmt, params = fulltext_statement(tenant_id, query, n, filters, exact=exact, depth=depth, rescore=rescore,
                                          budget=budget, shape=filter_shape(kept))
    return [ChunkRef(chunk_id=r[0], score=float(r[1])) for r in conn.execute(stmt, params).fetchall()]


def filter_shape(kept: int | None) -> FilterShape:
    """The shape of ``text_leg`` for a filter keeping about ``kept`` chunks (None: no filter)."""
    if kept is None or kept > CHUNK_SET_MAX:
        return "scan"
    return "probe" if kept <= PROBE_MAX_CHUNKS else "set"


def text_leg(filters: SearchFilters, *, exact: bool = False, depth: int = TEXT_DEPTH,
             rescore: int = TEXT_RESCORE, budget: int = TEXT_BUDGET,
             shape: FilterShape = "scan") -> tuple[sql.Composed, dict[str, Any]]:
    """CTEs ending in ``text_leg(id, rank, score)``: the ``%(n)s`` best live chunks of
    ``%(tenant)s`` for ``%(query)s`` by BM25, rank 1 first (ties by chunk id).

    Three shapes: a selective filter (any filter keeping few chunks, ``shape`` "probe": see
    :func:`filter_shape`) scores every chunk it keeps, exactly; ``exact`` sums every posting of
    the query's lexemes (the reference); otherwise each lexeme's ``depth`` best postings (those
    passing the filters, if any) are read best-impact first and the ``rescore`` best chunks
    completed (module docstring). A page range is tested on the postings themselves (their page
    span, migration 0008: inside the index-only scan); document-level filters (documents, tags,
    dates) past the probing size by the set of chunks they keep (``shape`` "set"), or past
    ``CHUNK_SET_MAX`` by joining each posting to its chunk and document."""
    where, params = search_filter_sql(filters)
    params.update(k1=BM25_K1, b=BM25_B, depth=depth, rescore=rescore, budget=budget)
    ranked = (" text_leg AS MATERIALIZED (SELECT s.chunk_id AS id,"
              "  row_number() OVER (ORDER BY s.score DESC, s.chunk_id) AS rank, s.score FROM {scored}"
              "  ORDER BY s.score DESC, s.chunk_id LIMIT %(n)s)")
    if shape == "probe" and not filters.is_empty():
        # the filtered chunks (through the document indexes), each probed for the query's lexemes
        body = sql.SQL(
            _TEXT_TERMS
            + " t_c AS MATERIALIZED (SELECT c.id FROM {live} WHERE {live_where} {filters}),"
            # LATERAL with OFFSET 0 (no pull-up): one primary-key probe per (chunk, lexeme). As a
            # plain join the planner,
            # misjudging t_c, hashed the tenant's whole postings table (10K tenant, 350 chunks
            # of one document: 460K postings read, 199 ms; probed: a few ms)
            " t_cn AS MATERIALIZED (SELECT count(*) AS n FROM t_c),"
            " t_scored AS (SELECT chunk_id, sum(score) AS score FROM ("
            "  SELECT t_c.id AS chunk_id, {bm25} AS score FROM t_c CROSS JOIN t_q q CROSS JOIN t_cn"
            "  CROSS JOIN LATERAL (SELECT p.tf, p.dl FROM chunk_terms p WHERE p.chunk_id = t_c.id"
            "   AND p.lexeme = q.lexeme OFFSET 0) t CROSS JOIN t_st st WHERE q.df > %(scan_ratio)s * t_cn.n"
            # a lexeme with few postings against the kept chunks: read its postings whole instead
            # (an index-only scan), keeping the kept chunks' (hashed once, as in the "set" shape)
            "  UNION ALL SELECT t.chunk_id, {bm25} AS score FROM t_q q CROSS JOIN t_cn CROSS JOIN t_st st"
            "  CROSS JOIN LATERAL (SELECT p.chunk_id, p.tf, p.dl FROM chunk_terms p WHERE p.tenant_id = %(tenant)s"
            "   AND p.lexeme = q.lexeme AND (p.chunk_id IN (SELECT id FROM t_c)) IS TRUE) t"
            "  WHERE q.df <= %(scan_ratio)s * t_cn.n) u GROUP BY chunk_id),"
            + ranked.format(scored="t_scored s")
        ).format(bm25=_bm25("t"), live=LIVE_CHUNKS, live_where=LIVE_WHERE, filters=where)
        params["scan_ratio"] = PROBE_SCAN_RATIO
        return body, params
    if exact:
        scored = (" t_scored AS (SELECT t.chunk_id, sum({bm25}) AS score FROM t_q q"
                  "  JOIN chunk_terms t ON t.tenant_id = %(tenant)s AND t.lexeme = q.lexeme CROSS JOIN t_st st"
                  "  {filtered} GROUP BY t.chunk_id),")
    else:
        scored = (
            # each lexeme's best postings by impact (an index-only scan of idx_chunk_terms_impact;
            # with page/date filters, the first ``depth`` that pass them), scored as they are read
            " t_top AS MATERIALIZED (SELECT p.chunk_id, q.n, q.depth, q.bit, {bm25_p} AS score"
            "  FROM t_q q CROSS JOIN t_st st"
            "  CROSS JOIN LATERAL (SELECT t.chunk_id, t.tf, t.dl FROM chunk_terms t {filtered_lateral}"
            "   ORDER BY t.impact DESC LIMIT q.depth) p),"
            # BM25 over the lexemes each chunk was met with; keep the best
            " t_part AS MATERIALIZED (SELECT chunk_id, sum(score) AS score, bit_or(bit) AS seen FROM t_top"
            "  GROUP BY chunk_id ORDER BY score DESC, chunk_id LIMIT %(rescore)s),"
            # lexemes read only ``depth`` deep that a kept chunk was not met with: probe (chunk,
            # lexeme). A query whose lexemes were all read whole (every query of a small tenant)
            # probes nothing: t_q drives the join, so the planner never touches the postings
            " t_more AS (SELECT c.chunk_id, {bm25} AS score FROM t_q q"
            "  JOIN t_part c ON c.seen & q.bit = 0"
            "  JOIN chunk_terms t ON t.chunk_id = c.chunk_id AND t.lexeme = q.lexeme CROSS JOIN t_st st"
            "  WHERE q.depth < q.df),"
            " t_scored AS (SELECT chunk_id, sum(score) AS score FROM"
            "  (SELECT chunk_id, score FROM t_part UNION ALL SELECT chunk_id, score FROM t_more) u GROUP BY chunk_id),"
        )
    filtered: sql.Composable = sql.SQL("")
    lateral: sql.Composable = sql.SQL("WHERE t.tenant_id = %(tenant)s AND t.lexeme = q.lexeme {pages}").format(
        pages=_posting_pages(filters))
    if not filters.is_empty():  # the reference: only postings of live chunks that pass the filters
        filtered = sql.SQL("JOIN {live} ON c.id = t.chunk_id WHERE {live_where} {filters}").format(
            live=LIVE_CHUNKS, live_where=LIVE_WHERE, filters=where)
    kept: sql.Composable = sql.SQL("")
    if document_filters(filters) and shape == "set":
        # the kept chunks, hashed once: "(... IN ...) IS TRUE" keeps the test a hashed SubPlan (a
        # bare IN becomes a semi-join, planned inside each lexeme's lateral scan)
        kept = sql.SQL(" t_c AS MATERIALIZED (SELECT c.id FROM {live} WHERE {live_where} {filters}),").format(
            live=LIVE_CHUNKS, live_where=LIVE_WHERE, filters=where)
        lateral = sql.SQL("WHERE t.tenant_id = %(tenant)s AND t.lexeme = q.lexeme {pages}"
                          " AND (t.chunk_id IN (SELECT id FROM t_c)) IS TRUE").format(pages=_posting_pages(filters))
    elif document_filters(filters):  # documents, tags, dates keeping many chunks: each posting's document is read
        lateral = sql.SQL("JOIN {live} ON c.id = t.chunk_id WHERE t.tenant_id = %(tenant)s AND t.lexeme = q.lexeme"
                          " {pages} AND {live_where} {filters}").format(
            live=LIVE_CHUNKS, live_where=LIVE_WHERE, filters=where, pages=_posting_pages(filters))
    body = sql.SQL(
        _TEXT_TERMS + "{kept}" + scored
        + ranked.format(scored="t_scored s JOIN {live} ON c.id = s.chunk_id WHERE {live_where}")
    ).format(bm25=_bm25("t"), bm25_p=_bm25("p"), live=LIVE_CHUNKS, live_where=LIVE_WHERE, filtered=filtered,
             filtered_lateral=lateral, kept=kept if not exact else sql.SQL(""))
    return body, params


def _posting_pages(filters: SearchFilters) -> sql.Composable:
    """The page range on a posting's own page span (``t``; same predicate as ``search_filter_sql``
    on the chunk, same parameters)."""
    parts = []
    if filters.page_from is not None:
        parts.append(sql.SQL(" AND t.page_last >= %(f_page_from)s"))
    if filters.page_to is not None:
        parts.append(sql.SQL(" AND t.page_first <= %(f_page_to)s"))
    return sql.SQL("").join(parts)


def fulltext_statement(tenant_id: str, query: str, n: int, filters: SearchFilters, *, exact: bool = False,
                       depth: int = TEXT_DEPTH, rescore: int = TEXT_RESCORE,
                       budget: int = TEXT_BUDGET, shape: FilterShape = "scan") -> tuple[sql.Composed, dict[str, Any]]:
    """``SELECT id, score`` of the full-text leg alone (``DocumentStore.fulltext_search``)."""
    body, params = text_leg(filters, exact=exact, depth=depth, rescore=rescore, budget=budget, shape=shape)
    params.update(tenant=tenant_id, query=_text(query), n=n)
    return sql.SQL("WITH {} SELECT id, score FROM text_leg ORDER BY rank").format(body), params


def _text(query: str) -> str:
    # PostgreSQL text cannot hold NUL; a stray one must not turn a search into an error
    return query.replace("\x00", " ")


_EMPTY_LEG = "{name} AS (SELECT NULL::uuid AS id, NULL::bigint AS rank WHERE false)"


class PostgresChunkSearch:
    """``ChunkSearch`` on PostgreSQL + pgvector: one statement per hybrid search."""

    name = "postgres"

    def __init__(self, vectors: PgVectorStore, *, text_depth: int = TEXT_DEPTH,
                 text_rescore: int = TEXT_RESCORE, budget: int = TEXT_BUDGET,
                 block_max_postings: int = BLOCK_MAX_POSTINGS) -> None:
        self.vectors = vectors
        self.text_depth = text_depth
        self.text_rescore = text_rescore
        self.text_budget = budget
        self.block_max_postings = block_max_postings

    def fulltext(self, tenant_id: str, query: str, n: int, filters: SearchFilters, *,
                 exact: bool = False) -> list[ChunkRef]:
        """The full-text leg alone (``exact``: sum every posting, the reference ranking)."""
        with self.vectors.store.connection() as conn:
            return fulltext_refs(conn, tenant_id, query, n, filters, exact=exact, depth=self.text_depth,
                                 rescore=self.text_rescore, budget=self.text_budget,
                                 max_postings=self.block_max_postings)

    def hybrid(self, tenant_id: str, query: str, vector: Vector | Callable[[], Vector] | None, *, k: int,
               filters: SearchFilters, alpha: float, rrf_k: int, candidates: int) -> list[RankedChunk]:
        """The ``k`` best live chunks by RRF of the vector leg (weight ``alpha``; needs
        ``vector``) and the BM25 leg (weight ``1 - alpha``), each leg ``candidates`` deep.
        ``vector`` as a callable is called after the BM25 leg's read, so that read overlaps the
        caller computing the query's embedding."""
        if k <= 0 or candidates <= 0:
            return []
        use_vector = alpha > 0 and vector is not None
        use_text = alpha < 1 and bool(query.strip())
        if not use_vector and not use_text:
            return []
        with self.vectors.store.connection() as conn:
            # how many chunks the filter keeps, read once for both legs' plans (None: no filter)
            cap = max(CHUNK_SET_MAX, self.vectors.exact_scan_max_rows if use_vector else 0)
            kept = None if filters.is_empty() else filter_reach(conn, tenant_id, filters, cap)
            hits = block_text_leg(conn, tenant_id, _text(query), candidates, filters, kept=kept,
                                  max_postings=self.block_max_postings) if use_text else None
            if callable(vector):
                vector = vector()
            q = query_vector(vector) if use_vector and vector is not None else None
            plan = self.vectors.plan(conn, tenant_id, filters, candidates, kept=kept) if q is not None else None
            text = use_text, filter_shape(kept), hits
            rows = self._run(conn, tenant_id, query, q, plan, k=k, filters=filters, alpha=alpha, rrf_k=rrf_k,
                             n=candidates, text=text)
            if plan is not None and plan.hnsw and self.vectors.needs_exact_fallback(plan, filters) \
                    and (not rows or rows[0][11] < candidates):
                rows = self._run(conn, tenant_id, query, q, self.vectors.exact_plan(), k=k, filters=filters,
                                 alpha=alpha, rrf_k=rrf_k, n=candidates, text=text)
        return [RankedChunk(
            chunk=StoredChunk(id=r[0], document_id=r[1], chunk_index=r[2], content=r[3], page_number=r[4],
                              page_end=r[5], filename=r[6], title=r[7]),
            score=float(r[8]), vector_rank=r[9], text_rank=r[10]) for r in rows]

    def _run(self, conn: Any, tenant_id: str, query: str, q: Any, plan: VectorPlan | None, *, k: int,
             filters: SearchFilters, alpha: float, rrf_k: int, n: int,
             text: tuple[bool, FilterShape, TextHits | None]) -> list[tuple[Any, ...]]:
        """One statement; ``text``: (run the text leg, its shape, its chunks if block-scored)."""
        use_text, shape, hits = text
        params: dict[str, Any] = {"tenant": tenant_id, "query": _text(query), "n": n, "top": k, "rrf_k": rrf_k,
                                  "wv": alpha, "wt": 1 - alpha}
        parts: list[sql.Composable] = []
        if plan is not None:
            vstmt, vparams = self.vectors.statement(tenant_id, q, n, filters, plan)
            params |= vparams
            parts.append(sql.SQL("v_leg AS MATERIALIZED (SELECT id, row_number() OVER (ORDER BY dist, id) AS rank"
                                 " FROM ({}) v)").format(vstmt))
        else:
            parts.append(sql.SQL(_EMPTY_LEG.format(name="v_leg")))
        if use_text and hits is not None:
            tbody, tparams = hits_leg(hits)
            params |= tparams
            parts.append(tbody)
        elif use_text:
            tbody, tparams = text_leg(filters, depth=self.text_depth, rescore=self.text_rescore,
                                      budget=self.text_budget, shape=shape)
            params |= tparams
            parts.append(tbody)
        else:
            parts.append(sql.SQL(_EMPTY_LEG.format(name="text_leg")))
        stmt = sql.SQL(
            "WITH {legs},"
            " fused AS (SELECT COALESCE(v.id, t.id) AS id, v.rank AS vr, t.rank AS tr,"
            "  COALESCE(%(wv)s::float8 / (%(rrf_k)s + v.rank), 0) + COALESCE(%(wt)s::float8 / (%(rrf_k)s + t.rank), 0)"
            "  AS score FROM v_leg v FULL JOIN text_leg t ON t.id = v.id)"
            " SELECT f.id, c.document_id, c.chunk_index, c.content, c.page_number,"
            "  COALESCE(c.page_end, c.page_number), d.filename, d.title, f.score, f.vr, f.tr,"
            "  (SELECT count(*) FROM v_leg)"
            " FROM fused f JOIN document_chunks c ON c.id = f.id"
            " JOIN documents d ON d.id = c.document_id AND d.tenant_id = c.tenant_id"
            " ORDER BY f.score DESC, COALESCE(f.vr, {no_rank}), COALESCE(f.tr, {no_rank}), f.id LIMIT %(top)s"
        ).format(legs=sql.SQL(", ").join(parts), no_rank=sql.Literal(_NO_RANK))
        if plan is not None and plan.hnsw and not self.vectors.session_settings(conn, plan):
            with conn.transaction():
                self.vectors.apply_settings(conn, plan)
                return list(conn.execute(stmt, params).fetchall())
        return list(conn.execute(stmt, params).fetchall())
