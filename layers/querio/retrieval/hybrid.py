"""Reciprocal rank fusion (RRF) of the vector and full-text rankings.

RRF (Cormack, Clarke & Büttcher, SIGIR 2009) scores a chunk by ``sum_i w_i / (k + rank_i)``.
It needs no score calibration between retrievers, which is why it replaces the seed's
weighted sum of raw scores (``hybrid_search``): cosine and ts_rank live on different scales.
The seed's ``alpha`` survives as the weight split: ``w_vector = alpha``,
``w_text = 1 - alpha`` (0 = full-text only, 1 = vector only).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from querio.models import ChunkRef


@dataclass(frozen=True, slots=True)
class Fused:
    chunk_id: uuid.UUID
    score: float
    vector_rank: int | None  # 1-based
    text_rank: int | None


def rrf_fuse(vector: Sequence[ChunkRef], text: Sequence[ChunkRef], *, alpha: float, rrf_k: int,
             limit: int) -> list[Fused]:
    """Fuse two best-first rankings; ties broken by vector rank, then text rank, then id.

    Returns at most ``limit`` items, best first. A retriever with weight 0 contributes nothing,
    so ``alpha=1`` reproduces pure vector order and ``alpha=0`` pure full-text order.
    """
    v_rank = {r.chunk_id: i for i, r in enumerate(vector, start=1)} if alpha > 0 else {}
    t_rank = {r.chunk_id: i for i, r in enumerate(text, start=1)} if alpha < 1 else {}
    fused = []
    for cid in v_rank.keys() | t_rank.keys():
        vr, tr = v_rank.get(cid), t_rank.get(cid)
        score = (alpha / (rrf_k + vr) if vr else 0.0) + ((1 - alpha) / (rrf_k + tr) if tr else 0.0)
        fused.append(Fused(cid, score, vr, tr))
    big = 1 << 30
    fused.sort(key=lambda f: (-f.score, f.vector_rank or big, f.text_rank or big, f.chunk_id))
    return fused[:limit]
