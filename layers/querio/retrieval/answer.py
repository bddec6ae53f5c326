"""Answers built from retrieved passages.

With no language model configured the answer is *extractive*: the sentences of the top
passages that are closest to the question (cosine of all-MiniLM-L6-v2 embeddings), in
passage order, each followed by its ``[n]`` citation. The response says ``mode="extractive"``
so nobody mistakes it for generated prose.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from querio.models import ChatMessage
from querio.ports import Embedder, StoredChunk

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])|\n{2,}")
_WORD = re.compile(r"\w+")


def split_sentences(text: str) -> list[str]:
    """Sentences of ≥ 4 words (shorter fragments are headings or page furniture)."""
    parts = (p.strip() for p in _SENTENCE.split(text))
    return [" ".join(p.split()) for p in parts if len(_WORD.findall(p)) >= 4]


class ExtractiveAnswerer:
    """Picks up to ``max_sentences`` sentences from the first ``max_passages`` passages."""

    mode = "extractive"
    model: str | None = None

    def __init__(self, embedder: Embedder, *, max_passages: int = 3, max_sentences: int = 3) -> None:
        self._embedder = embedder
        self._max_passages = max_passages
        self._max_sentences = max_sentences

    def answer(self, question: str, passages: Sequence[StoredChunk],
               history: Sequence[ChatMessage] = ()) -> str:
        candidates: list[tuple[int, int, str]] = []  # (passage no, sentence no, text)
        for p_no, passage in enumerate(passages[: self._max_passages], start=1):
            for s_no, sentence in enumerate(split_sentences(passage.content)):
                candidates.append((p_no, s_no, sentence))
        if not candidates:
            if not passages:
                return "No indexed passage matches this question."
            first = passages[0]
            return f"{' '.join(first.content.split())[:400]} [1]"
        q = self._embedder.embed_query(question)
        s = self._embedder.embed_documents([c[2] for c in candidates])
        sims = s @ q
        # A small bonus for the best-ranked passage keeps the answer anchored to the top hit.
        bonus = np.array([0.05 if c[0] == 1 else 0.0 for c in candidates], dtype=np.float32)
        best = np.argsort(-(sims + bonus))[: self._max_sentences]
        chosen = sorted((candidates[i] for i in best), key=lambda c: (c[0], c[1]))
        return " ".join(f"{text} [{p_no}]" for p_no, _, text in chosen)
