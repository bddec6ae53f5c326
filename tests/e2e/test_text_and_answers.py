"""Issue 11 items 4, 8 and 9 (first bullet) through the router and the service, on the
embedded stack (PostgreSQL + pgvector, filesystem blobs, the real embedding model)."""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path

import numpy as np
import pytest

from querio.config import Settings
from querio.models import ChunkDraft, NewDocument, Principal, QueryRequest, SearchRequest
from querio.retrieval.answer import ExtractiveAnswerer
from querio.service import QuerioService
from tests.fixtures.events import ApiClient
from tests.fixtures.pdfs import make_text_pdf, make_unicode_pdf
from tests.fixtures.service import make_settings

pytestmark = pytest.mark.e2e

MARKER = re.compile(r"\[(\d+)\]")
PAGE_BREAK = "\f"  # querio.models.PAGE_BREAK, spelled out so this file also runs on older code


def sentence_key(text: str) -> str:
    return " ".join(w.lower() for w in re.findall(r"\w+", text))


# --- item 4: one normalization on both sides ---------------------------------------------------------


def test_a_ligature_or_full_width_query_finds_the_plain_word(api: ApiClient) -> None:
    pages = ["Quarterly financial statements are filed with the regulator every March.",
             "The garden needs water in dry weeks."]
    assert api.upload(make_text_pdf(pages), "report.pdf").status == 201
    for query in ("\ufb01nancial statements", "\uff46\uff49\uff4e\uff41\uff4e\uff43\uff49\uff41\uff4c statements"):
        reply = api.post("/api/search", {"query": query, "mode": "text", "k": 3})
        assert reply.status == 200, reply.json
        assert [r["page"] for r in reply.json["results"]] == [1], (query, reply.json)
    # The cache key is built from the normalized query too: the plain spelling is the same search.
    again = api.post("/api/search", {"query": "financial statements", "mode": "text", "k": 3})
    assert again.json["cached"] is True


def test_a_pdf_with_unpaired_surrogates_is_ingested_and_searchable(api: ApiClient) -> None:
    """Before: the tokenizer raised TypeError during chunking and the upload was a 500."""
    pages = ["Hydrographic charts show the depth \ud835 of coastal water. " * 3,
             "Tide tables \udc00 predict high and low water at each port."]
    reply = api.upload(make_unicode_pdf(pages, title="Charts \ud835"), "charts.pdf")
    assert reply.status == 201, reply.json
    assert reply.json["outcome"]["document"]["title"] == "Charts"
    found = api.post("/api/search", {"query": "tide tables \ud800 for each port", "k": 3})
    assert found.status == 200, found.json
    assert found.json["results"][0]["page"] == 2


def test_a_soft_hyphenated_word_is_found_by_keyword_search(api: ApiClient) -> None:
    pages = ["The survey office makes hydro\u00ad\ngraphic charts of the harbour approaches.",
             "Unrelated text about baking bread and cakes."]
    assert api.upload(make_unicode_pdf(pages), "survey.pdf").status == 201
    reply = api.post("/api/search", {"query": "hydrographic", "mode": "text", "k": 3})
    assert [r["page"] for r in reply.json["results"]] == [1], reply.json


def test_a_filename_with_a_lone_surrogate_is_stored(service: QuerioService, alice: Principal) -> None:
    outcome = service.ingest(alice, make_text_pdf(["Some text about maps and charts here."]),
                             "sea\udcff charts.pdf")
    assert outcome.status == "ingested" and outcome.document is not None
    assert outcome.document.filename == "sea charts.pdf"
    assert outcome.document.original_filename == "sea charts.pdf"


# --- item 8: extractive answers read like answers -----------------------------------------------------

HEADER = "Querio Cycling Handbook"
TOC = ("Contents\n1 Tyres . . . . . . . . . . . . . . 2\n1.1 Repairing a puncture in the inner tube . . . . . 3\n"
       "2 Brakes . . . . . . . . . . . . . . 4\nIndex . . . . . . . . . . . . . . 6")
PUNCTURE_PAGE = (
    "To repair a puncture, first take the wheel out of the frame and let the remaining air out. "
    "Lever the tyre off the rim with two tyre levers and pull the inner tube out. "
    "Pump a little air into the tube and listen for the hiss to find the hole. "
    "Roughen the rubber around the hole with sandpaper and spread a thin layer of glue. "
    "Press the patch onto the glue firmly and wait a minute for it to set. "
    "Check the inside of the tyre for thorns or glass before you put the tube back. "
    "Refit the tube and the tyre, pump it to the pressure written on the sidewall and refit the wheel."
)
OTHER_PAGES = [
    "Tyres wear out with use. Check the tread depth and the sidewalls before every long ride.",
    "Brakes need adjusting as the pads wear. Turn the barrel adjuster until the lever feels firm.",
    "Chains stretch over time. Measure them with a chain checker and replace them when worn.",
]
INDEX = "Index\nbrakes, 4\nchain, 5\ninner tube, 3\npuncture, 3\ntyre levers, 3\nwheel, 3, 4"


def handbook() -> bytes:
    bodies = [TOC, OTHER_PAGES[0], PUNCTURE_PAGE, OTHER_PAGES[1], OTHER_PAGES[2], INDEX]
    return make_text_pdf([f"{HEADER}\n{body}\n{n}" for n, body in enumerate(bodies, start=1)], title="Handbook")


@pytest.fixture
def settings(tmp_path: Path, pg_dsn: str) -> Settings:
    # Small overlapping chunks: the puncture page becomes several chunks sharing sentences.
    return make_settings(tmp_path / "data", pg_dsn, chunk_size=300, chunk_overlap=150)


def claims_of(answer: str) -> list[str]:
    return [c.strip() for c in MARKER.split(answer)[::2] if c.strip()]


def test_an_extractive_answer_reads_like_an_answer(service: QuerioService, alice: Principal) -> None:
    assert service.ingest(alice, handbook(), "handbook.pdf").status == "ingested"
    answer = service.query(alice, QueryRequest(query="How do I repair a puncture in the inner tube?", k=5))
    text = answer.answer
    assert answer.mode == "extractive" and claims_of(text)
    keys = [sentence_key(c) for c in claims_of(text)]
    assert len(set(keys)) == len(keys), text  # no sentence twice
    assert HEADER not in text and ". . ." not in text and "puncture, 3" not in text, text
    # Sources are exactly what the answer cites, numbered 1..m in citation order.
    cited = [int(n) for n in MARKER.findall(text)]
    assert sorted(set(cited)) == list(range(1, len(answer.sources) + 1)), (text, len(answer.sources))
    assert [c.chunk_id for c in answer.citations] == [s.chunk_id for s in answer.sources]
    assert all(c.page == 3 for c in answer.citations), answer.citations


def test_overlapping_passages_quote_a_sentence_once_and_never_a_toc(service: QuerioService) -> None:
    from querio.ports import StoredChunk

    question = "How do I find the hole in the inner tube?"
    shared = "Pump a little air into the tube and listen for the hiss to find the hole."

    def passage(n: int, content: str) -> StoredChunk:
        return StoredChunk(id=uuid.uuid4(), document_id=uuid.uuid4(), chunk_index=n, content=content,
                           page_number=n + 1, page_end=n + 1, filename="h.pdf", title=None)

    passages = [passage(0, f"Lever the tyre off the rim with two levers. {shared}"),
                passage(1, f"{shared} Roughen the rubber around the hole."),
                passage(2, "1.1 Finding the hole in the inner tube . . . . . . . 3\n"
                           "1.2 Patching the inner tube . . . . . . . . 4")]
    text = ExtractiveAnswerer(service.embedder).answer(question, passages)
    assert text.count(shared) == 1, text
    assert ". . ." not in text and "Finding the hole" not in text, text


# --- item 9: a chunk spanning pages cites the page of the match -------------------------------------------


def store_chunks(service: QuerioService, tenant: str, chunks: list[ChunkDraft]) -> uuid.UUID:
    """A completed document with exactly ``chunks`` (as a chunker that spans pages stores them)."""
    data = "\n".join(c.content for c in chunks).encode()
    new = NewDocument(tenant_id=tenant, filename="atlas.pdf", original_filename="atlas.pdf", file_size=len(data),
                      content_sha256=hashlib.sha256(data).hexdigest(), storage_type="filesystem",
                      storage_path=f"tenants/{tenant}/atlas.pdf")
    doc, _ = service.documents.claim_document(new)
    service.documents.try_start_processing(tenant, doc.id, stale_after_s=60)
    vectors = service.embedder.embed_documents([c.content for c in chunks]).astype(np.float32)
    service.documents.complete_document(tenant, doc.id, chunks=chunks, embeddings=vectors,
                                        info={"page_count": 5, "title": "Atlas",
                                              "embedder_variant": service.embedder.variant})
    return doc.id


def test_a_chunk_spanning_two_pages_cites_the_page_of_the_match(service: QuerioService, alice: Principal) -> None:
    page4 = "Mountain ranges form where tectonic plates collide and push the crust upward."
    page5 = "River deltas form where a river deposits sediment as it slows on entering the sea."
    content = f"{page4}\n{PAGE_BREAK}\n{page5}"
    store_chunks(service, alice.tenant_id, [
        ChunkDraft(chunk_index=0, content="Atlas of landforms, an introduction for students.", page_number=1,
                   page_end=1, char_start=0, char_end=48, token_count=10),
        ChunkDraft(chunk_index=1, content=content, page_number=4, page_end=5, char_start=0,
                   char_end=len(page4), token_count=40),
    ])
    service.cache.incr(f"gen:{alice.tenant_id}")
    hits = service.search(alice, SearchRequest(query="how do river deltas form from sediment", k=2)).results
    spanning = next(h for h in hits if h.page_end == 5)
    assert spanning.page == 5  # before: always the chunk's first page, 4
    assert (spanning.page_start, spanning.page_end) == (4, 5)
    hits = service.search(alice, SearchRequest(query="why do tectonic plates make mountain ranges", k=2)).results
    assert next(h for h in hits if h.page_end == 5).page == 4

    answer = service.query(alice, QueryRequest(query="How do river deltas form?", k=2))
    assert "River deltas form" in answer.answer
    spanning_citation = next(c for c in answer.citations if c.chunk_id == spanning.chunk_id)
    quoted = [n for n, text in ((4, page4), (5, page5)) if text in answer.answer]
    assert spanning_citation.pages == quoted, answer
    assert spanning_citation.page in quoted
