"""Page-aware chunking: pages → chunks capped in characters *and* in model tokens.

Why both caps: all-MiniLM-L6-v2 sees 256 word pieces ([CLS] and [SEP] included). On the
eval manuals a 1,000-character chunk is a median of 258 tokens, so 52% of such chunks are
cut by the model and 11.6% of the text is never embedded; code and tables overflow even at
600 characters (``/work/shared/notes/measured-limits.md``). Counting with the model's own
tokenizer and capping each chunk at ``max_tokens - 2`` embeds all the text.

How (one document, ``N`` words):

1. Each page is split into whitespace-delimited *units* (``\\S+`` with their offsets). A
   chunk starts at a unit's start and ends at a unit's end, so ``page.text[char_start:
   char_end] == content`` holds by construction and no chunk begins or ends with spaces.
2. Unit token counts come from ONE batched ``count_tokens`` call over the document's
   distinct words. WordPiece (BERT) pre-tokenises on whitespace first, so the tokens of a
   span are the sum of its units' tokens; other tokenizers are covered by step 4.
3. Greedy pass per page: extend the chunk while it fits both caps, then cut at the best
   boundary in the chunk's second half (paragraph > sentence > line > word). The next chunk
   starts on a word boundary up to ``chunk_overlap`` characters back (at most half the
   chunk, so every chunk advances), preferring a sentence or line start. A section heading
   (:func:`heading_starts`, found by layout) ends the chunk before it once the chunk is
   ``HEADING_MIN_FILL`` full, and the next chunk starts *at* the heading with no overlap:
   a chunk that opens with its section title embeds as that topic, while one that straddles
   the end of a section and the start of the next embeds as neither (on the eval manuals,
   two gnuplot questions missed at recall@10 for that reason).
4. The real token count of every chunk is checked in one more batch. If a chunk is over
   the cap (only possible with a tokenizer that is not additive over whitespace), its page
   is chunked again with a smaller token budget. ``token_count`` is the real count.

Cost: two or three ``count_tokens`` batches per document and linear work in ``N``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from querio.models import ChunkDraft, Page

#: The model's window includes [CLS] and [SEP]; the content gets the rest.
SPECIAL_TOKENS = 2
#: A final piece with less new text than this fraction of ``chunk_size`` merges into the
#: chunk before it when the result still fits both caps.
TINY_FRACTION = 0.15
#: Preferred cut points must leave the chunk at least this full (of its binding cap), so
#: a paragraph break near the start does not produce a sliver.
MIN_FILL = 0.5
#: Rounds of re-splitting chunks the real tokenizer finds too long (step 4).
MAX_RESPLIT_ROUNDS = 6
#: Most word pieces of a section title carried into a chunk's embedded text (``carry_titles``);
#: a longer title is cut to whole words that fit (``ingest.pipeline.embedding_texts``).
TITLE_MAX_TOKENS = 24
#: A heading cuts the chunk before it once the chunk is at least this full (of its binding
#: cap); below that, the few lines before the heading would make a sliver of a chunk.
HEADING_MIN_FILL = 0.3
#: A heading line is at most this many characters and words...
HEADING_MAX_CHARS = 70
HEADING_MAX_WORDS = 10
#: ...and shorter than this share of the page's typical line (its 80th percentile length), so
#: a wrapped line of body text that happens to lack punctuation is never taken for one.
HEADING_MAX_WIDTH = 0.7

CountTokens = Callable[[Sequence[str]], list[int]]
#: A chunk while it is planned: (index of its page among the non-empty pages, first unit,
#: last unit), both unit indexes inclusive.
_Span = tuple[int, int, int]

# Boundary strength of the gap after a unit.
_WORD, _LINE, _SENTENCE, _PARAGRAPH = 0, 1, 2, 3

_UNIT = re.compile(r"\S+")
# ".", "!", "?" possibly followed by closing quotes or brackets ends a sentence.
_SENTENCE_END = re.compile("[.!?][\"'\u201d\u2019)\\]]*$")
_ABBREVIATIONS = frozenset((
    "e.g.", "i.e.", "cf.", "vs.", "fig.", "figs.", "eq.", "eqs.", "no.", "nos.", "vol.", "pp.", "p.",
    "ch.", "sec.", "dr.", "mr.", "mrs.", "ms.", "prof.", "st.", "approx.", "resp.", "al.", "incl.",
    "ref.", "refs.", "z.b.", "d.h.", "bzw.", "usw.", "ca.",
))
# A title-like line: "2.3 Modifying argument descriptions", "Chapter 7: Reading data from
# files 34" (running head; the page number is dropped), "Appendix B Invoking R", "3 Usage".
# "4. To quit R, type q()" is an enumerated list item, not a heading, so "N." is excluded.
_HEADING = re.compile(
    r"^(?P<head>(?:(?:Chapter|Appendix|Section|Part)\s+[0-9A-Z]{1,3}[:.]?|[A-Z]?\d{1,2}(?:\.\d{1,3}){1,4}\.?|\d{1,2})"
    r"\s+[A-Z][^\n]{1,90}?)(?:\s+(?P<page>\d{1,4}))?$"
)
_HEADING_MAX = 120
# A title by its characters: a capital first, then words of letters and digits with light
# punctuation, and no sentence end. Code (``set size 0.5, 0.5``, ``\\newcommand``, ``x <- 1``),
# quoted strings, table cells full of symbols and "Example:" lead-ins fail it.
_TITLE_LINE = re.compile(r"^(?:[A-Z]?\d{1,2}(?:\.\d{1,3})*\.?\s+)?[A-Z][\w\u2019'&/,()-]*(?:\s[\w\u2019'&/,()-]+)*$")
# Words a title does not end with but a lead-in line does ("Some simple examples are").
_NOT_TITLE_END = frozenset((
    "a", "an", "the", "is", "are", "was", "were", "be", "of", "to", "in", "for", "and", "or", "with", "as",
    "by", "that", "which", "from", "on", "at", "if", "this", "these", "can", "will", "we", "you",
))
# What a line before a heading ends with: the end of a paragraph (or a parenthesis closing one).
_PARAGRAPH_END = re.compile("[.!?:)][\"'\u201d\u2019)\\]]*$")


@dataclass(slots=True)
class _Unit:
    start: int  # offset in the page text
    end: int
    tokens: int
    gap: int  # boundary strength of the whitespace after this unit
    heading: bool = False  # the first word of a section heading (see heading_starts)
    title_tokens: int = 0  # room kept for the title a chunk starting here carries (_reserve_titles)


def chunk_pages(pages: Sequence[Page], *, chunk_size: int, chunk_overlap: int,
                count_tokens: CountTokens, max_tokens: int, carry_titles: bool = False) -> list[ChunkDraft]:
    """Split pages into chunks that never cross a page and fit the embedding model.

    Args:
        pages: the document's pages (empty ones are skipped).
        chunk_size: maximum characters per chunk (the target; chunks are usually 50-100%
            of it, cut at the strongest boundary available).
        chunk_overlap: characters repeated from the end of the previous chunk on the same
            page (at most; at most half the previous chunk; ``0`` disables it).
        count_tokens: the embedder's counter (word pieces per text, no special tokens, no
            truncation), e.g. ``Embedder.count_tokens``.
        max_tokens: the model's window including its 2 special tokens (256 for
            all-MiniLM-L6-v2); content is capped at ``max_tokens - 2``.
        carry_titles: the chunks will be embedded with their section title before them
            (``ingest.pipeline.embedding_texts``: unless the content has it at a line start);
            each chunk then leaves room for that title, cut to ``TITLE_MAX_TOKENS``, inside
            the cap, so title + content still fit and no content is truncated.

    Returns:
        Chunks with ``chunk_index`` 0..n-1 in document order, ``page_end == page_number``,
        ``page.text[char_start:char_end] == content``, ``token_count`` from
        ``count_tokens`` (``<= max_tokens - 2``) and ``len(content) <= chunk_size``.

    Raises:
        ValueError: a size argument is out of range.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if not 0 <= chunk_overlap < chunk_size:
        raise ValueError(f"chunk_overlap must be in [0, chunk_size), got {chunk_overlap}")
    token_cap = max_tokens - SPECIAL_TOKENS
    if token_cap < 1:
        raise ValueError(f"max_tokens must be > {SPECIAL_TOKENS}, got {max_tokens}")

    live = [p for p in pages if p.text.strip()]
    layout = [heading_starts(p.text) for p in live]
    # Any single unit plus any carried title fits the cap (see _units and _reserve_titles).
    title_room = min(TITLE_MAX_TOKENS, token_cap // 4) if carry_titles else 0
    units_of = _units(live, layout, chunk_size, token_cap - title_room, count_tokens)
    if title_room:
        _reserve_titles(live, layout, units_of, title_room, count_tokens)

    spans: list[_Span] = []
    for i, units in enumerate(units_of):
        spans.extend((i, a, b) for a, b in _chunk_units(units, 0, len(units), chunk_size, token_cap,
                                                        chunk_overlap))

    # Step 4: the real tokenizer has the last word on every chunk.
    spans, counts = _enforce_token_cap(spans, live, units_of, chunk_size, token_cap, chunk_overlap,
                                       count_tokens)

    sections = _Sections(layout)
    drafts: list[ChunkDraft] = []
    for (i, a, b), n_tokens in zip(spans, counts, strict=True):
        page, units = live[i], units_of[i]
        start, end = units[a].start, units[b].end
        drafts.append(ChunkDraft(
            chunk_index=len(drafts),
            content=page.text[start:end],
            page_number=page.number,
            page_end=page.number,
            char_start=start,
            char_end=end,
            token_count=n_tokens,
            section=sections.at(i, page, start, end),
        ))
    return drafts


def _reserve_titles(pages: Sequence[Page], layout: Sequence[Sequence[int]], units_of: Sequence[Sequence[_Unit]],
                    room: int, count_tokens: CountTokens) -> None:
    """Set each unit's ``title_tokens``: the word pieces of the title a chunk starting at it
    carries (the section in force there, at most ``room``; none when the unit starts that
    heading's line, which is then the chunk's own first line). One ``count_tokens`` batch."""
    sections = _Sections(layout)
    titles = [[sections.at(i, page, u.start, u.start) for u in units]
              for i, (page, units) in enumerate(zip(pages, units_of, strict=True))]
    cost = _count({t for ts in titles for t in ts if t}, count_tokens)
    for page, units, ts in zip(pages, units_of, titles, strict=True):
        for u, title in zip(units, ts, strict=True):
            if title and not page.text.startswith(title, u.start):
                u.title_tokens = min(cost[title], room)


# --- units -----------------------------------------------------------------------------------


def _units(pages: Sequence[Page], layout: Sequence[Sequence[int]], chunk_size: int, token_cap: int,
           count_tokens: CountTokens) -> list[list[_Unit]]:
    """Whitespace-delimited units of every page, with token counts and boundary strengths.

    A word longer than either cap (a URL, a base64 blob, a table row without spaces) is
    halved until every piece fits both caps on its own, so any single unit is a valid
    chunk. Each halving round is one ``count_tokens`` batch.
    """
    raw: list[list[tuple[int, int]]] = [[m.span() for m in _UNIT.finditer(p.text)] for p in pages]
    vocab = _count({p.text[s:e] for p, spans in zip(pages, raw, strict=True) for s, e in spans},
                   count_tokens)

    def fits(text: str) -> bool:
        return len(text) <= chunk_size and vocab[text] <= token_cap

    # Halve over-long words, counting each generation of pieces in one batch. A single
    # character is never split (it could only exceed a cap of a token or two).
    pending = {w for w in vocab if len(w) > 1 and not fits(w)}
    while pending:
        halves = {h for w in pending for h in _halves(w)}
        vocab.update(_count(halves - vocab.keys(), count_tokens))
        pending = {h for h in halves if len(h) > 1 and not fits(h)}

    out: list[list[_Unit]] = []
    for p, spans, starts in zip(pages, raw, layout, strict=True):
        text = p.text
        headings = set(starts)
        units: list[_Unit] = []
        n = len(spans)
        for k, (s, e) in enumerate(spans):
            word = text[s:e]
            next_start = spans[k + 1][0] if k + 1 < n else len(text)
            gap = _gap_strength(word, text[e:next_start], text[next_start:next_start + 1])
            if e - s <= chunk_size and vocab[word] <= token_cap:  # the common case, inlined
                units.append(_Unit(s, e, vocab[word], gap, s in headings))
                continue
            first = len(units)
            for i, j in _fitting_pieces(text, s, e, fits):
                # Inside a split word there is no gap at all: the weakest boundary.
                units.append(_Unit(i, j, vocab[text[i:j]], _WORD))
            units[first].heading = s in headings
            units[-1].gap = gap
        out.append(units)
    return out


def _halves(word: str) -> tuple[str, str]:
    mid = len(word) // 2
    return word[:mid], word[mid:]


def _fitting_pieces(text: str, s: int, e: int, fits: Callable[[str], bool]) -> list[tuple[int, int]]:
    """``[s, e)`` itself if it fits, else its halves recursively (same cuts as ``_halves``)."""
    if e - s <= 1 or fits(text[s:e]):
        return [(s, e)]
    mid = s + (e - s) // 2
    return _fitting_pieces(text, s, mid, fits) + _fitting_pieces(text, mid, e, fits)


def _count(texts: set[str], count_tokens: CountTokens) -> dict[str, int]:
    ordered = sorted(texts)  # deterministic batches
    counts = count_tokens(ordered) if ordered else []
    if len(counts) != len(ordered):
        raise ValueError(f"count_tokens returned {len(counts)} counts for {len(ordered)} texts")
    return dict(zip(ordered, counts, strict=True))


def _gap_strength(word: str, gap: str, next_char: str) -> int:
    """How good a cut the whitespace ``gap`` after ``word`` is (the page end is a paragraph)."""
    if gap == " " and word[-1] not in ".!?\"'\u201d\u2019)]":
        return _WORD  # by far the most frequent case: skip the regexes
    if not next_char or gap.count("\n") >= 2:
        return _PARAGRAPH
    if _SENTENCE_END.search(word) and word.lower() not in _ABBREVIATIONS \
            and not (len(word) == 2 and word[0].isupper()) \
            and (next_char.isupper() or next_char.isdigit() or "\n" in gap or not next_char.isalpha()):
        # "A." is an initial, not a sentence; "e.g." and friends never end one.
        return _SENTENCE
    if "\n" in gap:
        return _LINE
    return _WORD


# --- the greedy pass ----------------------------------------------------------------------------


def _chunk_units(units: Sequence[_Unit], lo: int, hi: int, chunk_size: int, token_cap: int,
                 overlap: int) -> list[tuple[int, int]]:
    """Chunks of ``units[lo:hi]`` as inclusive ``(first, last)`` unit indexes."""
    # Prefix sums of tokens make the token count of any span O(1).
    prefix = [0]
    for u in units[lo:hi]:
        prefix.append(prefix[-1] + u.tokens)

    def tokens(a: int, b: int) -> int:  # units a..b inclusive, and the title a chunk from a carries
        return prefix[b + 1 - lo] - prefix[a - lo] + units[a].title_tokens

    def longest_fit(a: int) -> int:
        # Longest run from ``a`` that fits both caps (one unit always fits: see _units),
        # ending before a heading once the run is HEADING_MIN_FILL full.
        b = a
        while (b + 1 < hi and units[b + 1].end - units[a].start <= chunk_size
               and tokens(a, b + 1) <= token_cap):
            if units[b + 1].heading and max((units[b].end - units[a].start) / chunk_size,
                                            tokens(a, b) / token_cap) >= HEADING_MIN_FILL:
                break
            b += 1
        return b

    chunks: list[tuple[int, int]] = []
    a, prev_b = lo, lo - 1
    while a < hi:
        b = longest_fit(a)
        if b <= prev_b:
            # The overlap left no room for new text (a long unit follows): start right
            # after the previous chunk instead, or this chunk would repeat it.
            a = prev_b + 1
            b = longest_fit(a)
        if b + 1 < hi and not units[b + 1].heading:
            b = _best_cut(units, a, b, prev_b + 1, chunk_size, token_cap, tokens)
        chunks.append((a, b))
        if b + 1 >= hi:
            break
        a, prev_b = _next_start(units, a, b, overlap), b

    _merge_tiny_tail(chunks, units, chunk_size, token_cap, tokens)
    return chunks


def _best_cut(units: Sequence[_Unit], a: int, b: int, floor: int, chunk_size: int, token_cap: int,
              tokens: Callable[[int, int], int]) -> int:
    """The last unit of the chunk: the strongest boundary among cuts that are at least
    ``MIN_FILL`` full and end at or after ``floor`` (past the previous chunk), the latest
    one on ties; ``b`` if none qualifies."""
    best, best_gap = b, units[b].gap
    for k in range(b - 1, max(a, floor) - 1, -1):
        fill = max((units[k].end - units[a].start) / chunk_size, tokens(a, k) / token_cap)
        if fill < MIN_FILL:
            break
        if units[k].gap > best_gap:
            best, best_gap = k, units[k].gap
            if best_gap == _PARAGRAPH:
                break
    return best


def _next_start(units: Sequence[_Unit], a: int, b: int, overlap: int) -> int:
    """First unit of the chunk after ``a..b``: overlapping it by at most ``overlap`` chars
    and at most half its length, starting at a paragraph, sentence or line start if the
    window has one."""
    if b + 1 < len(units) and units[b + 1].heading:
        return b + 1  # a new section: nothing of the previous one is carried into it
    limit = min(overlap, (units[b].end - units[a].start) // 2)
    end = units[b].end
    first_fit = b + 1
    for k in range(b, a, -1):  # k > a: the next chunk always advances
        if end - units[k].start > limit:
            break
        first_fit = k
        if units[k].heading:
            break  # the overlap never reaches back across a heading into the section before
    # The strongest boundary in the window, the earliest (longest overlap) on ties. A
    # visual line start counts for little in PDF text but beats a mid-line word.
    best, best_gap = first_fit, units[first_fit - 1].gap
    for k in range(first_fit + 1, b + 1):
        if units[k - 1].gap > best_gap:
            best, best_gap = k, units[k - 1].gap
    return best


def _merge_tiny_tail(chunks: list[tuple[int, int]], units: Sequence[_Unit], chunk_size: int,
                     token_cap: int, tokens: Callable[[int, int], int]) -> None:
    """Fold a last chunk that adds < ``TINY_FRACTION`` of a chunk of new text into the one
    before it, when the union still fits both caps."""
    if len(chunks) < 2:
        return
    (pa, pb), (la, lb) = chunks[-2], chunks[-1]
    if units[la].heading and la > pb:
        return  # a section's start stays apart from the section before (see heading_starts)
    new_chars = units[lb].end - units[pb].end
    if (new_chars < TINY_FRACTION * chunk_size
            and units[lb].end - units[pa].start <= chunk_size and tokens(pa, lb) <= token_cap):
        chunks[-2:] = [(pa, lb)]


# --- real token counts ----------------------------------------------------------------------------


def _enforce_token_cap(spans: list[_Span], pages: Sequence[Page], units_of: Sequence[Sequence[_Unit]],
                       chunk_size: int, token_cap: int, overlap: int,
                       count_tokens: CountTokens) -> tuple[list[_Span], list[int]]:
    """Count every chunk for real (one batch per round); re-chunk pages with a chunk over
    the cap using a token budget shrunk by the worst overshoot.

    Whole pages are re-chunked (not single chunks) so order and overlap stay consistent.
    Converges: the budget shrinks every round, the last round uses a budget of 1 token
    (one unit per chunk), and a chunk of one unit always fits (its text is exactly what
    ``_units`` counted, with room left for a carried title).
    """
    budgets: dict[int, int] = {}
    worst: dict[int, int] = {}
    for round_ in range(MAX_RESPLIT_ROUNDS + 1):
        counts = _count_spans(spans, pages, units_of, count_tokens)
        worst = {}
        for (i, a, _b), n in zip(spans, counts, strict=True):
            n += units_of[i][a].title_tokens  # the carried title is embedded too
            if n > token_cap:
                worst[i] = max(worst.get(i, 0), n)
        if not worst:
            return spans, counts
        if round_ == MAX_RESPLIT_ROUNDS:
            break
        last = round_ == MAX_RESPLIT_ROUNDS - 1
        redone: dict[int, list[tuple[int, int]]] = {}
        for i, n in worst.items():
            budget = budgets.get(i, token_cap)
            budgets[i] = 1 if last else max(1, min(budget - 1, int(budget * token_cap / n * 0.9)))
            redone[i] = _chunk_units(units_of[i], 0, len(units_of[i]), chunk_size, budgets[i], overlap)
        new_spans: list[_Span] = []
        for i, a, b in spans:
            if i not in redone:
                new_spans.append((i, a, b))
            elif redone[i]:  # the page's first old chunk: emit its new chunks, once
                new_spans.extend((i, x, y) for x, y in redone[i])
                redone[i] = []
        spans = new_spans
    raise ValueError(f"could not fit chunks under {token_cap} tokens (largest {max(worst.values())}); "
                     "count_tokens is not consistent between a text and itself")


def _count_spans(spans: Sequence[_Span], pages: Sequence[Page], units_of: Sequence[Sequence[_Unit]],
                 count_tokens: CountTokens) -> list[int]:
    texts = [pages[i].text[units_of[i][a].start:units_of[i][b].end] for i, a, b in spans]
    counts = count_tokens(texts) if texts else []
    if len(counts) != len(texts):
        raise ValueError(f"count_tokens returned {len(counts)} counts for {len(texts)} texts")
    return list(counts)


# --- headings --------------------------------------------------------------------------------------


def heading_starts(text: str) -> list[int]:
    """Offsets of the lines of a page's ``text`` that look like section titles, by layout alone.

    Extracted PDF text keeps no font sizes, but a title still shows: a short line standing
    alone between line breaks, starting with a capital (or a section number), made of words
    and no code symbols, with no sentence-ending punctuation, after a line that ended a
    paragraph with ``. ! ? : )``, or another title, or at the top of the page.
    "Coordinates", "Complex arithmetic", "2.3 Modifying argument descriptions" and "Appendix
    B Invoking R" qualify; "set size 0.5, 0.5", "Example:", a table's header row after "if
    the data file contains" and the last words of a wrapped sentence do not. Numbered
    headings are only one case of this, so unnumbered manuals (gnuplot's) get sections too.

    "Short" is relative to the page: shorter than ``HEADING_MAX_WIDTH`` of its 80th
    percentile line length, so a full-width wrapped line is never a title. A table row of
    plain words may pass; cutting a chunk before one costs little.
    """
    lines = text.split("\n")
    lengths = sorted(len(line) for line in lines if line)
    if not lengths:
        return []
    typical = lengths[min(len(lengths) - 1, int(len(lengths) * 0.8))]
    width = max(HEADING_MAX_WIDTH * typical, 20)  # a page of short lines still has titles
    out: list[int] = []
    pos = 0
    after_paragraph = True  # the top of the page
    for line in lines:
        title = (after_paragraph and 0 < len(line) <= min(HEADING_MAX_CHARS, width)
                 and len(line.split()) <= HEADING_MAX_WORDS and _TITLE_LINE.match(line) is not None
                 and sum(ch.isalpha() for ch in line) >= 0.6 * len(line)
                 and line.rsplit(None, 1)[-1].lower() not in _NOT_TITLE_END)
        if title:
            out.append(pos)
        pos += len(line) + 1
        # A line without a closing mark leads on ("For example, if the data file contains"
        # before a table's header row), unless it is a title itself (a chapter, then a section).
        after_paragraph = title or not line or _PARAGRAPH_END.search(line) is not None
    return out


# --- sections --------------------------------------------------------------------------------------


class _Sections:
    """The nearest title-like line before a chunk, carried over from earlier pages.

    A numbered heading ("2.3 Modifying argument descriptions"), a chapter line ("Appendix B
    Invoking R") or a title found by layout ("Coordinates"). It is stored with the chunk and
    embedded with it (``ingest.pipeline.embedding_texts``). A heading inside the first half
    of a chunk names the chunk. Running heads (a title with a page number on a page's first or last
    line: "Chapter 7: Reading data from files 34") are only a fallback, because the
    section carried from the previous page is more specific.
    """

    def __init__(self, layout: Sequence[Sequence[int]]) -> None:
        self._layout = layout  # heading_starts of each page, by index
        self._page: int | None = None
        self._headings: list[tuple[int, str]] = []
        self._running: str | None = None
        self._carried: str | None = None

    def at(self, index: int, page: Page, start: int, end: int) -> str | None:
        """The section of ``page.text[start:end]``; ``index``: the page's among the pages
        chunked (calls go in page order)."""
        if page.number != self._page:
            if self._headings:
                self._carried = self._headings[-1][1]
            self._page = page.number
            self._headings, self._running = _find_headings(page.text, self._layout[index])
        current = self._carried or self._running
        for pos, title in self._headings:
            if pos > start + (end - start) // 2:
                break
            current = title
        return current


def _find_headings(text: str, starts: Sequence[int]) -> tuple[list[tuple[int, str]], str | None]:
    """Headings of a page as ``(offset, title)``, and its running head if any: numbered ones by
    ``_HEADING``, the rest by layout (``starts``: the page's :func:`heading_starts`)."""
    found: list[tuple[int, str]] = []
    running: str | None = None
    layout = set(starts)
    lines = text.split("\n")
    pos = 0
    for i, line in enumerate(lines):
        m = _HEADING.match(line)
        if m and "..." not in line and ". ." not in line \
                and (not line.endswith(".") or line.endswith("etc.")):
            title = m.group("head")[:_HEADING_MAX]
            if m.group("page") and i in (0, len(lines) - 1):
                running = title
            else:
                found.append((pos, title))
        elif pos in layout:
            found.append((pos, line))
        pos += len(line) + 1
    return found, running
