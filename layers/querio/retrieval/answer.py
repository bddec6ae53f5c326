"""Answers built from retrieved passages.

With no language model configured the answer is *extractive*: the sentences of the top
passages that are closest to the question (cosine of all-MiniLM-L6-v2 embeddings), in
passage order, each followed by its ``[n]`` citation. The response says ``mode="extractive"``
so nobody mistakes it for generated prose.

It reads like an answer, not like a page dump:

* a sentence is quoted once, although overlapping chunks repeat it (and a chunk that starts
  inside a sentence, after the overlap, does not contribute that fragment);
* table-of-contents and index lines (dot leaders, entries ending in page numbers, runs of
  numbers) are not sentences and are never quoted;
* running headers and footers are already gone from the text (``ingest.boilerplate``);
* the service lists as sources exactly the passages the answer cites (``retrieval.citing``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from querio.models import ChatMessage
from querio.ports import Embedder, StoredChunk

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])|\n{2,}")
_WORD = re.compile(r"\w+")
# "Introduction . . . . . 12", "Index.........211", "Contents …… 3"
_DOT_LEADER = re.compile(r"(?:\.\s?){4,}|\u2026{2,}|(?:\s\.){3,}")
# A line ending in a page number or a list of them: "2.3 Modifying arguments 12", "abline, 12, 45"
_ENTRY = re.compile(r"[\s,]\d{1,4}(?:\s*[,\u2013-]\s*\d{1,4})*$")
# A numbered heading with its page number, alone on a line: "2.3 Modifying arguments 12"
_TOC_LINE = re.compile(r"^(?:[A-Z]|\d{1,2})(?:\.\d{1,3})*\.?\s+\S.{0,90}\s\d{1,4}$")
#: A sentence whose words are more than this share numbers is a table or an index, not prose.
MAX_NUMBER_SHARE = 0.3


def is_furniture(text: str) -> bool:
    """True for table-of-contents and index text, which is not worth quoting as a sentence."""
    if _DOT_LEADER.search(text):
        return True
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    entries = sum(1 for line in lines if _ENTRY.search(line) and not line.endswith((".", ":", ";")))
    if entries >= 2 and 2 * entries >= len(lines):
        return True
    if len(lines) == 1 and _TOC_LINE.match(lines[0]):
        return True
    words = _WORD.findall(text)
    return bool(words) and sum(w.isdigit() for w in words) > MAX_NUMBER_SHARE * len(words)


def sentence_key(text: str) -> str:
    """Case and punctuation folded away: two quotes of one sentence have the same key."""
    return " ".join(w.lower() for w in _WORD.findall(text))


def split_sentences(text: str) -> list[str]:
    """Sentences of ≥ 4 words (shorter fragments are headings or page furniture), without
    table-of-contents and index lines, whitespace collapsed."""
    parts = (p.strip() for p in _SENTENCE.split(text))
    return [" ".join(p.split()) for p in parts if len(_WORD.findall(p)) >= 4 and not is_furniture(p)]


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
            sentences = split_sentences(passage.content)
            if sentences and sentences[0][0].islower() and len(sentences) > 1:
                sentences = sentences[1:]  # the tail of a sentence the chunk overlap cut into
            candidates.extend((p_no, s_no, s) for s_no, s in enumerate(sentences))
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
        chosen: list[tuple[int, int, str]] = []
        keys: list[str] = []
        for i in np.argsort(-(sims + bonus)):
            key = sentence_key(candidates[i][2])
            # Overlapping chunks repeat sentences, whole or cut: quote each once.
            if any(key in k or k in key for k in keys):
                continue
            chosen.append(candidates[i])
            keys.append(key)
            if len(chosen) == self._max_sentences:
                break
        chosen.sort(key=lambda c: (c[0], c[1]))
        return " ".join(f"{text} [{p_no}]" for p_no, _, text in chosen)
