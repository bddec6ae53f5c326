"""Scale section, real text: hybrid search through the product's own path at 10K / 100K / 1M chunks.

Corpus. The chunks of the eval PDFs (``../shared/eval/pdfs``), made by the product's parser and
chunker, embedded by the product's embedder, are the base (2,388 chunks). Bigger tenants are the
base plus variants of its chunks (``vary``): two thirds of a chunk's sentences, shuffled, mixed with
two sentences of a donor chunk of the same manual, and ~15% of the words replaced by other words of
that manual: real words, so BM25 sees real term statistics, but no two chunks alike. Each manual's
replica is a document (its pages kept). Vectors: at 10K every variant is embedded for real
(cached in ``bench/.cache``); at 100K and 1M a variant's vector is derived from real ones: its
source chunk's and its donor's real vectors weighted like the text (3:1 on average) plus gaussian
noise (per-dimension sigma ``SIGMA``), re-normalised; never uniform random.

Loading. ``PostgresDocumentStore.bulk_load`` (binary COPY into the product's tables, then the
ingest path's own statements for postings, document frequencies and counters) with the postings'
indexes deferred (``DeferredIndexes``), then each tenant's own HNSW index
(``PgVectorStore.ensure_tenant_index``). The 1M database holds the 1M tenant, a 1%
tenant (10K chunks) and another of 20K: the big tenant is one among others.

Measured per tenant, through ``POST /api/search`` in-process (router, validation, query embedding
on a cache miss, result cache off, k = 10): hybrid p50/p99, the vector-only and text-only modes
(each leg alone), hybrid under three selective filters (one document, a page range, a tag) with
the number of results; the vector leg's recall@10 against an exact numpy scan of the same vectors
(same filters); the full-text leg's recall@10 against exact BM25 (every posting summed: the
reference the integration tests pin to a Python BM25), unfiltered and under each filter (fewer
queries there: the filtered reference joins every posting to its chunk).
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from percentiles import pct

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / ".cache"
#: per-dimension noise on a derived vector (||noise|| ~ 0.2). Copies of one vector plus noise alone
#: (no donor) made clusters of ~40 near-duplicates whose neighbour lists HNSW filled with each
#: other: recall@10 0.42 at 100K, an artefact no real corpus has
SIGMA = 0.01
#: share of a variant's words replaced by other words of the same manual
WORD_SWAP = 0.15
#: a document carries the tag "rare" when its number % this == 3 (~1% of documents)
RARE_EVERY = 97
_SENTENCE = re.compile(r"(?<=[.!?:;])\s+|\n+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")


@dataclass
class Base:
    texts: list[str]
    pages: list[int]
    source: list[int]  # index of the manual
    contexts: list[str]  # the embedding prefix of the manual (title line)
    manuals: list[str]
    vectors: np.ndarray


@dataclass
class Corpus:
    """One tenant's rows: row i = (documents[doc_of[i]], chunk_index[i]) with texts[i], vectors[i]."""

    tenant: str
    texts: list[str]
    pages: np.ndarray
    doc_of: np.ndarray
    chunk_index: np.ndarray
    documents: list[tuple[uuid.UUID, str, list[str]]]
    vectors: np.ndarray
    derived: bool
    extra: dict[str, Any] = field(default_factory=dict)


def text_pipeline_digest() -> str:
    """A digest of the source of every module that turns PDF bytes into embedded text (parser,
    boilerplate stripping, character normalisation, chunker, the pipeline's embedding text).

    Why: the cache below is keyed by the PDFs and settings; without the code in the key, a changed
    chunker silently reads the previous chunker's chunks and vectors from ``bench/.cache``."""
    import importlib

    modules = ("querio.text", "querio.ingest.boilerplate", "querio.ingest.pdf", "querio.ingest.chunking",
               "querio.ingest.pipeline")
    h = hashlib.sha256()
    for name in modules:
        h.update(Path(importlib.import_module(name).__file__ or "").read_bytes())
    return h.hexdigest()


def base_corpus(pdfs: list[Path], embedder: Any, settings: Any, say: Callable[[str], None]) -> Base:
    """The eval PDFs through the product's parser and chunker, embedded as ingest does (cached by the
    PDFs, the chunk settings, the embedder variant and :func:`text_pipeline_digest`)."""
    from querio.ingest.pdf import parse_pdf
    from querio.ingest.pipeline import chunk_for, display_filename, embedding_context, embedding_texts

    key = hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in pdfs)
                         + f"{settings.chunk_size}/{settings.chunk_overlap}/{embedder.variant}/"
                           f"{text_pipeline_digest()}".encode()).hexdigest()
    cached = CACHE / f"base-{key[:16]}.npz"
    if cached.exists():
        z = np.load(cached, allow_pickle=False)
        meta = json.loads(str(z["meta"]))
        return Base(meta["texts"], meta["pages"], meta["source"], meta["contexts"], meta["manuals"], z["vectors"])
    texts, pages, source, contexts, manuals, prefixed = [], [], [], [], [], []
    for m, pdf in enumerate(pdfs):
        parsed = parse_pdf(pdf.read_bytes(), max_pages=settings.max_pages)
        name = display_filename(pdf.name)
        context = embedding_context(parsed.info.title, name)
        prefix = f"{context}\n" if context else ""
        drafts = chunk_for(parsed.pages, context=context, settings=settings, embedder=embedder)
        manuals.append(name)
        contexts.append(prefix)
        # what ingest embeds (context and section title lines); variants below get the context only
        prefixed += embedding_texts(embedder, context, [d.content for d in drafts], [d.section for d in drafts])
        for d in drafts:
            texts.append(d.content)
            pages.append(d.page_number)
            source.append(m)
        say(f"search scale: base corpus: {name}: {len(drafts)} chunks")
    t = time.perf_counter()
    vectors = embedder.embed_documents(prefixed).astype(np.float32)
    say(f"search scale: base corpus: {len(texts)} chunks embedded in {time.perf_counter() - t:.0f} s")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cached, vectors=vectors, meta=np.array(json.dumps(
        {"texts": texts, "pages": pages, "source": source, "contexts": contexts, "manuals": manuals})))
    return Base(texts, pages, source, contexts, manuals, vectors)


def vary(text: str, donor: str, rng: np.random.Generator, vocab: list[str]) -> str:
    """A variant of ``text`` in real words: its sentences shuffled, about a third of them dropped,
    up to two sentences of ``donor`` (another chunk of the same manual) mixed in, and ~``WORD_SWAP``
    of the longer words replaced by words of that manual (``vocab``: its words with repeats, so a
    word is drawn as often as the manual uses it)."""
    own = [x for x in _SENTENCE.split(text) if x.strip()]
    rng.shuffle(own)  # type: ignore[arg-type]
    keep = own[:max(1, round(len(own) * 0.67))]
    extra = [x for x in _SENTENCE.split(donor) if len(x) > 20]
    rng.shuffle(extra)  # type: ignore[arg-type]
    sentences = keep + extra[:2]
    rng.shuffle(sentences)  # type: ignore[arg-type]
    out = " ".join(sentences)
    if vocab:
        def swap(m: re.Match[str]) -> str:
            return vocab[int(rng.integers(len(vocab)))] if rng.random() < WORD_SWAP else m.group(0)
        out = _WORD.sub(swap, out)
    return out[:4000]


def build_corpus(base: Base, tenant: str, n: int, *, seed: int, embedder: Any | None,
                 say: Callable[[str], None]) -> Corpus:
    """``n`` rows: the base chunks, then variants (round-robin over the base) grouped into one
    document per (manual, replica). A variant mixes its source chunk with a donor chunk of the
    same manual; its vector is embedded for real (``embedder``) or derived: the source's real
    vector and the donor's, weighted about 3:1 like the text, plus noise, re-normalised."""
    rng = np.random.default_rng(seed)
    nb = len(base.texts)
    by_manual: dict[int, list[int]] = {}
    vocab: dict[int, list[str]] = {}
    for j, (text, m) in enumerate(zip(base.texts, base.source, strict=True)):
        by_manual.setdefault(m, []).append(j)
        vocab.setdefault(m, []).extend(_WORD.findall(text))
    # vocab keeps every occurrence: a replacement word is drawn as often as the manual uses it, so
    # document frequencies keep their real shape (drawing from the distinct words made every rare
    # word common and scattered it at random)
    src = np.arange(n) % nb
    replica = np.arange(n) // nb
    donor = np.array([int(rng.choice(by_manual[base.source[j]])) for j in src.tolist()]) if n > nb else src
    t = time.perf_counter()
    texts = [base.texts[j] if r == 0 else vary(base.texts[j], base.texts[d], rng, vocab[base.source[j]])
             for j, d, r in zip(src.tolist(), donor.tolist(), replica.tolist(), strict=True)]
    say(f"search scale: {tenant}: {n:,} chunk texts ({n - min(n, nb):,} variants) in {time.perf_counter() - t:.0f} s")
    manual = np.asarray(base.source)[src]
    key = replica * len(base.manuals) + manual
    doc_keys, doc_of = np.unique(key, return_inverse=True)
    documents = []
    for d, kk in enumerate(doc_keys.tolist()):
        r, m = divmod(kk, len(base.manuals))
        name = base.manuals[m] if r == 0 else base.manuals[m].replace(".pdf", f"~{r}.pdf")
        documents.append((uuid.UUID(int=(seed << 64) | d), name, ["rare"] if d % RARE_EVERY == 3 else ["manual"]))
    # chunk_index: position within the document
    chunk_index = np.zeros(n, dtype=np.int64)
    counters: dict[int, int] = {}
    for i, d in enumerate(doc_of.tolist()):
        chunk_index[i] = counters.get(d, 0)
        counters[d] = chunk_index[i] + 1
    derived = embedder is None
    if derived:
        noise = np.random.default_rng(seed + 1)
        dim = base.vectors.shape[1]
        vectors = np.empty((n, dim), dtype=np.float32)
        for lo in range(0, n, 100_000):
            hi = min(n, lo + 100_000)
            w = noise.uniform(0.6, 0.9, (hi - lo, 1)).astype(np.float32)
            x = (w * base.vectors[src[lo:hi]] + (1 - w) * base.vectors[donor[lo:hi]]
                 + noise.normal(0.0, SIGMA, (hi - lo, dim)).astype(np.float32))
            original = replica[lo:hi] == 0
            x[original] = base.vectors[src[lo:hi]][original]
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            vectors[lo:hi] = x
    else:
        vectors = embed_cached(embedder, [base.contexts[base.source[j]] + t for j, t in zip(src.tolist(), texts,
                                                                                             strict=True)], say)
    return Corpus(tenant, texts, np.asarray(base.pages)[src], doc_of, chunk_index, documents, vectors, derived)


def embed_cached(embedder: Any, texts: list[str], say: Callable[[str], None]) -> np.ndarray:
    # the variant too: fp32 and qint8 vectors of the same texts differ (and are refused together)
    key = hashlib.sha256(("\x1e".join(texts) + embedder.model_name + "/" + embedder.variant).encode()
                         ).hexdigest()[:16]
    path = CACHE / f"emb-{key}.npy"
    if path.exists():
        return np.load(path)
    t = time.perf_counter()
    vectors = embedder.embed_documents(texts).astype(np.float32)
    say(f"search scale: embedded {len(texts):,} chunks in {time.perf_counter() - t:.0f} s (cached for next runs)")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def load(store: Any, corpus: Corpus, say: Callable[[str], None], *, variant: str | None = None,
         batch_rows: int = 20_000) -> dict[str, Any]:
    """``bulk_load`` in batches of whole documents (about ``batch_rows`` chunks each), recording
    ``variant`` (the embedder that made the vectors) so that vector search accepts the corpus."""
    t = time.perf_counter()
    order = np.argsort(corpus.doc_of, kind="stable")
    bounds = np.searchsorted(corpus.doc_of[order], np.arange(len(corpus.documents) + 1))
    lo = 0
    while lo < len(corpus.documents):
        hi = int(np.searchsorted(bounds, bounds[lo] + batch_rows, side="right")) - 1
        hi = min(len(corpus.documents), max(hi, lo + 1))
        rows = order[bounds[lo]:bounds[hi]]
        store.bulk_load(corpus.tenant, corpus.documents[lo:hi],
                        [(corpus.documents[int(corpus.doc_of[i])][0], corpus.texts[i], int(corpus.chunk_index[i]),
                          int(corpus.pages[i])) for i in rows.tolist()], corpus.vectors[rows],
                        embedder_variant=variant)
        lo = hi
        if bounds[lo] % 100_000 < batch_rows or lo == len(corpus.documents):
            say(f"search scale: {corpus.tenant}: {bounds[lo]:,} of {len(corpus.texts):,} chunks loaded")
    return {"load_s": round(time.perf_counter() - t, 1)}


#: Dropped for the bulk load and rebuilt after it (a load into an empty schema, as a restore
#: would do it): maintaining them row by row made a 100K load take minutes per 20K rows.
DEFERRED_INDEXES = ("idx_chunk_terms_impact",)


class DeferredIndexes:
    """Drop the postings' indexes and constraints (and the shared HNSW index) for a bulk load;
    ``restore`` re-creates the postings' ones from their own definitions. The shared HNSW index
    stays dropped: every tenant measured here has its own, and the shared one only serves a big
    tenant before its own exists (building it for 1M+ rows would take most of an hour)."""

    def __init__(self, store: Any) -> None:
        from querio.adapters.postgres.vectors import HNSW_INDEX

        self.store = store
        with store.connection() as conn:
            self.indexes = [r[0] for r in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE indexname = ANY(%s)", (list(DEFERRED_INDEXES),))]
            self.constraints = [(r[0], r[1]) for r in conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = 'chunk_terms'::regclass ORDER BY contype DESC")]  # p (key) before f
            for name in (*DEFERRED_INDEXES, HNSW_INDEX):
                conn.execute(f"DROP INDEX IF EXISTS {name}")
            for name, _ in self.constraints:
                conn.execute(f"ALTER TABLE chunk_terms DROP CONSTRAINT {name}")

    def restore(self) -> float:
        t = time.perf_counter()
        with self.store.connection() as conn:
            conn.execute("SET statement_timeout = 0")
            conn.execute("SET maintenance_work_mem = '1GB'")
            for name, definition in self.constraints:
                conn.execute(f"ALTER TABLE chunk_terms ADD CONSTRAINT {name} {definition}")
            for definition in self.indexes:
                conn.execute(definition)
            conn.execute("VACUUM ANALYZE document_chunks")
            conn.execute("VACUUM ANALYZE chunk_terms")
            conn.execute("ANALYZE documents")
            conn.execute("ANALYZE tenant_terms")
            self.store.reset_session(conn)
        return round(time.perf_counter() - t, 1)


def filters_for(corpus: Corpus) -> dict[str, dict[str, Any]]:
    first = corpus.documents[0][0]
    return {"document": {"document_ids": [str(first)]}, "pages": {"page_from": 10, "page_to": 20},
            "tag": {"tags": ["rare"]}}


def _mask(corpus: Corpus, name: str) -> np.ndarray:
    if name == "document":
        return corpus.doc_of == 0
    if name == "pages":
        return (corpus.pages >= 10) & (corpus.pages <= 20)
    if name == "tag":
        tagged = np.array(["rare" in d[2] for d in corpus.documents])
        return tagged[corpus.doc_of]
    return np.ones(len(corpus.texts), dtype=bool)


def summary(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50_ms": round(statistics.median(values), 3), "p95_ms": pct(values, 95),
            "p99_ms": pct(values, 99), "mean_ms": round(statistics.fmean(values), 3)}


def measure(service: Any, corpus: Corpus, queries: list[str], say: Callable[[str], None], *,
            recall_queries: int = 50, filtered_queries: int = 40, filtered_text_queries: int = 20,
            k: int = 10) -> dict[str, Any]:
    """Latency through the router, both legs' recall, and filtered searches, for one tenant."""
    from router_client import RouterClient

    from querio.adapters.memory_cache import MemoryCache
    from querio.models import SearchFilters

    # Every tenant of a run is asked the same query texts, and the service caches query embeddings:
    # a fresh cache per tenant keeps each tenant's queries cache misses (before session 11 the 1%
    # tenant, measured after the 1M one on the same service, got its embeddings from the cache).
    if not isinstance(service.cache, MemoryCache):
        raise RuntimeError("search scale runs with the in-process cache (redis_url None)")
    service.cache = MemoryCache()
    client = RouterClient(service, corpus.tenant)
    out: dict[str, Any] = {"chunks": len(corpus.texts), "documents": len(corpus.documents), "k": k,
                           "derived_vectors": corpus.derived}
    try:
        for q in queries[:10]:
            client.search(q + " warm", k)
        lat, took = [], []
        for q in queries:
            ms, body = client.search(q, k)
            lat.append(ms)
            took.append(float(body["took_ms"]))
            if body.get("cached"):
                raise RuntimeError("a scale query was answered from the result cache")
        out["hybrid"] = summary(lat) | {"service_took_p50_ms": round(statistics.median(took), 3)}
        half = queries[: max(20, len(queries) // 2)]
        for mode in ("vector", "text"):
            out[mode] = summary([client.search(q + " m", k, mode=mode)[0] for q in half])
        out["filtered"] = {}
        for name, spec in filters_for(corpus).items():
            lat, counts = [], []
            for q in queries[:filtered_queries]:
                ms, body = client.search(q + " f", k, filters=spec)
                lat.append(ms)
                counts.append(len(body["results"]))
            out["filtered"][name] = summary(lat) | {"rows_matching": int(_mask(corpus, name).sum()),
                                                    "min_results": min(counts), "max_results": max(counts)}
    finally:
        client.close()
    # recall of each leg against exact (vector: numpy over the same vectors; text: every posting summed)
    emb = service.embedder
    key_of = {(corpus.documents[int(d)][0], int(c)): i for i, (d, c) in
              enumerate(zip(corpus.doc_of.tolist(), corpus.chunk_index.tolist(), strict=True))}
    out["recall_at_10"] = {}
    for name in ("none", *filters_for(corpus)):
        spec = SearchFilters(**filters_for(corpus)[name]) if name != "none" else SearchFilters()
        mask = _mask(corpus, name)
        rows = np.flatnonzero(mask)
        vec_recall, text_recall = [], []
        for q in queries[:recall_queries]:
            v = emb.embed_query(q).astype(np.float32)
            sims = corpus.vectors[rows] @ v
            top = rows[np.argsort(-sims)[:k]]
            refs = service.vectors.query(corpus.tenant, v, k, spec)
            got_chunks = service.documents.fetch_chunks(corpus.tenant, [r.chunk_id for r in refs])
            got = {key_of[(c.document_id, c.chunk_index)] for c in got_chunks.values()}
            vec_recall.append(len(got & set(top.tolist())) / max(1, min(k, len(rows))))
            if name == "none" or len(vec_recall) <= filtered_text_queries:  # exact BM25 of a filter is slow
                approx = service.search_engine.fulltext(corpus.tenant, q, k, spec)
                exact = service.search_engine.fulltext(corpus.tenant, q, k, spec, exact=True)
                if exact:
                    text_recall.append(len({r.chunk_id for r in approx} & {r.chunk_id for r in exact}) / len(exact))
        out["recall_at_10"][name] = {"vector": round(float(np.mean(vec_recall)), 4)}
        if text_recall:
            out["recall_at_10"][name]["text"] = round(float(np.mean(text_recall)), 4)
            out["recall_at_10"][name]["text_min"] = round(float(np.min(text_recall)), 4)
    # the full-text leg's own cost, exact against the product's
    lat_a, lat_e = [], []
    for q in queries[:recall_queries]:
        t = time.perf_counter()
        service.search_engine.fulltext(corpus.tenant, q, 4 * k, SearchFilters())
        lat_a.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        service.search_engine.fulltext(corpus.tenant, q, 4 * k, SearchFilters(), exact=True)
        lat_e.append((time.perf_counter() - t) * 1000)
    out["text_leg_sql"] = {"product_p50_ms": round(statistics.median(lat_a), 3),
                           "every_posting_p50_ms": round(statistics.median(lat_e), 3)}
    h, r = out["hybrid"], out["recall_at_10"]["none"]
    say(f"search scale: {corpus.tenant} ({len(corpus.texts):,} chunks): hybrid p50 {h['p50_ms']} ms, p99 "
        f"{h['p99_ms']} ms; vector p50 {out['vector']['p50_ms']}, text p50 {out['text']['p50_ms']}; recall@10 "
        f"vector {r['vector']}, text {r.get('text')}")
    return out


def tenants_for(n: int) -> list[tuple[str, int, bool]]:
    """(tenant, chunks, measured) loaded into the database of size ``n``: from 1M on, the big
    tenant is one among others, and a 1% tenant inside the same table is measured too."""
    if n >= 1_000_000:
        return [(f"t{n // 1000}k", n, True), ("t1pct", n // 100, True), ("t20k", 20_000, False)]
    return [(f"t{n // 1000}k", n, True)]


def run_search_scale(sizes: list[int], queries: list[str], work_dir: Path, pdfs: list[Path],
                     say: Callable[[str], None], *, settings_for: Callable[..., Any], seed: int = 11,
                     recall_queries: int = 50, keep: bool = False,
                     seed_search: Callable[[Path, Path], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every size in its own database of one scratch embedded server; see the module docstring.
    ``seed_search(corpus.npz, queries.json)`` times the seed's Chroma search on the 10K corpus."""
    import os

    from querio.adapters.postgres.embedded import SERVER_SETTINGS, pending_restart, start_embedded, stop_embedded
    from querio.embedding import get_embedder
    from querio.wiring import build_service

    pg_dir = work_dir / "pg_search_scale"
    # the product's embedded settings, with shared buffers that hold a 1M-chunk tenant's hot pages
    server = SERVER_SETTINGS | {"shared_buffers": "2GB" if max(sizes) > 300_000 else "1GB"}
    if pending_restart(start_embedded(pg_dir, database="postgres", settings=server)):
        stop_embedded(pg_dir)  # a fresh scratch cluster: restart once so shared_buffers applies
        start_embedded(pg_dir, database="postgres", settings=server)
    settings = settings_for(data_dir=work_dir / "search_scale")
    embedder = get_embedder(settings.embed_batch_size, settings.embedder, settings.model_dir)
    base = base_corpus(pdfs, embedder, settings, say)
    out: dict[str, Any] = {"base_chunks": len(base.texts), "manuals": base.manuals, "sigma": SIGMA,
                           "word_swap": WORD_SWAP, "queries": len(queries), "sizes": {},
                           "settings": {"hnsw_ef_search": settings.hnsw_ef_search,
                                        "tenant_index_min_rows": settings.tenant_index_min_rows,
                                        "exact_scan_max_rows": settings.exact_scan_max_rows,
                                        "text_budget": settings.text_budget,
                                        "text_depth": settings.text_depth,
                                        "candidate_multiplier": settings.candidate_multiplier}}
    try:
        for n in sizes:
            database = f"search_scale_{n}"
            dsn = start_embedded(pg_dir, database=database, settings=server)
            svc = build_service(settings_for(data_dir=work_dir / "search_scale", database_url=dsn))
            res: dict[str, Any] = {"loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                                   "server": server}
            try:
                corpora = []
                deferred = DeferredIndexes(svc.documents)
                for tenant, size, measured in tenants_for(n):
                    corpus = build_corpus(base, tenant, size, seed=seed + size, say=say,
                                          embedder=embedder if size <= 10_000 else None)
                    corpus.extra = load(svc.documents, corpus, say, variant=svc.embedder.variant)
                    if measured:
                        corpora.append(corpus)
                    if seed_search is not None and size == 10_000 and measured:
                        res["seed_chroma"] = _seed(seed_search, corpus, queries, work_dir, say)
                res["postings_indexes_rebuild_s"] = deferred.restore()
                res["shared_hnsw_index"] = "dropped for the load (each measured tenant has its own)"
                for corpus in corpora:
                    t = time.perf_counter()
                    built = svc.vectors.ensure_tenant_index(corpus.tenant)
                    corpus.extra["tenant_index_build_s"] = round(time.perf_counter() - t, 1) if built else None
                    say(f"search scale: {corpus.tenant}: own HNSW index "
                        + (f"built in {corpus.extra['tenant_index_build_s']} s" if built else "not built"))
                svc.embedder.embed_query("warm up")
                for corpus in corpora:
                    res[corpus.tenant] = measure(svc, corpus, queries, say, recall_queries=recall_queries) \
                        | corpus.extra
                with svc.documents.connection() as conn:
                    res["database_mb"] = round(conn.execute("SELECT pg_database_size(current_database())")
                                               .fetchone()[0] / 2**20)
                res["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
            finally:
                svc.close()
            out["sizes"][str(n)] = res
            if not keep:
                import psycopg

                admin = start_embedded(pg_dir, database="postgres", settings=server)
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    finally:
        stop_embedded(pg_dir)
    return out


def _seed(seed_search: Callable[[Path, Path], dict[str, Any]], corpus: Corpus, queries: list[str], work: Path,
          say: Callable[[str], None]) -> dict[str, Any]:
    """The seed's Chroma similarity_search on the same chunks and vectors (a failure is recorded)."""
    npz, qfile = work / f"seed_{corpus.tenant}.npz", work / "seed_queries.json"
    np.savez(npz, texts=np.array(json.dumps(corpus.texts)), vectors=corpus.vectors)
    qfile.write_text(json.dumps(queries))
    try:
        res = seed_search(npz, qfile)
        say(f"search scale: seed Chroma similarity_search on {corpus.tenant}: p50 {res.get('p50_ms')} ms")
        return res
    except Exception as exc:
        say(f"search scale: seed Chroma run failed: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    finally:
        npz.unlink(missing_ok=True)


def main() -> None:
    """Run the section alone: ``python bench/search_scale.py --sizes 10000 --queries 100``."""
    import argparse
    import os
    import sys
    import tempfile

    sys.path.insert(0, str(BENCH))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    from eval_retrieval import load_questions
    from run import RATE_LIMIT, perturbed, say

    from querio.config import load_settings

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--pdfs", default=str(BENCH.parent / ".." / "shared" / "eval" / "pdfs"))
    ap.add_argument("--questions", default=str(BENCH.parent / ".." / "shared" / "eval" / "questions.jsonl"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    qs = load_questions(args.questions)
    queries = perturbed(qs, args.queries, time.strftime("s%H%M%S"))

    def settings_for(**kw: Any) -> Any:
        base = {"result_cache": False, "rate_limit_per_minute": RATE_LIMIT, "redis_url": None}
        return load_settings(**(base | kw))

    work = Path(tempfile.mkdtemp(prefix="querio_search_scale_"))
    res = run_search_scale([int(x) for x in args.sizes.split(",")], queries, work,
                           sorted(Path(args.pdfs).glob("*.pdf")), say, settings_for=settings_for, keep=args.keep)
    text = json.dumps(res, indent=2, default=str)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
