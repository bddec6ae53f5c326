"""Issue 11 items 4 and 8 on the parser and chunker: the same character normalization for
documents and queries, hostile characters from real (generated) PDFs, running headers."""

from __future__ import annotations

import pytest

from querio.embedding import SentenceTransformerEmbedder
from querio.ingest.chunking import chunk_pages
from querio.ingest.pdf import clean_text, parse_pdf
from querio.models import QueryRequest, SearchRequest
from tests.fixtures.pdfs import make_text_pdf, make_unicode_pdf

HOSTILE = ("\ufb01nancial \uff30\uff24\uff26 re\u00adport hydro\u00ad\ngraphic \u200bsur\u200evey "
           "nul\x00l c1\x85ctl \ufffeend lone\ud835 pair\ud835\udc00")


def test_query_gets_exactly_the_document_normalization() -> None:
    from querio.text import normalize_line

    query = "\ufb01nancial  \uff30\uff24\uff26 re\u00adport \u200bsur\u200evey"
    expected = "financial PDF report survey"
    assert SearchRequest(query=query).query == expected
    assert QueryRequest(query=query).query == expected
    # the same function on the document side gives the same words
    assert clean_text(query) == expected
    assert normalize_line(expected) == expected  # idempotent


def test_a_query_of_invisible_characters_only_is_rejected() -> None:
    with pytest.raises(ValueError, match="visible text"):
        SearchRequest(query="\u200b\u00ad\ufeff")


def test_surrogates_are_paired_or_dropped() -> None:
    from querio.text import normalize_chars, repair_surrogates

    assert repair_surrogates("a\ud835\udc00b") == "a\U0001d400b"
    assert repair_surrogates("lone\ud835 x\udc00y") == "lone xy"
    text = normalize_chars(HOSTILE)
    text.encode("utf-8")  # no lone surrogate is left
    assert "pairA" in text  # MATHEMATICAL BOLD CAPITAL A, repaired then NFKC'd


def test_hostile_characters_in_a_real_pdf_are_normalized() -> None:
    data = make_unicode_pdf([HOSTILE + "\nThe survey continues on the next line."],
                            title="Survey \ud835 of \ufb01elds")
    parsed = parse_pdf(data)
    text = parsed.pages[0].text
    text.encode("utf-8")
    for word in ("financial", "PDF", "report", "hydrographic", "survey", "pairA"):
        assert word in text, (word, text)
    for ch in "\x00\x85\ufffe\u00ad\u200b\u200e\ufb01":
        assert ch not in text, (hex(ord(ch)), text)
    assert parsed.info.title == "Survey of fields"


def test_soft_hyphen_at_a_line_end_joins_the_word_halves() -> None:
    data = make_unicode_pdf(["The hydro\u00ad\ngraphic office publishes charts.\nA com\u00adputer draws them."])
    text = parse_pdf(data).pages[0].text
    assert "hydrographic office" in text
    assert "computer draws" in text


@pytest.mark.slow
def test_unpaired_surrogates_chunk_with_the_real_tokenizer() -> None:
    """Before: the tokenizer raised TypeError on the lone surrogate (upload 500, DLQ)."""
    data = make_unicode_pdf(["Bad map \ud835 here. " * 20, "Another page with a lone \udc00 low half."])
    pages = parse_pdf(data).pages
    embedder = SentenceTransformerEmbedder()
    chunks = chunk_pages(pages, chunk_size=300, chunk_overlap=50, count_tokens=embedder.count_tokens,
                         max_tokens=embedder.max_tokens)
    assert chunks and all(c.token_count > 0 for c in chunks)
    assert embedder.embed_documents([c.content for c in chunks]).shape[0] == len(chunks)


# --- running headers and footers (item 8) -----------------------------------------------------------

BODY = [
    "Tyres wear out with use. Check the tread before every long ride.",
    "A puncture is repaired with a patch. Roughen the tube around the hole first.",
    "Brakes need adjusting as the pads wear. Turn the barrel adjuster a little.",
    "Chains stretch over time. Measure them with a chain checker every month.",
    "Lights are required at night. Charge them after every ride.",
    "Bells warn walkers politely. Ring early rather than late.",
]


def handbook_pages() -> list[str]:
    return [f"Querio Cycling Handbook\nChapter {1 + i // 3}: Care\n{body}\n- {i + 1} -"
            for i, body in enumerate(BODY)]


def test_running_headers_and_page_numbers_are_stripped_at_ingest() -> None:
    parsed = parse_pdf(make_text_pdf(handbook_pages()))
    for page, body in zip(parsed.pages, BODY, strict=True):
        assert page.text == body, page.text


def test_a_line_repeated_on_few_pages_or_inside_a_page_stays() -> None:
    pages = [f"Overview\n{BODY[0]}", f"Querio Cycling Handbook is a short guide.\n{BODY[1]}\nSummary",
             BODY[2], BODY[3]]
    parsed = parse_pdf(make_text_pdf(pages))
    assert [p.text for p in parsed.pages] == [
        f"Overview\n{BODY[0]}", f"Querio Cycling Handbook is a short guide.\n{BODY[1]}\nSummary", BODY[2], BODY[3]]
    # punctuation alone (a "}" closing code at several page ends) is content, not a running line
    code = [f"{body}\nif (x) {{\nprint(\"{body.split()[0]}\");\n}}" for body in BODY]
    assert all(p.text.endswith("}") for p in parse_pdf(make_text_pdf(code)).pages)
