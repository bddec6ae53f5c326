"""One character-level normalization for both sides of retrieval.

Documents (``querio.ingest.pdf.clean_text``) and queries (``models.QueryText``: search, query
and chat, hence the full-text leg, the embedded query vector and every cache key) go through
:func:`normalize_chars`, so what a user types or pastes matches what was indexed: ``ﬁnancial``
(a ligature pasted from a PDF viewer) or full-width ``\\uff30\\uff24\\uff26`` find ``financial`` and ``PDF``.
Titles, author fields and filenames use it too, so no stored string carries a lone surrogate.
"""

from __future__ import annotations

import re
import unicodedata

# C0/C1 controls except tab and newline, U+FFFD and the non-characters U+FFFE/FFFF
# (pdfium-style hyphen markers) become a space (NUL also because PostgreSQL text rejects it).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd\ufffe\uffff]")
# Invisible format characters are dropped: soft hyphen, zero-width space, LRM/RLM, bidi
# embeddings and isolates, word joiner and invisible operators, BOM / zero-width no-break
# space, Mongolian vowel separator. (ZWJ/ZWNJ stay: they shape words in some scripts.)
_INVISIBLE = re.compile("[\u00ad\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
# A soft hyphen is where a typesetter *may* break a word: at a line end it did, so the two
# halves are one word ("hydro\xad\ngraphic" is "hydrographic").
_SOFT_HYPHEN_BREAK = re.compile("\u00ad[^\\S\n]*\n[^\\S\n]*")
_SURROGATE = re.compile("[\ud800-\udfff]")


def repair_surrogates(text: str) -> str:
    """Join UTF-16 surrogate pairs that arrived as two code points; drop unpaired ones.

    pypdf decodes ``ToUnicode`` maps and UTF-16 strings code unit by code unit, so a broken
    map leaves lone surrogates in ``str``: they cannot be encoded as UTF-8, which the
    tokenizer, PostgreSQL and JSON all need.
    """
    if not _SURROGATE.search(text):  # the common case: no work
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "ignore")


def normalize_chars(text: str) -> str:
    """Surrogates repaired, NFKC (ligatures, full-width forms, compatibility spaces), line
    ends unified, soft hyphens at a line end joined, invisible characters dropped, controls
    turned into spaces. Idempotent; layout (spaces, lines) is left to the caller."""
    text = unicodedata.normalize("NFKC", repair_surrogates(text))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", _SOFT_HYPHEN_BREAK.sub("", text))
    return _CONTROL.sub(" ", text)


def normalize_line(text: str) -> str:
    """:func:`normalize_chars` on one line of text (a query, a title): whitespace collapsed."""
    return " ".join(normalize_chars(text).split())
