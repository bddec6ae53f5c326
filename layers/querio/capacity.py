"""Capacity model: what N documents need in each store against what a tier provisions.

``querio capacity --tier X [--documents N --pages-per-document P]``. Pure data and arithmetic
(no AWS calls, nothing of CDK); :mod:`querio.costs` reads the same :data:`ASSUMPTIONS`.

The per-chunk figures are measured by ``bench/capacity.py`` (``python bench/run.py --only
capacity``); the run they come from is :data:`MEASUREMENT`. Each store takes the larger of that
run's two sizes (10K chunks as ingested, 100K chunks rebuilt) so the model errs towards "full".

Rules (each resource below says why):

* **PostgreSQL storage**: every relation the tier keeps in PostgreSQL, within 85% of the storage
  autoscaling ceiling (VACUUM, WAL and index rebuilds need the rest).
* **PostgreSQL memory**: the indexes a query walks at random must be in memory, else each
  query pays disk reads per step: the tenant's HNSW graph (pgvector docs: "performance is best
  when the index fits into memory"; a search visits ~ef_search x m nodes spread over the graph)
  and the BM25 postings the leg can read (its impact index, ``hot_postings_share`` of all). They
  must fit in 75% of the instance's RAM: RDS gives shared_buffers 25% and the OS page cache holds
  the next 50%; the last 25% is connections, work_mem and the OS. Rows fetched by key (chunk
  text, b-trees) are not counted: a few page reads per hit from gp3.
* **Pinecone records**: one per chunk; a pod holds :data:`PINECONE_RECORDS_PER_POD`.
* **OpenSearch storage and shards**: AWS's sizing formula (source x (1 + replicas) x 1.45) and
  primary shards of at most :data:`OPENSEARCH_SHARD_GIB`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from querio.tiers import ENGINE_SPECS, Tier

GIB = 1024**3


@dataclass(frozen=True)
class Measurement:
    """Where the per-chunk figures come from."""

    bench: str
    result_file: str
    date: str
    corpus: str


MEASUREMENT = Measurement(
    bench="bench/capacity.py (python bench/run.py --only capacity)",
    result_file="bench/results/2026-12-06-capacity.json",
    date="2026-12-06",
    corpus="the 6 eval PDFs (604 pages, 2,551 chunks) as real-text variants: 10,000 chunks as ingested "
           "(500-chunk batches, every index in place) and 100,000 chunks (postings indexes rebuilt)",
)


@dataclass(frozen=True)
class ChunkBytes:
    """Bytes one chunk costs in one store (unit: bytes per chunk)."""

    store: str
    bytes_per_chunk: float
    where: str  # "core" (always in PostgreSQL), "vectors" (pgvector tiers), "fulltext" (postgres full text)
    source: str


_M = f"{MEASUREMENT.result_file} ({MEASUREMENT.date})"
#: term_blocks (migration 0009) came after that run: measured by the same bench in its own run
#: (``sections.capacity`` of this file)
BLOCKS_RESULT_FILE = "bench/results/2026-12-06-s10-capacity.json"
_BLOCKS = f"{BLOCKS_RESULT_FILE} (2026-12-06, same bench and layout)"
#: vector(384) in the chunk row: pgvector stores 4 bytes per dimension + 8 (pgvector README, "Storage").
VECTOR_COLUMN_BYTES = 4 * 384 + 8

CHUNK_BYTES: tuple[ChunkBytes, ...] = (
    ChunkBytes("document_chunks heap (without the vector)", 4096.0 - VECTOR_COLUMN_BYTES, "core",
               f"{_M}: 100K chunk_heap 4,096.0 (10K: 3,348.9) minus the vector column (4 x 384 + 8 B)"),
    ChunkBytes("document_chunks TOAST + TOAST index", 1210.0, "core", f"{_M}: 10K chunk_toast (100K: 1,193.4)"),
    ChunkBytes("document_chunks b-trees (pkey, unique, tenant)", 189.2, "core",
               f"{_M}: 100K chunk_btrees (10K: 179.4)"),
    ChunkBytes("documents (rows + indexes)", 23.8, "core", f"{_M}: 10K documents_per_chunk (100K: 3.7)"),
    ChunkBytes("document_chunks vector column", float(VECTOR_COLUMN_BYTES), "vectors",
               "pgvector: 4 bytes per dimension + 8; in the measured heap"),
    ChunkBytes("HNSW, the tenant's own index", 2048.8, "vectors", f"{_M}: 10K hnsw_tenant (100K: 2,048.1)"),
    ChunkBytes("HNSW, the shared index", 2048.8, "vectors", f"{_M}: 10K hnsw_shared (a second graph of the "
               "same rows; built in place by ingest)"),
    ChunkBytes("GIN on content_tsv", 693.0, "fulltext", f"{_M}: 10K chunk_gin_tsv (100K: 386.0)"),
    ChunkBytes("chunk_terms heap (BM25 postings)", 3412.6, "fulltext", f"{_M}: 100K postings_heap (10K: 3,357.9)"),
    ChunkBytes("chunk_terms impact index", 4073.9, "fulltext", f"{_M}: 10K postings_impact_index (100K: 3,205.8)"),
    ChunkBytes("chunk_terms primary key", 2436.3, "fulltext", f"{_M}: 10K postings_other_indexes (100K: 1,783.4)"),
    ChunkBytes("tenant_terms (document frequencies)", 205.6, "fulltext",
               f"{_M}: 10K tenant_terms (100K: 70.0; falls as the vocabulary saturates)"),
    ChunkBytes("term_blocks (packed BM25 postings: heap, TOAST, indexes)", 2081.6, "fulltext",
               f"{_BLOCKS}: 10K term_blocks (100K: 2,026.5)"),
)
#: the part of term_blocks the block-scored BM25 leg reads (heap and TOAST; its indexes are small)
TERM_BLOCKS_READ_BYTES = 1490.9


def chunk_bytes(store_prefix: str) -> float:
    """The figure of the store whose name starts with ``store_prefix``."""
    return next(c.bytes_per_chunk for c in CHUNK_BYTES if c.store.startswith(store_prefix))


@dataclass(frozen=True)
class Assumptions:
    """What ``querio cost`` and ``querio capacity`` both assume."""

    chunks_per_page: float  # chunks per PDF page
    pages_per_document: int
    hot_postings_share: float  # postings the BM25 leg can read / all postings
    postings_per_chunk: float
    #: bytes per chunk sent to OpenSearch: content plus ids, page and metadata fields
    opensearch_source_bytes_per_chunk: float
    sources: tuple[tuple[str, str], ...]

    @property
    def chunks_per_document(self) -> float:
        return self.chunks_per_page * self.pages_per_document


ASSUMPTIONS = Assumptions(
    chunks_per_page=4.224, pages_per_document=20, hot_postings_share=0.8876, postings_per_chunk=42.6,
    opensearch_source_bytes_per_chunk=572.0 + 300.0,
    sources=(
        ("chunks_per_page", f"{_M}: 2,551 chunks of 604 pages (chunk_size 1000, overlap 150, section-aware)"),
        ("pages_per_document", "costs: the seed's 1 MB documents, about 20 pages each"),
        ("hot_postings_share", f"{_M}: 100K (budget 20,000, depth 200); 1.0 at 10K"),
        ("postings_per_chunk", f"{_M}: 10K (100K: 42.55)"),
        ("opensearch_source_bytes_per_chunk", f"estimate, not measured (no live domain): {_M} content "
         "572 B per chunk + ~300 B of ids, page and metadata fields"),
    ),
)

# --- rules ----------------------------------------------------------------------------------------
#: share of the storage autoscaling ceiling the data may use (VACUUM, WAL, index rebuilds need the rest)
STORAGE_USABLE_SHARE = 0.85
#: share of the instance's RAM the hot indexes may use (shared_buffers 25% + page cache 50%)
MEMORY_USABLE_SHARE = 0.75
#: Pinecone docs: an s1 pod holds ~5M 768-dim vectors; capacity scales with 1/dimension, so ~10M of 384.
PINECONE_RECORDS_PER_POD = 10_000_000
#: AWS "Sizing Amazon OpenSearch Service domains": source x (1 + replicas) x 1.45 (indexing overhead 10%,
#: Linux reserved 5%, OpenSearch Service overhead 20%).
OPENSEARCH_SIZING_FACTOR = 1.45
#: AWS: search workloads keep shards between 10 and 30 GiB.
OPENSEARCH_SHARD_GIB = 30
#: "never" for a resource whose need does not grow with the documents
NEVER = 10**12
#: AWS: at most 25 shards per GiB of JVM heap on a data node.
OPENSEARCH_SHARDS_PER_HEAP_GIB = 25


@dataclass(frozen=True)
class Resource:
    """One resource: what ``documents`` need against what the tier provisions (same unit)."""

    name: str
    unit: str
    need: float
    provisioned: float
    documents_at_limit: int  # how many documents fill it
    rule: str

    @property
    def fits(self) -> bool:
        return self.need <= self.provisioned


@dataclass(frozen=True)
class CapacityReport:
    tier: str
    documents: int
    pages_per_document: int
    chunks: int
    resources: tuple[Resource, ...]

    @property
    def first_limit(self) -> Resource:
        """The resource that runs out first (fewest documents)."""
        return min(self.resources, key=lambda r: r.documents_at_limit)

    def as_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "documents": self.documents, "pages_per_document": self.pages_per_document,
                "chunks": self.chunks, "fits": all(r.fits for r in self.resources),
                "first_limit": {"resource": self.first_limit.name,
                                "documents": self.first_limit.documents_at_limit},
                "resources": [{"name": r.name, "unit": r.unit, "need": round(r.need, 2),
                               "provisioned": round(r.provisioned, 2), "fits": r.fits,
                               "documents_at_limit": r.documents_at_limit, "rule": r.rule}
                              for r in self.resources]}

    def render(self) -> str:
        out = [f"Querio {self.tier} tier: {self.documents:,} documents x {self.pages_per_document} pages "
               f"x {ASSUMPTIONS.chunks_per_page} chunks/page = {self.chunks:,} chunks", ""]
        w = max(len(r.name) for r in self.resources) + 2
        out.append(f"{'resource':<{w}} {'needs':>12} {'provisioned':>12}  {'unit':<8} {'fits':<4} "
                   f"{'full at (documents)':>20}")
        for r in self.resources:
            out.append(f"{r.name:<{w}} {r.need:>12,.1f} {r.provisioned:>12,.1f}  {r.unit:<8} "
                       f"{'yes' if r.fits else 'NO':<4} {_at(r.documents_at_limit):>20}")
        first = self.first_limit
        out += ["", f"Runs out first: {first.name} at {first.documents_at_limit:,} documents.", "", "Rules:"]
        out += [f"- {r.name}: {r.rule}" for r in self.resources]
        out += ["", f"Per-chunk figures: {MEASUREMENT.bench}, {MEASUREMENT.result_file} ({MEASUREMENT.date})."]
        return "\n".join(out)


def postgres_bytes_per_chunk(tier: Tier) -> float:
    """What one chunk costs in the tier's PostgreSQL: the core, plus vectors and postings where they live."""
    keep = {"core"} | ({"vectors"} if tier.vector_backend == "pgvector" else set()) | (
        {"fulltext"} if tier.fulltext_backend == "postgres" else set())
    return sum(c.bytes_per_chunk for c in CHUNK_BYTES if c.where in keep)


def hot_bytes_per_chunk(tier: Tier) -> float:
    """The indexes a query walks at random: the tenant's HNSW graph and the readable postings."""
    hot = 0.0
    if tier.vector_backend == "pgvector":
        hot += chunk_bytes("HNSW, the tenant's")
    if tier.fulltext_backend == "postgres":
        # a query reads EITHER its lexemes' packed blocks whole (while they hold at most
        # BLOCK_MAX_POSTINGS postings: every query of a tenant up to ~100K chunks) OR, past that,
        # the impact index: the larger of the two is what must stay in memory
        hot += max(chunk_bytes("chunk_terms impact") * ASSUMPTIONS.hot_postings_share, TERM_BLOCKS_READ_BYTES)
    return hot


def opensearch_bytes_per_chunk(replicas: int) -> float:
    return ASSUMPTIONS.opensearch_source_bytes_per_chunk * (1 + replicas) * OPENSEARCH_SIZING_FACTOR


def _docs(limit: float, per_document: float) -> int:
    return int(limit // per_document) if per_document > 0 else NEVER


def capacity(tier: Tier, documents: int | None = None, pages_per_document: int | None = None) -> CapacityReport:
    """Every resource of ``tier`` at ``documents`` (default: the top of its range)."""
    n = documents if documents is not None else tier.capacity_documents
    pages = pages_per_document or ASSUMPTIONS.pages_per_document
    per_doc = ASSUMPTIONS.chunks_per_page * pages  # chunks per document
    chunks = n * per_doc
    res: list[Resource] = []
    db = tier.database
    pg = postgres_bytes_per_chunk(tier)
    storage = db.max_allocated_storage_gib * STORAGE_USABLE_SHARE
    res.append(Resource("PostgreSQL storage", "GiB", chunks * pg / GIB, storage, _docs(storage * GIB, per_doc * pg),
                        f"{pg:,.0f} B/chunk ({_where(tier)}) within {STORAGE_USABLE_SHARE:.0%} of the "
                        f"{db.max_allocated_storage_gib:,} GiB autoscaling ceiling"))
    hot = hot_bytes_per_chunk(tier)
    ram = ENGINE_SPECS[db.instance_class].memory_gib * MEMORY_USABLE_SHARE
    if hot:
        res.append(Resource("PostgreSQL memory (hot indexes)", "GiB", chunks * hot / GIB, ram,
                            _docs(ram * GIB, per_doc * hot),
                            f"{hot:,.0f} B/chunk ({_hot_parts(tier)}) "
                            f"within {MEMORY_USABLE_SHARE:.0%} of {db.instance_class}'s "
                            f"{ENGINE_SPECS[db.instance_class].memory_gib:g} GiB: random index walks must not "
                            "wait on disk"))
    if tier.vector_backend == "pinecone" and tier.pinecone is not None:
        cap = tier.pinecone.pods * PINECONE_RECORDS_PER_POD
        res.append(Resource("Pinecone records", "millions", chunks / 1e6, cap / 1e6, _docs(cap, per_doc),
                            f"one record per chunk; {tier.pinecone.pods} {tier.pinecone.pod_type} pods x "
                            f"{PINECONE_RECORDS_PER_POD / 1e6:g}M 384-dim records"))
    os_ = tier.opensearch
    if tier.fulltext_backend == "opensearch" and os_ is not None:
        per = opensearch_bytes_per_chunk(os_.replicas)
        have = os_.data_nodes * os_.ebs_gib_per_node
        res.append(Resource("OpenSearch storage", "GiB", chunks * per / GIB, have, _docs(have * GIB, per_doc * per),
                            f"{per:,.0f} B/chunk = {ASSUMPTIONS.opensearch_source_bytes_per_chunk:g} B source x "
                            f"(1 + {os_.replicas} replica) x {OPENSEARCH_SIZING_FACTOR} (AWS sizing); "
                            f"{os_.data_nodes} x {os_.ebs_gib_per_node} GiB"))
        primary_gib_per_doc = per_doc * ASSUMPTIONS.opensearch_source_bytes_per_chunk * 1.1 / GIB
        shard_cap = os_.primary_shards * OPENSEARCH_SHARD_GIB
        res.append(Resource("OpenSearch primary shard size", "GiB", n * primary_gib_per_doc / os_.primary_shards,
                            OPENSEARCH_SHARD_GIB, _docs(shard_cap, primary_gib_per_doc),
                            f"{os_.primary_shards} primary shards of at most {OPENSEARCH_SHARD_GIB} GiB (AWS: "
                            "10-30 GiB for search); source x 1.1"))
        heap = min(ENGINE_SPECS[os_.data_instance_type].memory_gib / 2, 32)
        shards = os_.primary_shards * (1 + os_.replicas)
        limit = os_.data_nodes * heap * OPENSEARCH_SHARDS_PER_HEAP_GIB
        res.append(Resource("OpenSearch shards per cluster", "shards", shards, limit,
                            NEVER if shards <= limit else 0,
                            f"AWS: at most {OPENSEARCH_SHARDS_PER_HEAP_GIB} shards per GiB of JVM heap "
                            f"({heap:g} GiB per {os_.data_instance_type})"))
    return CapacityReport(tier=tier.name, documents=n, pages_per_document=pages, chunks=math.ceil(chunks),
                          resources=tuple(res))


def _hot_parts(tier: Tier) -> str:
    parts = ["the tenant's HNSW graph"] if tier.vector_backend == "pgvector" else []
    if tier.fulltext_backend == "postgres":
        parts.append(f"BM25 impact index x {ASSUMPTIONS.hot_postings_share} readable (or the packed BM25 blocks,"
                     " if larger)")
    return " + ".join(parts)


def _at(documents: int) -> str:
    return "never" if documents >= NEVER else f"{documents:,}"


def _where(tier: Tier) -> str:
    parts = ["chunks"]
    if tier.vector_backend == "pgvector":
        parts.append("vectors + HNSW")
    if tier.fulltext_backend == "postgres":
        parts.append("BM25 postings")
    return ", ".join(parts)


def markdown_table(tiers: list[Tier]) -> str:
    """The README's table: each tier at the bottom and top of its range."""
    rows = ["| tier | documents | chunks | resource | needs | provisioned | full at (documents) |",
            "|---|---:|---:|---|---:|---:|---:|"]
    for t in tiers:
        for n in (t.document_range[0], t.capacity_documents):
            rep = capacity(t, n)
            for r in rep.resources:
                mark = "" if r.fits else " **(over)**"
                rows.append(f"| {t.name} | {n:,} | {rep.chunks:,} | {r.name} ({r.unit}) | {r.need:,.1f}{mark} | "
                            f"{r.provisioned:,.1f} | {_at(r.documents_at_limit)} |")
    return "\n".join(rows)
