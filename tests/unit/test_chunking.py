"""``querio.ingest.chunking``: invariants over generated documents, then specific behaviour.

Property tests are seeded random documents (hypothesis is not a dependency): every seed
builds pages of words, sentences, lines, paragraphs, long unbreakable words and non-ASCII
text, with random sizes, and checks every invariant the storage and the citations rely on.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from querio.ingest.chunking import (
    HEADING_MIN_FILL,
    SPECIAL_TOKENS,
    TITLE_MAX_TOKENS,
    CountTokens,
    chunk_pages,
    heading_starts,
)
from querio.ingest.pdf import parse_pdf
from querio.models import ChunkDraft, Page

# --- fake tokenizers ---------------------------------------------------------------------------


class AdditiveCounter:
    """WordPiece-like: ceil(len/4) pieces per whitespace word, one per punctuation mark.

    Additive over whitespace like BERT's tokenizer; records its calls to check batching.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.texts = 0

    @staticmethod
    def one(text: str) -> int:
        n = 0
        for word in text.split():
            letters = re.sub(r"[^\w]", "", word)
            n += math.ceil(len(letters) / 4) + (len(word) - len(letters))
        return n

    def __call__(self, texts: Sequence[str]) -> list[int]:
        self.calls += 1
        self.texts += len(texts)
        return [self.one(t) for t in texts]


def non_additive(texts: Sequence[str]) -> list[int]:
    """Counts characters without spaces in threes: spans cost more than their words."""
    return [math.ceil(len(t.replace(" ", "").replace("\n", "")) / 3) + t.count("\n") for t in texts]


# --- generated documents --------------------------------------------------------------------------

WORDS = (
    "the", "of", "and", "a", "to", "in", "is", "data", "frame", "function", "plot", "terminal",
    "gnuplot", "argument", "value", "package", "vector", "matrix", "list", "environment", "statistical",
    "computing", "command", "option", "output", "default", "set", "über", "naïve", "café", "déjà-vu",
    "数据", "x<-c(1,2)", "f(x)=sin(x)", "e.g.", "i.e.", "Fig.", "Dr."
)


def random_page_text(rng: random.Random) -> str:
    paragraphs = []
    for _ in range(rng.randint(0, 6)):
        sentences = []
        for _ in range(rng.randint(1, 8)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(1, 30))]
            if rng.random() < 0.05:  # an unbreakable run: URL, hash, table row
                words.append("https://example.org/" + "".join(rng.choice("abcdef0123456789/") for _ in
                                                               range(rng.randint(50, 1500))))
            words[0] = words[0].capitalize()
            sentence = " ".join(words) + rng.choice([".", ".", "?", "!", ":", ""])
            sentences.append(sentence)
        # Visual lines inside a paragraph, as PDF extraction produces them.
        text = " ".join(sentences)
        text = re.sub(" ", lambda _m: "\n" if rng.random() < 0.08 else " ", text)
        paragraphs.append(text)
    return "\n\n".join(paragraphs)


def random_document(seed: int) -> tuple[list[Page], int, int, int]:
    rng = random.Random(seed)
    pages = [Page(number=i + 1, text=random_page_text(rng) if rng.random() > 0.15 else "")
             for i in range(rng.randint(1, 8))]
    chunk_size = rng.choice([50, 120, 300, 700, 1000, 2000])
    chunk_overlap = rng.randint(0, chunk_size - 1) if rng.random() < 0.3 else min(chunk_size - 1, 150)
    max_tokens = rng.choice([8, 40, 128, 256, 512])
    return pages, chunk_size, chunk_overlap, max_tokens


def check_invariants(pages: Sequence[Page], chunks: Sequence[ChunkDraft], *, chunk_size: int,
                     chunk_overlap: int, max_tokens: int, count: AdditiveCounter | None = None) -> None:
    by_number = {p.number: p for p in pages}
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        page = by_number[c.page_number]
        assert c.page_end == c.page_number  # never crosses a page
        assert page.text[c.char_start:c.char_end] == c.content  # exact offsets
        assert c.content and c.content == c.content.strip()
        assert len(c.content) <= chunk_size
        assert 0 <= c.token_count <= max_tokens - SPECIAL_TOKENS
        if count is not None:
            assert c.token_count == count.one(c.content)
    # document order, each chunk advancing on its page
    keys = [(c.page_number, c.char_start) for c in chunks]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    for prev, nxt in itertools.pairwise(chunks):
        if prev.page_number == nxt.page_number:
            assert nxt.char_end > prev.char_end
            assert prev.char_end - nxt.char_start <= chunk_overlap  # overlap bounded
    # nothing lost: every non-space character of every page is in some chunk
    for page in pages:
        covered = bytearray(len(page.text))
        for c in chunks:
            if c.page_number == page.number:
                covered[c.char_start:c.char_end] = b"\x01" * (c.char_end - c.char_start)
        missing = [i for i, ch in enumerate(page.text) if not ch.isspace() and not covered[i]]
        assert not missing, f"page {page.number}: text at {missing[:5]} is in no chunk"
    # empty pages produce nothing
    assert {c.page_number for c in chunks} == {p.number for p in pages if p.text.strip()}


@pytest.mark.parametrize("seed", range(60))
def test_invariants_on_random_documents(seed: int) -> None:
    pages, chunk_size, chunk_overlap, max_tokens = random_document(seed)
    count = AdditiveCounter()
    chunks = chunk_pages(pages, chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                         count_tokens=count, max_tokens=max_tokens)
    check_invariants(pages, chunks, chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                     max_tokens=max_tokens, count=count)
    # deterministic
    again = chunk_pages(pages, chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                        count_tokens=AdditiveCounter(), max_tokens=max_tokens)
    assert again == chunks


@pytest.mark.parametrize("seed", range(20))
def test_invariants_hold_for_a_non_additive_tokenizer(seed: int) -> None:
    # The re-split rounds must still bring every chunk under the cap.
    pages, chunk_size, chunk_overlap, max_tokens = random_document(1000 + seed)
    chunks = chunk_pages(pages, chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                         count_tokens=non_additive, max_tokens=max_tokens)
    check_invariants(pages, chunks, chunk_size=chunk_size, chunk_overlap=chunk_overlap, max_tokens=max_tokens)
    assert all(c.token_count == non_additive([c.content])[0] for c in chunks)


def test_tokenizer_is_called_in_a_few_batches() -> None:
    rng = random.Random(7)
    pages = [Page(number=i + 1, text=random_page_text(rng)) for i in range(60)]
    count = AdditiveCounter()
    chunks = chunk_pages(pages, chunk_size=1000, chunk_overlap=150, count_tokens=count, max_tokens=256)
    assert len(chunks) > 60
    # distinct words, long-word halves (a round per halving), the final verification
    assert count.calls <= 16


# --- specific behaviour ------------------------------------------------------------------------------

PROSE = ("Gnuplot is a portable command-line driven graphing utility. It was originally created to "
         "allow scientists and students to visualize mathematical functions. The default output "
         "terminal can be changed with the set terminal command. Output can also be redirected to a "
         "file with the set output command. ")


def test_overlap_is_present_and_bounded() -> None:
    page = Page(number=1, text=PROSE * 8)
    chunks = chunk_pages([page], chunk_size=400, chunk_overlap=120, count_tokens=AdditiveCounter(),
                         max_tokens=10_000)
    assert len(chunks) >= 4
    overlaps = [a.char_end - b.char_start for a, b in itertools.pairwise(chunks)]
    assert all(0 < o <= 120 for o in overlaps)


def test_zero_overlap_means_adjacent_chunks() -> None:
    page = Page(number=1, text=PROSE * 8)
    chunks = chunk_pages([page], chunk_size=400, chunk_overlap=0, count_tokens=AdditiveCounter(),
                         max_tokens=10_000)
    for a, b in itertools.pairwise(chunks):
        assert a.char_end < b.char_start and not page.text[a.char_end:b.char_start].strip()


def test_cuts_prefer_sentence_ends() -> None:
    page = Page(number=1, text=PROSE * 8)
    chunks = chunk_pages([page], chunk_size=400, chunk_overlap=0, count_tokens=AdditiveCounter(),
                         max_tokens=10_000)
    assert all(c.content.endswith(".") for c in chunks)
    assert all(c.content[0].isupper() for c in chunks)


def test_cuts_prefer_paragraphs_over_sentences() -> None:
    para = "First sentence here. Second sentence here. Third one."
    text = "\n\n".join([para] * 10)
    chunks = chunk_pages([Page(number=1, text=text)], chunk_size=200, chunk_overlap=0,
                         count_tokens=AdditiveCounter(), max_tokens=10_000)
    for c in chunks:
        assert c.content.startswith("First") and c.content.endswith("Third one.")


def test_token_cap_binds_before_the_character_cap() -> None:
    # Code-like text: many tokens per character, as in the manuals' listings.
    code = " ".join(f"x[{i}]<-f(y,{i});" for i in range(300))
    count = AdditiveCounter()
    chunks = chunk_pages([Page(number=1, text=code)], chunk_size=1000, chunk_overlap=100,
                         count_tokens=count, max_tokens=64)
    assert all(c.token_count <= 62 for c in chunks)
    assert max(len(c.content) for c in chunks) < 1000
    assert max(c.token_count for c in chunks) >= 31  # at least half the cap: not slivers


def test_an_unbreakable_word_is_split() -> None:
    blob = "A" * 2500
    page = Page(number=1, text=f"Before. {blob} After.")
    chunks = chunk_pages([page], chunk_size=1000, chunk_overlap=0, count_tokens=AdditiveCounter(),
                         max_tokens=256)
    check_invariants([page], chunks, chunk_size=1000, chunk_overlap=0, max_tokens=256)
    assert "".join(c.content for c in chunks if "A" * 10 in c.content).count("A") >= 2500


def test_tiny_tail_merges_into_the_previous_chunk() -> None:
    # 10 sentences of 40 characters, then a 10-character tail; a paragraph break after the
    # first sentence tempts the cutter, leaving room for the tail to merge.
    text = ("Para one is a short opening sentence ok.\n\n"
            + "Another sentence of forty characters ok. " * 8 + "Tail bit.")
    page = Page(number=1, text=text.strip())
    chunks = chunk_pages([page], chunk_size=400, chunk_overlap=0, count_tokens=AdditiveCounter(),
                         max_tokens=10_000)
    assert chunks[-1].content.endswith("Tail bit.")
    assert len(chunks[-1].content) > 0.15 * 400


def test_empty_and_blank_pages_are_skipped_and_pages_are_numbered_as_given() -> None:
    pages = [Page(number=1, text=""), Page(number=2, text="  \n "), Page(number=7, text="Only text here.")]
    chunks = chunk_pages(pages, chunk_size=100, chunk_overlap=10, count_tokens=AdditiveCounter(),
                         max_tokens=64)
    assert [(c.page_number, c.content, c.chunk_index) for c in chunks] == [(7, "Only text here.", 0)]
    assert chunk_pages([], chunk_size=100, chunk_overlap=10, count_tokens=AdditiveCounter(),
                       max_tokens=64) == []


def test_chunks_never_span_pages_even_when_pages_are_tiny() -> None:
    pages = [Page(number=i, text=f"Page {i} says hello.") for i in range(1, 6)]
    chunks = chunk_pages(pages, chunk_size=1000, chunk_overlap=100, count_tokens=AdditiveCounter(),
                         max_tokens=256)
    assert [c.page_number for c in chunks] == [1, 2, 3, 4, 5]


def test_section_headings() -> None:
    page1 = Page(number=1, text="Chapter 2: Vectors 10\n2.4 Logical vectors\n" + PROSE * 3
                 + "\n2.5 Missing values\n" + PROSE * 3)
    page2 = Page(number=2, text="Chapter 2: Vectors 11\n" + PROSE + "\n4. To quit, type q()\n" + PROSE)
    chunks = chunk_pages([page1, page2], chunk_size=400, chunk_overlap=0, count_tokens=AdditiveCounter(),
                         max_tokens=10_000)
    assert chunks[0].section == "2.4 Logical vectors"
    assert chunks[-1].section == "2.5 Missing values"  # carried over; the running head and list item ignored
    assert any(c.section == "2.5 Missing values" and c.page_number == 1 for c in chunks)


# --- section headings found by layout -----------------------------------------------------------------

# A manual page as pypdf extracts it (gnuplot's, shortened): unnumbered titles on lines of their own.
BODY_LINE = "The commands set arrow, set key, set label and set object allow you to draw something at an"
MANUAL_PAGE = "\n".join([
    "Comments",
    "The comment character # may appear almost anywhere in a command line, and gnuplot will ignore the",
    "rest of that line. A # does not have this effect inside a quoted string.",
    "Coordinates",
    BODY_LINE,
    "arbitrary position on the graph. This position is specified by the syntax:",
    "set size 0.5, 0.5",
    "Example:",
    "set term png size 600, 400",
    "For example, if the data file contains",
    "Height Weight Age",
    "Some simple examples are",
    "(complex trig.dem)",
    "Complex arithmetic",
    "Arithmetic operations and most built-in functions support the use of complex arguments. Complex",
    "constants are written {<real>,<imag>}.",
    "2.3 Modifying argument descriptions",
    "A wrapped line of body text that ends without any punctuation and is as long as the rest",
    "of the paragraph it belongs to, which then ends here.",
])


def heading_lines(text: str) -> list[str]:
    return [text[o:].split("\n", 1)[0] for o in heading_starts(text)]


def test_headings_are_found_by_layout_not_numbering() -> None:
    assert heading_lines(MANUAL_PAGE) == ["Comments", "Coordinates", "Complex arithmetic",
                                          "2.3 Modifying argument descriptions"]
    # code, an "Example:" lead-in, a table header after a line that leads on, a lead-in ending in
    # "are", and a full-width wrapped line are not titles
    assert heading_starts("") == []
    assert heading_lines("Just one sentence.") == []


def test_a_full_width_line_is_not_a_heading_even_without_punctuation() -> None:
    wide = "Arithmetic Operations And Most Built-in Functions Support Complex"  # 65 characters
    text = "\n".join(["Body text ends here.", wide, *[BODY_LINE[:60] + "." for _ in range(5)]])
    assert heading_lines(text) == []  # as long as the page's lines: a wrapped line, not a title
    text = "\n".join(["Body text ends here.", wide, *[BODY_LINE + " and more." for _ in range(5)]])
    assert heading_lines(text) == [wide]


def section_page(intro_sentences: int) -> tuple[Page, int]:
    intro = " ".join(["This sentence belongs to the first section and says little."] * intro_sentences)
    text = f"First topic\n{intro}\nSecond topic\n" + PROSE * 6
    return Page(number=1, text=text.strip()), text.index("Second topic")


def test_a_heading_starts_a_new_chunk_with_no_overlap_across_it() -> None:
    page, heading = section_page(5)  # ~300 characters before the heading: over the minimum fill
    chunks = chunk_pages([page], chunk_size=1000, chunk_overlap=150, count_tokens=AdditiveCounter(),
                         max_tokens=10_000)
    check_invariants([page], chunks, chunk_size=1000, chunk_overlap=150, max_tokens=10_000)
    assert chunks[0].content.startswith("First topic") and chunks[0].char_end < heading
    assert chunks[1].char_start == heading  # the next chunk opens with its title...
    assert all(c.char_start >= heading for c in chunks[1:])  # ...and nothing before it is repeated
    assert all(not (c.char_start < heading < c.char_end) for c in chunks)  # no chunk straddles it
    assert [c.section for c in chunks[:2]] == ["First topic", "Second topic"]
    assert all(c.section == "Second topic" for c in chunks[1:])


def test_a_heading_near_the_chunk_start_does_not_leave_a_sliver() -> None:
    page, heading = section_page(1)  # ~70 characters: under HEADING_MIN_FILL of 1000
    assert heading < HEADING_MIN_FILL * 1000
    chunks = chunk_pages([page], chunk_size=1000, chunk_overlap=150, count_tokens=AdditiveCounter(),
                         max_tokens=10_000)
    assert chunks[0].char_start == 0 and chunks[0].char_end > heading
    assert chunks[0].section == "Second topic"  # the heading in its first half names it


def test_carried_titles_fit_inside_the_token_cap() -> None:
    page, _ = section_page(5)
    count = AdditiveCounter()
    plain = chunk_pages([page], chunk_size=100_000, chunk_overlap=40, count_tokens=count, max_tokens=64)
    carried = chunk_pages([page], chunk_size=100_000, chunk_overlap=40, count_tokens=count, max_tokens=64,
                          carry_titles=True)
    check_invariants([page], carried, chunk_size=100_000, chunk_overlap=40, max_tokens=64, count=count)
    title = count.one("Second topic")
    inside = [c for c in carried if not c.content.startswith(c.section or "")]
    assert inside and all(c.token_count + title <= 62 for c in inside)  # room kept for the title
    assert max(c.token_count for c in inside) >= (62 - title) // 2  # not slivers
    assert len(carried) >= len(plain)


@pytest.mark.parametrize("seed", range(30))
def test_invariants_with_carried_titles(seed: int) -> None:
    pages, chunk_size, chunk_overlap, max_tokens = random_document(2000 + seed)
    rng = random.Random(seed)
    # sprinkle titles on lines of their own after paragraph ends
    titles = ["Usage", "Set output", "Examples"]
    pages = [Page(number=p.number, text=p.text.replace(".\n\n", f".\n{rng.choice(titles)}\n", 2)) for p in pages]
    count = AdditiveCounter()
    chunks = chunk_pages(pages, chunk_size=chunk_size, chunk_overlap=chunk_overlap, count_tokens=count,
                         max_tokens=max_tokens, carry_titles=True)
    check_invariants(pages, chunks, chunk_size=chunk_size, chunk_overlap=chunk_overlap, max_tokens=max_tokens,
                     count=count)
    room = min(TITLE_MAX_TOKENS, (max_tokens - SPECIAL_TOKENS) // 4)
    for c in chunks:
        if c.section and f"\n{c.section}" not in f"\n{c.content}" \
                and not c.section.startswith(c.content.split("\n", 1)[0]):  # the title embedded before it
            assert c.token_count + min(count.one(c.section), room) <= max_tokens - SPECIAL_TOKENS


@pytest.mark.parametrize(("size", "overlap", "max_tokens"), [(0, 0, 256), (100, 100, 256), (100, -1, 256),
                                                             (100, 10, 2)])
def test_bad_arguments(size: int, overlap: int, max_tokens: int) -> None:
    with pytest.raises(ValueError):
        chunk_pages([Page(number=1, text="x")], chunk_size=size, chunk_overlap=overlap,
                    count_tokens=AdditiveCounter(), max_tokens=max_tokens)


def test_wrong_number_of_counts_is_an_error() -> None:
    with pytest.raises(ValueError, match="counts"):
        chunk_pages([Page(number=1, text="a b c")], chunk_size=100, chunk_overlap=0,
                    count_tokens=lambda texts: [1], max_tokens=256)


# --- with the model's tokenizer (tokenizers only: no torch) ---------------------------------------------


@pytest.fixture(scope="module")
def real_count_tokens() -> CountTokens:
    from querio.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder().count_tokens  # loads tokenizer.json only


def test_real_manual_with_the_model_tokenizer(eval_pdf_dir: Path, real_count_tokens: CountTokens) -> None:
    parsed = parse_pdf((eval_pdf_dir / "clsguide.pdf").read_bytes())
    chunks = chunk_pages(parsed.pages, chunk_size=1000, chunk_overlap=150, count_tokens=real_count_tokens,
                         max_tokens=256)
    check_invariants(parsed.pages, chunks, chunk_size=1000, chunk_overlap=150, max_tokens=256)
    assert real_count_tokens([c.content for c in chunks]) == [c.token_count for c in chunks]
    assert max(c.token_count for c in chunks) <= 254
    assert len(chunks) > parsed.page_count
