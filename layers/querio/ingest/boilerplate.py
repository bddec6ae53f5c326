"""Running headers and footers: lines a document repeats at the top or bottom of its pages.

A manual prints its title, the chapter name and the page number on every page
("Chapter 7: Reading data from files 34", "R Installation and Administration 13", "- 12 -").
Left in the text they are glued to the first sentence of each page (an extractive answer
then quotes "An Introduction to R 9 The default is ..."), embedded once per chunk, and
matched by every keyword search for the title. They are detected per document and removed
before chunking.

How: the first and last :data:`EDGE_LINES` lines of every page are keyed (lower-cased,
whitespace collapsed, numbers not glued to letters and a roman page number at either end replaced by ``#``,
so "Chapter 7: Reading data 34" and "Chapter 7: Reading data 35" are one key). A key
found at an edge of at least :data:`MIN_PAGES` pages and :data:`MIN_SHARE` of the pages
is a running line; it is dropped where it sits at an edge, never from the middle of a page.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

#: Lines looked at from the top and from the bottom of each page (header + rule, or a
#: title line and a page number line).
EDGE_LINES = 2
#: A running line repeats on at least this many pages ...
MIN_PAGES = 3
#: ... and on this share of the document's pages with text (a chapter's running head repeats
#: on that chapter's pages only, so the share is low).
MIN_SHARE = 0.02
#: Longer lines are prose, not page furniture.
MAX_LINE_CHARS = 120

# Whole numbers only: "quokka7" or "R 4.3" inside a line is content that differs between
# pages, while a page number stands alone.
_DIGITS = re.compile(r"\b\d+\b")
_ROMAN_EDGE = re.compile(r"^[ivxlc]+\b|\b[ivxlc]+$")


def line_key(line: str) -> str:
    """The line with what changes from page to page (page numbers) replaced by ``#``."""
    key = " ".join(line.lower().split())
    return _ROMAN_EDGE.sub("#", _DIGITS.sub("#", key))


def _edges(lines: Sequence[str]) -> list[int]:
    """Indexes of the first and last ``EDGE_LINES`` non-blank lines (each once)."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    return sorted(set(filled[:EDGE_LINES] + filled[-EDGE_LINES:]))


def running_lines(pages: Sequence[str]) -> set[str]:
    """Keys of the lines repeated at the top or bottom of many pages of one document."""
    seen: Counter[str] = Counter()
    live = 0
    for text in pages:
        if not text:
            continue
        live += 1
        lines = text.split("\n")
        seen.update({line_key(lines[i]) for i in _edges(lines) if len(lines[i]) <= MAX_LINE_CHARS})
    threshold = max(MIN_PAGES, math.ceil(MIN_SHARE * live))
    # Words or a page number: a lone "}" closing code blocks at page ends is content.
    return {key for key, n in seen.items()
            if n >= threshold and ("#" in key or any(ch.isalpha() for ch in key))}


def strip_running_lines(pages: Sequence[str]) -> list[str]:
    """``pages`` (cleaned page texts of one document) without their running headers and
    footers; a page that held nothing else becomes ``""``."""
    repeated = running_lines(pages)
    if not repeated:
        return list(pages)
    out: list[str] = []
    for text in pages:
        lines = text.split("\n")
        drop = {i for i in _edges(lines) if len(lines[i]) <= MAX_LINE_CHARS and line_key(lines[i]) in repeated}
        kept = [line for i, line in enumerate(lines) if i not in drop]
        out.append(re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip())
    return out
