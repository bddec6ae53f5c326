"""``querio.embedding``: the real all-MiniLM-L6-v2, offline, loaded once for this module.

Loading torch and the model takes seconds, so every test that needs vectors shares the
module-scoped ``embedder`` fixture (marked ``slow``).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np
import pytest

from querio.embedding import (
    DIMENSION,
    MAX_TOKENS,
    SentenceTransformerEmbedder,
    default_model_path,
    get_embedder,
)
from querio.ports import Embedder

TEXTS = [
    "How do I change the default output terminal in gnuplot?",
    "The set terminal command selects the device or file format gnuplot draws on.",
    "A data frame is a list of variables of the same number of rows with unique row names.",
    "x",
    "",
    "LaTeX class files define the overall structure of a document. " * 12,  # long, > 128 tokens
    "Grüße aus Köln, naïve café, 数据分析",
]


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    e = SentenceTransformerEmbedder(batch_size=3)  # small batches: several batches, sorted
    e.warm()
    return e


# --- no model needed ---------------------------------------------------------------------------


def test_contract_attributes_without_loading() -> None:
    e = SentenceTransformerEmbedder()
    assert (e.model_name, e.dimension, e.max_tokens) == ("all-MiniLM-L6-v2", DIMENSION, MAX_TOKENS)
    assert (DIMENSION, MAX_TOKENS) == (384, 256)
    # structural conformance to the port (Embedder is not runtime-checkable)
    for name in ("embed_documents", "embed_query", "count_tokens"):
        assert callable(getattr(e, name)) and hasattr(Embedder, name)
    typed: Embedder = e  # mypy checks the assignment
    assert typed is e
    assert not e.loaded


def test_count_tokens_does_not_load_the_model() -> None:
    e = SentenceTransformerEmbedder()
    assert e.count_tokens(["hello world", ""]) == [2, 0]
    assert e.count_tokens([]) == []
    assert not e.loaded


def test_count_tokens_matches_the_tokenizer_without_truncation_or_padding() -> None:
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(default_model_path() / "tokenizer.json"))
    reference.no_truncation()
    reference.no_padding()
    e = SentenceTransformerEmbedder()
    long_text = "statistical computing and graphics " * 200
    texts = [*TEXTS, long_text]
    expected = [len(reference.encode(t, add_special_tokens=False).ids) for t in texts]
    assert e.count_tokens(texts) == expected
    # the shipped tokenizer.json pads and truncates to 128: make sure neither happens
    assert e.count_tokens([long_text])[0] == 800
    assert e.count_tokens(["x"])[0] == 1


def test_importing_the_module_does_not_import_torch() -> None:
    code = "import sys, querio.embedding; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_get_embedder_is_cached_and_lazy() -> None:
    a = get_embedder(32, "torch")
    assert a is get_embedder(32, "torch")
    assert get_embedder(16, "torch") is not a
    assert isinstance(a, SentenceTransformerEmbedder) and a.batch_size == 32 and not a.loaded


def test_model_loads_once_under_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    e = SentenceTransformerEmbedder()
    loads: list[int] = []

    def slow_load(self: SentenceTransformerEmbedder) -> Any:
        loads.append(1)
        time.sleep(0.05)
        return object()

    monkeypatch.setattr(SentenceTransformerEmbedder, "_load", slow_load)
    threads = [threading.Thread(target=e._ensure_model) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == [1]


def test_bad_batch_size() -> None:
    with pytest.raises(ValueError):
        SentenceTransformerEmbedder(batch_size=0)


# --- with the model -----------------------------------------------------------------------------


@pytest.mark.slow
def test_documents_shape_dtype_and_norm(embedder: SentenceTransformerEmbedder) -> None:
    vectors = embedder.embed_documents(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(vectors).all()


@pytest.mark.slow
def test_no_documents(embedder: SentenceTransformerEmbedder) -> None:
    vectors = embedder.embed_documents([])
    assert vectors.shape == (0, 384) and vectors.dtype == np.float32


@pytest.mark.slow
def test_order_is_kept_although_batches_are_sorted(embedder: SentenceTransformerEmbedder) -> None:
    batched = embedder.embed_documents(TEXTS)
    one_by_one = np.stack([embedder.embed_documents([t])[0] for t in TEXTS])
    # padding in a batch changes float rounding, nothing more
    np.testing.assert_allclose(batched, one_by_one, atol=2e-5)
    reversed_ = embedder.embed_documents(TEXTS[::-1])[::-1]
    np.testing.assert_allclose(batched, reversed_, atol=2e-5)


@pytest.mark.slow
def test_query_vector(embedder: SentenceTransformerEmbedder) -> None:
    q = embedder.embed_query(TEXTS[0])
    assert q.shape == (384,) and q.dtype == np.float32
    assert abs(float(np.linalg.norm(q)) - 1.0) < 1e-5
    np.testing.assert_allclose(q, embedder.embed_documents([TEXTS[0]])[0], atol=2e-5)


@pytest.mark.slow
def test_related_texts_are_closer_than_unrelated(embedder: SentenceTransformerEmbedder) -> None:
    q = embedder.embed_query("How can I make gnuplot write its plot to a PNG file instead of the screen?")
    docs = embedder.embed_documents([
        "Use set terminal png and set output 'plot.png' to send gnuplot output to a file.",
        "A data frame is a list of variables of the same number of rows with unique row names.",
        "The LaTeX Project Public License allows modification and distribution.",
    ])
    scores = docs @ q
    assert scores[0] > scores[1] + 0.2 and scores[0] > scores[2] + 0.2
    assert scores[0] > 0.5


@pytest.mark.slow
def test_model_window_is_256(embedder: SentenceTransformerEmbedder) -> None:
    model = embedder._ensure_model()
    assert model.max_seq_length == 256
    # text beyond the window is truncated by the model, so appending to it changes nothing
    base = "word " * 300
    a, b = embedder.embed_documents([base, base + " completely different ending about cooking"])
    assert float(a @ b) > 0.9999


def test_variants_share_only_what_the_export_check_holds_to_the_reference() -> None:
    from querio.embedding import REFERENCE_VARIANT, variant_of

    # fp32/fp16 exports are checked at cosine >= 0.9999 to torch: one variant, whatever their hash
    assert variant_of("fp32", "aa" * 32) == variant_of("fp16", "bb" * 32) == REFERENCE_VARIANT
    assert SentenceTransformerEmbedder().variant == REFERENCE_VARIANT
    # a quantized export is its own variant: two quantizations are never assumed compatible
    assert variant_of("qint8", "aa" * 32) != variant_of("qint8", "bb" * 32)
    assert variant_of("qint8", "aa" * 32).startswith("all-MiniLM-L6-v2/qint8/sha256:aaaa")
