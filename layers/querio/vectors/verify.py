"""``querio vectors verify``: do pgvector and Pinecone hold, and return, the same vectors?

Two checks:

1. **Counts per tenant**: live vectors in PostgreSQL (``VectorSource.live_counts``)
   against the records in the tenant's Pinecone namespace (``describe_index_stats``; on real
   Pinecone these lag writes by seconds, so verify after writes settle).
2. **Answers on real queries**: up to ``sample`` recent distinct queries from
   ``query_analytics`` (what users actually asked, per tenant), or, when there are none, the
   questions of a file (``{"question": ...}`` JSON lines, e.g. the eval set) asked of every
   tenant. Each is embedded and sent to pgvector as configured (exact or HNSW), to Pinecone,
   and to an exact pgvector scan (the ground truth). Reported: **top-k agreement** (mean of
   ``|pgvector ∩ pinecone| / max(|pgvector|, |pinecone|)``) and **recall@k** of each store
   against exact search (mean of ``|store ∩ exact| / |exact|``).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from querio.adapters.pinecone_vectors import PineconeVectorStore
from querio.adapters.postgres.vectors import PgVectorStore
from querio.errors import ValidationFailed
from querio.models import ChunkRef, SearchFilters
from querio.ports import QueryLog, Vector, VectorSource
from querio.vectors.mirror import agreement

EXACT = 2**62  # exact_scan_max_rows that no tenant exceeds: always the exact plan


@dataclass
class VerifyReport:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # tenant -> {"pgvector", "pinecone"}
    counts_match: bool = True
    mismatched_tenants: list[str] = field(default_factory=list)
    k: int = 10
    query_source: str | None = None  # "query_analytics", a file path, or None (no query check)
    queries: int = 0
    agreement_at_k: float | None = None
    recall_at_k: dict[str, float] = field(default_factory=dict)  # "pgvector" / "pinecone" -> mean recall@k
    min_agreement: float | None = None

    @property
    def ok(self) -> bool:
        return self.counts_match


def load_questions(path: Path) -> list[str]:
    """Questions from a JSON-lines file (``question`` or ``query`` keys) or plain lines of text."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise ValidationFailed(f"{path}: not JSON lines ({exc})") from exc
            text = item.get("question") or item.get("query")
            if text:
                out.append(str(text))
        else:
            out.append(line)
    return out


def verify(source: VectorSource, queries: QueryLog, pgvector: PgVectorStore, target: PineconeVectorStore, *,
           embed_query: Callable[[str], Vector] | None = None, questions: Sequence[str] = (),
           k: int = 10, sample: int = 50, tenants: Sequence[str] | None = None) -> VerifyReport:
    """Run both checks (see the module docstring). The query check needs ``embed_query``; it
    uses stored analytics first, else ``questions``. Raises ``TransientError`` and
    ``ConfigurationError`` from either store."""
    report = VerifyReport(k=k)
    pg_counts = source.live_counts(tenants)
    pc_counts = target.namespace_counts()
    names = sorted(set(pg_counts) | ({t for t in pc_counts if tenants is None or t in tenants}))
    for tenant in names:
        pg_n, pc_n = pg_counts.get(tenant, 0), pc_counts.get(tenant, 0)
        report.counts[tenant] = {"pgvector": pg_n, "pinecone": pc_n}
        if pg_n != pc_n:
            report.mismatched_tenants.append(tenant)
    report.counts_match = not report.mismatched_tenants
    if embed_query is None or sample <= 0:
        return report

    pairs = [(t, q) for t, q in queries.recent_queries(sample) if t in pg_counts]
    report.query_source = "query_analytics"
    if not pairs and questions:
        pairs = [(t, q) for q in questions for t in sorted(pg_counts)][:sample]
        report.query_source = "questions"
    if not pairs:
        report.query_source = None
        return report

    exact = PgVectorStore(pgvector.store, exact_scan_max_rows=EXACT)
    nofilter = SearchFilters()
    agreements: list[float] = []
    recalls: dict[str, list[float]] = {"pgvector": [], "pinecone": []}
    for tenant, text in pairs:
        vector = embed_query(text)
        truth = exact.query(tenant, vector, k, nofilter)
        answers: dict[str, list[ChunkRef]] = {"pgvector": pgvector.query(tenant, vector, k, nofilter),
                                              "pinecone": target.query(tenant, vector, k, nofilter)}
        agreements.append(agreement(answers["pgvector"], answers["pinecone"]))
        if truth:
            truth_ids = {r.chunk_id for r in truth}
            for name, refs in answers.items():
                recalls[name].append(len(truth_ids & {r.chunk_id for r in refs}) / len(truth_ids))
    report.queries = len(pairs)
    report.agreement_at_k = round(statistics.fmean(agreements), 4)
    report.min_agreement = round(min(agreements), 4)
    report.recall_at_k = {name: round(statistics.fmean(v), 4) for name, v in recalls.items() if v}
    return report
