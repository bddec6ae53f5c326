"""Capacity section: bytes per chunk in every PostgreSQL store, chunks per page, and the hot set.

The figures in ``layers/querio/capacity.py`` come from this section's JSON. Corpus: the eval PDFs
(``../shared/eval/pdfs``) through the product's parser and chunker (``search_scale.base_corpus``:
chunks per page), then ``search_scale.build_corpus`` tenants of real-text variants loaded with the
product's own ``PostgresDocumentStore.bulk_load`` (the ingest path's statements for postings,
document frequencies and counters). Vectors are derived from real ones (sizes do not depend on
the values: a ``vector(384)`` is 1,536 bytes and an HNSW graph's size depends on the row count).

Two layouts, because an index's size depends on how it was written:
* ``as_ingested`` (sizes up to ``INCREMENTAL_MAX``): every index in place while the documents
  arrive one batch at a time, as ``querio ingest`` and the ingest function leave them (b-tree
  page splits leave pages ~70% full; the shared HNSW graph grows row by row); then the tenant's
  own HNSW index, as ``ensure_tenant_index`` builds it for a tenant above
  ``QUERIO_TENANT_INDEX_MIN_ROWS``. The capacity model uses these figures.
* ``rebuilt`` (bigger sizes): the postings' indexes deferred and rebuilt after the load (as a
  restore leaves them; tighter), and only the tenant's own HNSW index. Shows how the per-chunk
  figures move with the tenant's size (``tenant_terms`` per chunk falls as the vocabulary
  saturates).

Measured per relation: ``pg_relation_size`` of every table's main fork, of its TOAST table and
TOAST index, and of every index (``pg_indexes_size`` and ``pg_total_relation_size`` per table as a
cross-check); divided by the chunks. The hot postings are the ones the BM25 leg can read
(``querio.adapters.postgres.search``): a lexeme's whole list while its document frequency is at
most ``QUERIO_TEXT_BUDGET``, else its top ``QUERIO_TEXT_DEPTH`` by impact.

    python bench/capacity.py [--sizes 10000,100000] [--out bench/results/<date>-capacity.json]
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
#: up to this many chunks the tenant is loaded with every index in place (as ingest leaves them)
INCREMENTAL_MAX = 20_000
#: chunks per bulk_load call in the as-ingested layout: about one manual-sized document at a time
INCREMENTAL_BATCH = 500
TABLES = ("documents", "document_chunks", "chunk_terms", "tenant_terms", "tenant_usage", "term_blocks")


def count_pages(pdfs: list[Path], max_pages: int) -> dict[str, int]:
    """Pages per PDF as the product's parser sees them."""
    from querio.ingest.pdf import parse_pdf

    return {p.name: len(parse_pdf(p.read_bytes(), max_pages=max_pages).pages) for p in pdfs}


def relation_sizes(conn: Any) -> dict[str, dict[str, Any]]:
    """Every relation of :data:`TABLES`: the main fork, the TOAST table and its index, each index."""
    out: dict[str, dict[str, Any]] = {}
    for table in TABLES:
        row = conn.execute(
            "SELECT pg_relation_size(c.oid), COALESCE(pg_relation_size(c.reltoastrelid), 0),"
            " COALESCE(pg_indexes_size(NULLIF(c.reltoastrelid, 0)), 0), pg_indexes_size(c.oid),"
            " pg_total_relation_size(c.oid) FROM pg_class c WHERE c.oid = %s::regclass", (table,)).fetchone()
        indexes = {r[0]: int(r[1]) for r in conn.execute(
            "SELECT i.relname, pg_relation_size(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " WHERE x.indrelid = %s::regclass ORDER BY i.relname", (table,))}
        out[table] = {"heap": int(row[0]), "toast": int(row[1]), "toast_index": int(row[2]),
                      "indexes": indexes, "indexes_total": int(row[3]), "total": int(row[4])}
    return out


def facts(conn: Any, tenant: str, budget: int, depth: int) -> dict[str, Any]:
    """Row counts, text lengths and the hot postings of ``tenant``."""
    chunks, docs, text_bytes, pages = conn.execute(
        "SELECT count(*), count(DISTINCT document_id), COALESCE(sum(octet_length(content)), 0),"
        " count(DISTINCT (document_id, page_number)) FROM document_chunks WHERE tenant_id = %s",
        (tenant,)).fetchone()
    postings = conn.execute("SELECT count(*) FROM chunk_terms WHERE tenant_id = %s", (tenant,)).fetchone()[0]
    lexemes, hot, over = conn.execute(
        "SELECT count(*), COALESCE(sum(CASE WHEN df <= %s THEN df ELSE LEAST(df, %s) END), 0),"
        " count(*) FILTER (WHERE df > %s) FROM tenant_terms WHERE tenant_id = %s",
        (budget, depth, budget, tenant)).fetchone()
    return {"chunks": int(chunks), "documents": int(docs), "content_bytes": int(text_bytes),
            "pages_with_chunks": int(pages), "postings": int(postings), "lexemes": int(lexemes),
            "hot_postings": int(hot), "lexemes_over_budget": int(over),
            "database_bytes": int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])}


def per_chunk(rel: dict[str, dict[str, Any]], f: dict[str, Any], hnsw_tenant: str) -> dict[str, float]:
    """Bytes per chunk by store (the capacity model's groups)."""
    n = f["chunks"]
    c, t, tt = rel["document_chunks"], rel["chunk_terms"], rel["tenant_terms"]
    hnsw_shared = c["indexes"].get("idx_chunks_embedding_hnsw", 0)
    hnsw_own = c["indexes"].get(hnsw_tenant, 0)
    btrees = {k: v for k, v in c["indexes"].items() if k not in ("idx_chunks_embedding_hnsw", hnsw_tenant,
                                                                    "idx_chunks_content_tsv")}
    impact = t["indexes"].get("idx_chunk_terms_impact", 0)
    out = {
        "chunk_heap": c["heap"] / n,
        "chunk_toast": (c["toast"] + c["toast_index"]) / n,
        "chunk_btrees": sum(btrees.values()) / n,
        "chunk_gin_tsv": c["indexes"].get("idx_chunks_content_tsv", 0) / n,
        "hnsw_shared": hnsw_shared / n,
        "hnsw_tenant": hnsw_own / n,
        "postings_heap": (t["heap"] + t["toast"] + t["toast_index"]) / n,
        "postings_impact_index": impact / n,
        "postings_other_indexes": (t["indexes_total"] - impact) / n,
        "tenant_terms": tt["total"] / n,
        # the packed postings of the block-scored BM25 leg (migration 0009): heap, TOAST, indexes
        "term_blocks": rel["term_blocks"]["total"] / n,
        "documents_per_chunk": rel["documents"]["total"] / n,
    }
    out["total"] = sum(out.values())
    return {k: round(v, 1) for k, v in out.items()}


def run_capacity(sizes: list[int], work_dir: Path, pdfs: list[Path], say: Callable[[str], None], *,
                 settings_for: Callable[..., Any], seed: int = 23, keep: bool = False) -> dict[str, Any]:
    """Every size in its own database of one scratch embedded server; see the module docstring."""
    import psycopg
    from search_scale import DeferredIndexes, base_corpus, build_corpus, load

    from querio.adapters.postgres.embedded import SERVER_SETTINGS, start_embedded, stop_embedded
    from querio.adapters.postgres.vectors import tenant_index_name
    from querio.embedding import get_embedder
    from querio.wiring import build_service

    pg_dir = work_dir / "pg_capacity"
    start_embedded(pg_dir, database="postgres", settings=SERVER_SETTINGS)
    settings = settings_for(data_dir=work_dir / "capacity")
    embedder = get_embedder(settings.embed_batch_size, settings.embedder, settings.model_dir)
    base = base_corpus(pdfs, embedder, settings, say)
    pages = count_pages(pdfs, settings.max_pages)
    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "corpus": {"pdfs": pages, "pages": sum(pages.values()), "chunks": len(base.texts),
                   "chunks_per_page": round(len(base.texts) / sum(pages.values()), 3),
                   "mean_chunk_chars": round(sum(len(t) for t in base.texts) / len(base.texts), 1),
                   "chunk_size": settings.chunk_size, "chunk_overlap": settings.chunk_overlap},
        "settings": {"text_budget": settings.text_budget, "text_depth": settings.text_depth,
                     "tenant_index_min_rows": settings.tenant_index_min_rows, "server": SERVER_SETTINGS},
        "sizes": {}}
    say(f"capacity: {out['corpus']['chunks']} chunks of {out['corpus']['pages']} pages "
        f"= {out['corpus']['chunks_per_page']} chunks per page")
    try:
        for n in sizes:
            database = f"capacity_{n}"
            dsn = start_embedded(pg_dir, database=database, settings=SERVER_SETTINGS)
            svc = build_service(settings_for(data_dir=work_dir / "capacity", database_url=dsn))
            tenant = f"cap{n // 1000}k"
            layout = "as_ingested" if n <= INCREMENTAL_MAX else "rebuilt"
            try:
                corpus = build_corpus(base, tenant, n, seed=seed + n, embedder=None, say=say)
                t = time.perf_counter()
                if layout == "as_ingested":
                    corpus_load = load(svc.documents, corpus, say, batch_rows=INCREMENTAL_BATCH)
                else:
                    deferred = DeferredIndexes(svc.documents)
                    corpus_load = load(svc.documents, corpus, say)
                    corpus_load["postings_indexes_rebuild_s"] = deferred.restore()
                built = svc.vectors.ensure_tenant_index(tenant, min_rows=1)
                with svc.documents.connection() as conn:
                    conn.execute("VACUUM ANALYZE document_chunks")
                    conn.execute("VACUUM ANALYZE chunk_terms")
                    rel = relation_sizes(conn)
                    f = facts(conn, tenant, settings.text_budget, settings.text_depth)
                res = {"layout": layout, "load": corpus_load | {"total_s": round(time.perf_counter() - t, 1)},
                       "tenant_hnsw_built": built, "facts": f, "relations": rel,
                       "bytes_per_chunk": per_chunk(rel, f, tenant_index_name(tenant)),
                       "postings_per_chunk": round(f["postings"] / f["chunks"], 2),
                       "tenant_terms_per_chunk": round(f["lexemes"] / f["chunks"], 3),
                       "hot_postings_share": round(f["hot_postings"] / max(1, f["postings"]), 4),
                       "content_bytes_per_chunk": round(f["content_bytes"] / f["chunks"], 1)}
                say(f"capacity: {tenant} ({layout}): {res['bytes_per_chunk']['total']:,.0f} B per chunk, "
                    f"{res['postings_per_chunk']} postings per chunk, hot postings {res['hot_postings_share']:.0%}")
            finally:
                svc.close()
            out["sizes"][str(n)] = res
            if not keep:
                admin = start_embedded(pg_dir, database="postgres", settings=SERVER_SETTINGS)
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    finally:
        stop_embedded(pg_dir)
    return out


def main() -> None:
    """Run the section alone: ``python bench/capacity.py --sizes 10000,100000``."""
    import argparse
    import sys
    import tempfile

    sys.path.insert(0, str(BENCH))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    from run import RATE_LIMIT, say

    from querio.config import load_settings

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--pdfs", default=str(BENCH.parent / ".." / "shared" / "eval" / "pdfs"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    def settings_for(**kw: Any) -> Any:
        return load_settings(**({"result_cache": False, "rate_limit_per_minute": RATE_LIMIT, "redis_url": None}
                                | kw))

    work = Path(tempfile.mkdtemp(prefix="querio_capacity_"))
    res = run_capacity([int(x) for x in args.sizes.split(",")], work, sorted(Path(args.pdfs).glob("*.pdf")), say,
                       settings_for=settings_for, keep=args.keep)
    text = json.dumps(res, indent=2, default=str)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
