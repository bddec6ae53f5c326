"""An ``Embedder`` without a model: hashed bags of words, L2-normalised (texts sharing words are
close), so the domain's ingest and search run in milliseconds with the network off."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from querio.ports import Vector

_WORD = re.compile(r"\w+")


class HashEmbedder:
    model_name = "hash-bow"
    variant = "hash-bow"  # the one variant the fakes record (no EmbedderVariants store)
    dimension = 384
    max_tokens = 256

    def _one(self, text: str) -> Vector:
        v = np.zeros(self.dimension, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            v[int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big") % self.dimension] += 1
        norm = float(np.linalg.norm(v))
        return v / norm if norm else v

    def embed_documents(self, texts: Sequence[str]) -> Vector:
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    def embed_query(self, text: str) -> Vector:
        return self._one(text)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORD.findall(t)) + t.count(" ") // 8 for t in texts]
