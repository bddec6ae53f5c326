import random
import re
import uuid

import pytest

from querio.models import ChunkRef
from querio.retrieval.hybrid import rrf_fuse
from querio.service import make_snippet, result_ttl_s

A, B, C, D = (uuid.UUID(int=i) for i in range(1, 5))


def refs(*ids: uuid.UUID) -> list[ChunkRef]:
    return [ChunkRef(chunk_id=i, score=1.0 / n) for n, i in enumerate(ids, start=1)]


def test_rrf_rewards_agreement_between_retrievers() -> None:
    fused = rrf_fuse(refs(A, B, C), refs(C, D, A), alpha=0.5, rrf_k=60, limit=10)
    assert [f.chunk_id for f in fused][:2] == [A, C]  # both appear in both lists
    assert fused[0].vector_rank == 1 and fused[0].text_rank == 3
    assert {f.chunk_id for f in fused} == {A, B, C, D}


@pytest.mark.parametrize(("alpha", "expected"), [(1.0, [A, B, C]), (0.0, [C, D, A])])
def test_alpha_extremes_reproduce_one_retriever(alpha: float, expected: list[uuid.UUID]) -> None:
    fused = rrf_fuse(refs(A, B, C), refs(C, D, A), alpha=alpha, rrf_k=60, limit=10)
    assert [f.chunk_id for f in fused] == expected


def test_rrf_respects_limit_and_handles_empty_inputs() -> None:
    assert rrf_fuse([], [], alpha=0.5, rrf_k=60, limit=5) == []
    assert len(rrf_fuse(refs(A, B, C), [], alpha=0.5, rrf_k=60, limit=2)) == 2


def test_seed_ttl_rules() -> None:
    assert result_ttl_s("latest release notes please") == 300
    assert result_ttl_s("Recent changes") == 300
    assert result_ttl_s("gnuplot terminals") == 1800
    assert result_ttl_s("how do I set the output terminal") == 3600


def test_snippet_centres_on_query_terms() -> None:
    text = ("lorem ipsum " * 60) + "the puncture repair kit contains patches and glue " + ("dolor sit " * 60)
    snippet = make_snippet(text, "puncture repair", width=120)
    assert "puncture repair" in snippet
    assert len(snippet) <= 122 and snippet.startswith("…")
    assert make_snippet("short text", "x") == "short text"


def _snippet_by_counting(text: str, query: str, width: int) -> str:
    """The plain definition: count every term's occurrences in every window, keep the first best."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    terms = {w.lower() for w in re.findall(r"\w+", query) if len(w) > 2}
    lowered = flat.lower()
    step = max(width // 4, 1)
    best, best_at = -1, 0
    for start in range(0, max(len(flat) - width, 0) + step, step):
        hits = 0
        for t in terms:
            at = lowered.find(t)
            while at >= 0:
                hits += start <= at <= start + width - len(t)
                at = lowered.find(t, at + len(t))
        if hits > best:
            best, best_at = hits, start
    return ("…" if best_at > 0 else "") + flat[best_at:best_at + width] + ("…" if best_at + width < len(flat) else "")


def test_snippet_picks_the_window_the_plain_definition_picks() -> None:
    rng = random.Random(7)
    vocab = ["plot", "axis", "label", "terminal", "set", "the", "output", "font", "size", "é", "naïve", "x"]
    for _ in range(300):
        text = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 400)))
        query = " ".join(rng.sample(vocab, rng.randint(1, 4)))
        width = rng.choice([7, 40, 120, 240])
        assert make_snippet(text, query, width=width) == _snippet_by_counting(text, query, width)
