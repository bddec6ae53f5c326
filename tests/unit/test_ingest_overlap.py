"""``querio.ingest.pipeline.parse_chunk_embed``: parsing the next page range while the current one
embeds gives the one-pass result, and errors still surface as the whole file's."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from querio.config import load_settings
from querio.embedding import get_embedder
from querio.errors import NoExtractableText
from querio.ingest import pipeline
from querio.ingest.pdf import parse_pdf
from querio.ingest.pipeline import OVERLAP_PAGES, chunk_and_embed, embedding_context, parse_chunk_embed
from querio.ports import Embedder
from tests.fixtures.pdfs import IMAGE_PAGE, SAMPLE_PAGES, make_pdf, make_text_pdf

pytestmark = pytest.mark.slow

# a heading on one page, its text on the next ranges: sections must carry across the ranges
PAGES = [f"{i // 10 + 1}.{i % 10 + 1} Section heading number {i}\n" + SAMPLE_PAGES[i % 3] * (1 + i % 4)
         if i % 7 == 0 else SAMPLE_PAGES[i % 3] * (1 + i % 4) for i in range(2 * OVERLAP_PAGES + 5)]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    # fp32: its vectors do not depend on which texts share a batch (qint8 quantizes activations
    # per batch, so the two paths' vectors differ in the third decimal)
    return get_embedder(16, "onnx", None, "fp32")


def test_overlapped_ingest_gives_the_one_pass_chunks_and_vectors(embedder: Embedder) -> None:
    settings = load_settings()
    data = make_text_pdf(PAGES, title="Overlap handbook")
    whole = parse_pdf(data)
    chunks, vectors = chunk_and_embed(whole.pages, context=embedding_context(whole.info.title, "o.pdf"),
                                      settings=settings, embedder=embedder)

    parsed, overlapped, overlapped_vectors = parse_chunk_embed(data, filename="o.pdf", settings=settings,
                                                               embedder=embedder)
    assert parsed.pages == whole.pages and parsed.page_count == whole.page_count
    assert (parsed.word_count, parsed.empty_pages, parsed.info) == (whole.word_count, whole.empty_pages, whole.info)
    assert overlapped == chunks  # indexes, offsets, token counts and sections included
    assert any(c.section for c in chunks if c.page_number > OVERLAP_PAGES)
    assert np.allclose(overlapped_vectors, vectors, atol=1e-4)


def test_the_next_range_is_parsed_in_another_thread(embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    original = pipeline.parse_pdf

    def spy(*a: object, **kw: object) -> object:
        threads.append(threading.current_thread().name)
        return original(*a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "parse_pdf", spy)
    parse_chunk_embed(make_text_pdf(PAGES), filename="o.pdf", settings=load_settings(), embedder=embedder)
    assert len(threads) == 3 and all(name.startswith("querio-parse") for name in threads)


def test_a_long_pdf_without_text_is_refused_like_a_short_one(embedder: Embedder) -> None:
    with pytest.raises(NoExtractableText):
        parse_chunk_embed(make_pdf([IMAGE_PAGE] * (OVERLAP_PAGES + 3)), filename="scan.pdf",
                          settings=load_settings(), embedder=embedder)
