"""Which page a piece of a chunk is on, and which passages an answer cites.

A chunk that spans pages holds :data:`~querio.models.PAGE_BREAK` (a form feed, which the
cleaned page text never contains) at each page boundary, so ``page_number`` plus the number
of breaks before a position is that position's page. A search hit then names the page that
holds the matched words, and an answer's citation the page of the quoted sentence, not
always the chunk's first page.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from querio.models import PAGE_BREAK, Citation, SearchHit

_WORD = re.compile(r"\w+")
# "[2]", "[1, 3]", "[1][2]" (each bracket is one marker)
_MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")


def page_of(content: str, first_page: int, text: str) -> int:
    """The page of ``content`` (starting on ``first_page``) holding most of ``text``'s words;
    the first page on a tie or when the chunk has one page."""
    segments = content.split(PAGE_BREAK)
    if len(segments) == 1:
        return first_page
    terms = {w.lower() for w in _WORD.findall(text) if len(w) > 2}
    scores = [len(terms & {w.lower() for w in _WORD.findall(s)}) for s in segments]
    return first_page + max(range(len(segments)), key=lambda i: (scores[i], -i))


def cited_sources(text: str, hits: Sequence[SearchHit]) -> tuple[str, list[SearchHit], list[Citation]]:
    """The answer renumbered to its cited passages, those passages, and one citation each.

    ``text`` cites ``hits`` as ``[n]`` (1-based). The result lists only the passages cited,
    in order of first citation, renumbered ``[1]``..``[m]``; a marker naming no passage is
    dropped. A citation's ``pages`` are the pages of the sentences (the words before each
    marker) that cite it, and ``page`` the one holding most of their words.
    """
    claims: dict[int, list[str]] = {}  # hit index -> the claims citing it, in citation order
    last = 0

    def renumber(m: re.Match[str]) -> str:
        nonlocal last
        claim = text[last:m.start()]
        last = m.end()
        out = []
        for n in (int(x) for x in m.group(1).split(",")):
            if 1 <= n <= len(hits):
                claims.setdefault(n - 1, []).append(claim)
                out.append(f"[{list(claims).index(n - 1) + 1}]")
        return "".join(dict.fromkeys(out))

    renumbered = _MARKER.sub(renumber, text).strip()
    sources = [hits[i] for i in claims]
    citations = []
    for i, said in claims.items():
        hit = hits[i]
        content, first = hit.content or "", hit.page_start or hit.page
        citations.append(Citation(
            document_id=hit.document_id, filename=hit.filename, chunk_id=hit.chunk_id,
            page=page_of(content, first, " ".join(said)),
            pages=sorted({page_of(content, first, claim) for claim in said})))
    return renumbered, sources, citations
