"""PDF bytes → per-page text and document info, with bad input classified.

The parser is pypdf (pure Python, permissive licence, no native code: it ships in the
Lambda layer as is). It is the slow part of parsing, not of ingest: on the six evaluation
manuals (604 pages, 2 cores) plain extraction runs at about 22-61 pages/s depending on the
machine's load, while embedding the same pages is slower still (see
``/work/shared/notes/measured-limits.md``). ``extraction_mode="layout"`` was measured
~1.4x slower, glues more words (``Section2.6``) and ignores visitors, so plain mode is used.

Bad input raises one of the domain errors, each with a message a person can act on:

========================  ==================================================================
``EmptyFile``             0 bytes, or only whitespace
``NotAPdf``               no ``%PDF-`` header in the first 1024 bytes (says what it looks like)
``EncryptedPdf``          encrypted and the empty user password does not open it
``CorruptPdf``            pypdf cannot read the structure (garbage, truncated), or no pages
``FileTooLarge``          more pages than ``max_pages``
``NoExtractableText``     every page is empty (a scan: needs OCR)
========================  ==================================================================

Pages with no extractable text are kept (with ``text == ""``) and listed in
``ParsedPdf.empty_pages``; a page whose extraction *fails* is logged and counted as empty
too, so one odd page does not sink a 500-page manual.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError
from pypdf.generic import DictionaryObject, NumberObject

from querio import errors
from querio.ingest.boilerplate import strip_running_lines
from querio.models import Page, ParsedPdf, PdfInfo
from querio.text import normalize_chars, normalize_line

log = logging.getLogger(__name__)

# pypdf logs a warning for every recoverable oddity of a file ("EOF marker not found",
# "Ignoring wrong pointing object", ...): hundreds of lines for one bad upload. Quieten it
# unless the operator configured the logger explicitly. Real failures still raise.
_pypdf_logger = logging.getLogger("pypdf")
if _pypdf_logger.level == logging.NOTSET:
    _pypdf_logger.setLevel(logging.ERROR)

#: The PDF spec (7.5.2) puts ``%PDF-`` first, but readers accept up to 1024 bytes of junk
#: before it (Acrobat's implementation note 13), so we do too.
HEADER_WINDOW = 1024

#: Width (1/1000 em) given to code 32 of fonts that draw a visible space there (see
#: ``_fix_visible_space_fonts``): a quarter em, the narrowest common word space (Times).
#: pypdf then treats gaps >= 0.95 * 250 / 2 ~ 119 as spaces. Measured on the six eval
#: manuals: negative ``TJ`` offsets are either kerning (< 100) or word gaps (>= 150).
VISIBLE_SPACE_WIDTH = 250

#: Pages sampled for the language guess, spread over the document (see ``_spread``).
LANGUAGE_SAMPLE_PAGES = 8
LANGUAGE_SAMPLE_WORDS = 4000


def count_pages(data: bytes, *, max_pages: int | None = None) -> int:
    """The page count, with the same checks (and errors) as :func:`parse_pdf`, without
    extracting any text: pypdf reads pages lazily, so this costs only the xref and page tree."""
    return _open_checked(data, max_pages)[1]


def _open_checked(data: bytes, max_pages: int | None) -> tuple[PdfReader, int]:
    if not data or not data.strip():
        raise errors.EmptyFile("The file is empty (0 bytes)." if not data
                               else "The file contains only whitespace, not a PDF.")
    if data.find(b"%PDF-", 0, HEADER_WINDOW) < 0:
        kind = sniff_kind(data)
        raise errors.NotAPdf(
            f"The file is not a PDF (it looks like {kind}); no '%PDF-' header in its first "
            f"{HEADER_WINDOW} bytes.",
            details={"looks_like": kind},
        )
    reader = _open(data)
    try:
        page_count = len(reader.pages)
    except FileNotDecryptedError as exc:  # pragma: no cover - _open decrypts or raises first
        raise errors.EncryptedPdf(_ENCRYPTED_MESSAGE) from exc
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError) as exc:
        raise _corrupt(data, exc) from exc
    if page_count == 0:
        raise errors.CorruptPdf("The PDF has no pages.", details={"pages": 0})
    if max_pages is not None and page_count > max_pages:
        raise errors.FileTooLarge(
            f"The PDF has {page_count} pages; the limit is {max_pages}.",
            details={"pages": page_count, "max_pages": max_pages},
        )
    return reader, page_count


def parse_pdf(data: bytes, *, max_pages: int | None = None, pages: tuple[int, int] | None = None) -> ParsedPdf:
    """Parse PDF ``data`` into cleaned per-page text and document info.

    Args:
        data: the whole file.
        max_pages: reject documents with more pages than this (``None``: no limit).
        pages: ``(first, last)``, 1-based and inclusive: extract only this range (one part
            of a large PDF; see ``querio.ingest.parts``). ``ParsedPdf.pages`` then holds only
            those pages (with their real numbers), ``page_count`` is still the whole file's,
            and a range with no text is not an error (the document as a whole decides).

    Returns:
        ``ParsedPdf`` with one ``Page`` per physical page (1-based numbers, empty pages
        included with ``text == ""``), ``empty_pages`` listing those, ``word_count``
        (whitespace-separated words over all pages) and ``info`` (title, author, creation
        date, ISO 639-1 language or ``None``).

    Raises:
        EmptyFile, NotAPdf, EncryptedPdf, CorruptPdf, FileTooLarge, NoExtractableText:
        see the module docstring. ``details`` carries machine-readable context.
    """
    reader, page_count = _open_checked(data, max_pages)
    first, last = (1, page_count) if pages is None else (max(1, pages[0]), min(page_count, pages[1]))
    if first > last:
        raise errors.ValidationFailed(f"page range {pages} is outside the document's {page_count} pages")
    raw_pages, failures = _extract_pages(reader, last, first)
    wanted = last - first + 1
    if len(failures) == wanted and pages is None:
        first_page, first_exc = failures[0]
        raise errors.CorruptPdf(
            f"No page of the PDF could be read (page {first_page}: {_describe(first_exc)}).",
            details={"pages": page_count},
        ) from first_exc
    if failures:
        log.warning("pdf: %d of %d pages could not be read and count as empty: %s",
                    len(failures), wanted,
                    ", ".join(f"p{n}: {_describe(e)}" for n, e in failures[:5]))

    compounds = _hyphenated_compounds(raw_pages)
    # Running headers and footers go before chunking: in a chunk they would be glued to the
    # page's first sentence and embedded again on every page.
    texts = strip_running_lines([clean_text(t, compounds) for t in raw_pages])
    parsed_pages = tuple(Page(number=i, text=t) for i, t in enumerate(texts, start=first))
    empty = tuple(p.number for p in parsed_pages if not p.text)
    if len(empty) == page_count and pages is None:
        raise errors.NoExtractableText(
            f"None of the {page_count} pages has extractable text; it looks like a scan or "
            f"images only. Run OCR on it first.",
            details={"pages": page_count},
        )

    info = _read_info(reader)
    sample = _spread([t for t in texts if t], LANGUAGE_SAMPLE_PAGES)
    language = guess_language(sample) or _catalog_language(reader)
    return ParsedPdf(
        page_count=page_count,
        pages=parsed_pages,
        empty_pages=empty,
        info=info.model_copy(update={"language": language}),
        word_count=sum(len(t.split()) for t in texts),
    )


# --- opening -------------------------------------------------------------------------------

_ENCRYPTED_MESSAGE = ("The PDF is password-protected; remove the password (or upload an "
                      "unprotected copy) and try again.")


def _open(data: bytes) -> PdfReader:
    """Open the reader and decrypt with the empty password if needed."""
    try:
        # strict=False: repair what pypdf can (bad xref offsets, missing EOF marker) rather
        # than refuse files every other viewer opens.
        reader = PdfReader(io.BytesIO(data), strict=False)
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError) as exc:
        raise _corrupt(data, exc) from exc
    if reader.is_encrypted:
        try:
            # PDFs "protected" only by permissions have an empty user password; every
            # viewer opens them silently, so must we.
            if not reader.decrypt(""):
                raise errors.EncryptedPdf(_ENCRYPTED_MESSAGE)
        except DependencyError as exc:
            # AES needs the `cryptography` package; without it even an empty password fails.
            raise errors.EncryptedPdf(
                "The PDF is encrypted with AES, which this server cannot decrypt (the "
                "'cryptography' package is missing); upload an unprotected copy.",
                details={"reason": "missing_crypto_library"},
            ) from exc
        except (PyPdfError, ValueError, KeyError, TypeError) as exc:
            raise errors.EncryptedPdf(_ENCRYPTED_MESSAGE + f" ({_describe(exc)})") from exc
    return reader


def _corrupt(data: bytes, exc: BaseException) -> errors.CorruptPdf:
    if b"%%EOF" not in data[-2048:]:
        return errors.CorruptPdf(
            "The PDF is damaged or incomplete: it has no end-of-file marker, which is what an "
            f"interrupted upload or download leaves ({_describe(exc)}).",
            details={"truncated": True},
        )
    return errors.CorruptPdf(f"The PDF is damaged and cannot be read ({_describe(exc)}).",
                             details={"truncated": False})


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


# --- text ----------------------------------------------------------------------------------


def _fix_visible_space_fonts(page: Any, seen: set[int]) -> None:
    """Give TeX T1-encoded fonts a word-space width so pypdf finds the gaps between words.

    pypdf inserts a space at a ``TJ`` offset larger than about half the width of the
    font's code 32, and between text pieces further apart than that. In T1-encoded TeX
    fonts (``/Differences`` maps code 32 to ``/uni2423`` or ``/visiblespace``, the visible
    space glyph ␣) code 32 is ~500/1000 em wide, so gaps under ~240 are ignored while
    justified lines space words by 150-400: words glue together ("Thisfamilyofcommands"
    all over usrguide.pdf). Setting that width to ``VISIBLE_SPACE_WIDTH`` puts pypdf's
    threshold at ~119, inside the measured empty band between kerning (< 100) and word
    gaps (>= 150). Only the in-memory font dictionary of this reader changes; the glyph
    itself is almost never drawn in body text.
    """
    try:
        fonts = page["/Resources"]["/Font"]
        fonts = fonts.get_object()
    except (KeyError, TypeError, AttributeError):
        return
    for ref in list(fonts.values()):
        key = getattr(ref, "idnum", None)
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        try:
            font = ref.get_object()
            encoding = font.get("/Encoding")
            encoding = encoding.get_object() if encoding is not None else None
            if not isinstance(encoding, DictionaryObject) or "/Differences" not in encoding:
                continue
            differences = encoding["/Differences"].get_object()
            if not isinstance(differences, list) or _glyph_for_code(differences, 32) in (None, "/space"):
                continue
            first, widths = int(font["/FirstChar"]), font["/Widths"].get_object()
            if first <= 32 < first + len(widths):
                widths[32 - first] = NumberObject(VISIBLE_SPACE_WIDTH)
                cache = _FONTS.get()
                if cache is not None:  # built before the fix (inside a form XObject): build again
                    cache.pop(id(font), None)
        except (KeyError, TypeError, ValueError, AttributeError, PyPdfError):
            continue  # an odd font only loses this fix; extraction reports real failures


def _glyph_for_code(differences: Sequence[Any], code: int) -> str | None:
    """The glyph name a ``/Differences`` array gives ``code`` (``[32 /uni2423 ...]``)."""
    current: int | None = None
    for item in differences:
        if isinstance(item, int) and not isinstance(item, bool):
            current = item
        elif current is not None:
            if current == code:
                return str(item)
            current += 1
    return None


#: Fonts already built in the current parse: id of the font dictionary → (that dictionary, font).
_FONTS: ContextVar[dict[int, tuple[Any, Any]] | None] = ContextVar("querio_pdf_fonts", default=None)


def _install_font_reuse() -> bool:
    """Make pypdf build each font once per parse instead of once per page that uses it.

    Why: ``Page.extract_text`` calls ``Font.from_font_resource`` for every font of every page,
    and that parses the font's ``/ToUnicode`` CMap again each time: on the six eval manuals
    3,229 builds for 604 pages, about 14 % of extraction (cProfile). Within one parse the
    reader hands out the same resolved dictionary for the same font, so that object (held in
    the cache, so its ``id`` cannot be reused) is the key. Outside :func:`_font_reuse` the
    wrapper calls pypdf straight through. The only change pypdf makes to a built font,
    setting ``space_width`` to the ``extract_text`` argument, is the same value on every
    page (we never pass one). A pypdf without this classmethod is left alone.
    """
    try:
        from pypdf.generic._font import Font
    except ImportError:  # pragma: no cover - an older pypdf builds fonts elsewhere
        return False
    original = Font.__dict__.get("from_font_resource")
    if not isinstance(original, classmethod):  # pragma: no cover - another pypdf layout
        return False
    build = original.__func__
    if getattr(build, "_querio_reuse", False):
        return True

    def from_font_resource(cls: Any, pdf_font_dict: Any) -> Any:
        cache = _FONTS.get()
        if cache is None:
            return build(cls, pdf_font_dict)
        hit = cache.get(id(pdf_font_dict))
        if hit is not None and hit[0] is pdf_font_dict:
            return hit[1]
        font = build(cls, pdf_font_dict)
        cache[id(pdf_font_dict)] = (pdf_font_dict, font)
        return font

    from_font_resource._querio_reuse = True  # type: ignore[attr-defined]
    Font.from_font_resource = classmethod(from_font_resource)  # type: ignore[method-assign,assignment]
    return True


FONT_REUSE = _install_font_reuse()


@contextmanager
def _font_reuse() -> Iterator[None]:
    token = _FONTS.set({})
    try:
        yield
    finally:
        _FONTS.reset(token)


def _extract_pages(reader: PdfReader, page_count: int, first: int = 1
                   ) -> tuple[list[str], list[tuple[int, BaseException]]]:
    """Text of pages ``first..page_count`` (1-based, inclusive) and the pages that failed."""
    texts: list[str] = []
    failures: list[tuple[int, BaseException]] = []
    fixed_fonts: set[int] = set()
    with _font_reuse():
        for number in range(first, page_count + 1):
            try:
                page = reader.pages[number - 1]
                _fix_visible_space_fonts(page, fixed_fonts)
                texts.append(page.extract_text())
            except MemoryError:
                raise
            except Exception as exc:  # pypdf raises anything on odd pages; logged above
                texts.append("")
                failures.append((number, exc))
    return texts, failures


_SPACES = re.compile(r"[^\S\n]+")  # whitespace other than newline
_BLANK_LINES = re.compile(r"\n{3,}")
# Dot leaders ("Installation . . . . . . 12") in tables of contents and indexes: four or more
# dots (or middle dots) with at most one space between them, and the spaces around the run
_LEADER = re.compile(r" ?[.\u00b7\u2219\u22c5](?: ?[.\u00b7\u2219\u22c5]){3,} ?")
# A letter, a hyphen at the end of a line, a lowercase letter on the next: a word broken
# by hyphenation ("reposi-\ntory"). Digits are excluded ("aarch64-\napple" stays as is).
_LINE_END_HYPHEN = re.compile(r"([^\W\d_]+)[-\u2010]\n([^\W\d_]+)")
_COMPOUND = re.compile(r"\b([^\W\d_]+)-([^\W\d_]+)\b")


def _hyphenated_compounds(texts: Iterable[str]) -> set[str]:
    """Lower-cased ``left-right`` words written with a hyphen *within* a line anywhere in
    the document: evidence that a line-end hyphen between the same halves is real."""
    return {m.group(0).lower() for t in texts for m in _COMPOUND.finditer(t)}


def clean_text(text: str, compounds: set[str] | frozenset[str] = frozenset()) -> str:
    """Normalise extracted text for retrieval; offsets of chunks refer to this result.

    * :func:`querio.text.normalize_chars`, the normalization queries get too (surrogates
      repaired, NFKC: ligatures ``ﬁ`` → ``fi``, full-width forms; soft hyphens at a line end
      joined, invisible characters dropped, controls → space);
    * words hyphenated across a line end re-joined (``reposi-\\ntory`` → ``repository``),
      unless the document writes the same compound with a hyphen elsewhere
      (``byte-\\ncompiled`` → ``byte-compiled``);
    * spaces collapsed, lines stripped, runs of blank lines reduced to one, ends trimmed;
    * dot leaders collapsed to one ``…`` (``Installation . . . . 12`` → ``Installation … 12``):
      each dot is a token, and on the eval manuals they were a fifth of all tokens embedded
      (issue 13), which cost ingest time and filled chunk windows with nothing to match.
    """
    text = _SPACES.sub(" ", normalize_chars(text))
    text = _LEADER.sub(" \u2026 ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))

    def join(m: re.Match[str]) -> str:
        left, right = m.group(1), m.group(2)
        if not right[0].islower():
            return m.group(0)  # "Debian-\nBased", a new sentence or a name: keep the break
        if f"{left}-{right}".lower() in compounds:
            return f"{left}-{right}"
        return left + right

    text = _LINE_END_HYPHEN.sub(join, text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


# --- info ----------------------------------------------------------------------------------


def _read_info(reader: PdfReader) -> PdfInfo:
    """Title, author and creation date from the document info dictionary, if sane."""
    try:
        meta = reader.metadata
    except Exception:  # a broken info dictionary must not fail the ingest
        log.debug("pdf: unreadable document info", exc_info=True)
        return PdfInfo()
    if not meta:
        return PdfInfo()
    return PdfInfo(
        title=_clean_field(meta.get("/Title")),
        author=_clean_field(meta.get("/Author")),
        created_date=parse_pdf_date(meta.get("/CreationDate")),
    )


_FIELD_MAX = 300  # characters
_FIELD_SENTENCE = 120  # longer values are cut to their first sentence


_UTF16_BOMS = {b"\xfe\xff": "utf-16-be", b"\xff\xfe": "utf-16-le"}


def _utf16_text(raw: object) -> str | None:
    """A UTF-16 PDF string decoded unit by unit. pypdf decodes one with an unpaired surrogate
    as PDFDocEncoding instead ("þÿ S u r v e y"); here the lone unit is kept for
    ``normalize_line`` to drop."""
    if not isinstance(raw, bytes) or raw[:2] not in _UTF16_BOMS:
        return None
    try:
        return raw[2:].decode(_UTF16_BOMS[raw[:2]], "surrogatepass")
    except UnicodeDecodeError:  # an odd byte count: pypdf's own reading stands
        return None


def _clean_field(value: Any) -> str | None:
    """A metadata string, cleaned; ``None`` for absent, empty or junk values."""
    if value is None:
        return None
    try:
        obj = value.get_object() if hasattr(value, "get_object") else value
        text = _utf16_text(getattr(obj, "original_bytes", None)) or str(obj)
    except Exception:
        return None
    text = normalize_line(text)
    if not any(ch.isalnum() for ch in text):
        return None
    if text.lower() in {"untitled", "unknown", "none", "null", "title", "author"}:
        return None
    if len(text) > _FIELD_SENTENCE:
        # Generators stuff whole licence notices into /Author ("Copyright © ... reserved.This
        # file may be distributed ..."): keep the first sentence.
        text = re.split(r"(?<=[a-z])\.", text, maxsplit=1)[0]
    if len(text) > _FIELD_MAX:
        text = text[: _FIELD_MAX - 1].rstrip() + "…"
    return text


_PDF_DATE = re.compile(r"(?:D:)?\s*(\d{4})(\d{2})?(\d{2})?")


def parse_pdf_date(value: Any) -> dt.date | None:
    """The date part of a PDF date string (``D:YYYYMMDDHHmmSS+HH'mm'``), or ``None``.

    Tolerant: the time and zone are ignored, missing month/day default to 1, and dates
    outside 1970-2200 (typical garbage: ``D:00000101``) are treated as absent.
    """
    if value is None:
        return None
    try:
        text = str(value)
    except Exception:
        return None
    m = _PDF_DATE.match(text.strip())
    if not m:
        return None
    year, month, day = int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)
    if not 1970 <= year <= 2200:
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


# --- language ---------------------------------------------------------------------------------

# The most frequent function words of each language, chosen to overlap little between
# them ("a", "de", "la" etc. are shared and therefore left out; so are one-letter words
# like Spanish "y", which code is full of).
_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset((
        "the", "and", "of", "to", "is", "in", "that", "it", "for", "with", "as", "are", "this", "be",
        "on", "by", "not", "or", "from", "which"
    )),
    "de": frozenset((
        "der", "die", "und", "das", "ist", "nicht", "mit", "sich", "auf", "für", "dem", "den", "ein",
        "eine", "zu", "von", "auch", "werden"
    )),
    "fr": frozenset((
        "le", "les", "et", "est", "des", "une", "dans", "pour", "qui", "pas", "sur", "au", "avec",
        "sont", "ce", "du", "par"
    )),
    "es": frozenset((
        "el", "los", "las", "es", "del", "una", "por", "con", "para", "se", "lo", "como", "su",
        "al", "más", "pero"
    )),
    "it": frozenset((
        "il", "di", "che", "è", "per", "una", "sono", "non", "gli", "della", "nel", "con", "le", "si",
        "anche", "alla"
    )),
    "pt": frozenset((
        "os", "é", "do", "da", "uma", "não", "para", "com", "que", "em", "dos", "das", "no",
        "na", "ao"
    )),
    "nl": frozenset((
        "de", "het", "een", "en", "van", "is", "dat", "niet", "op", "te", "zijn", "voor", "met", "die",
        "wordt", "ook"
    )),
}
_WORD = re.compile(r"[^\W\d_]+")


def guess_language(texts: Iterable[str]) -> str | None:
    """ISO 639-1 code of the dominant language, by stop-word hits; ``None`` when unsure.

    Looks at up to ``LANGUAGE_SAMPLE_WORDS`` words of the first ``LANGUAGE_SAMPLE_PAGES``
    texts given. Confident means: at least 50 words, the winner's stop words are >= 8% of them
    and at least twice the runner-up's (English prose scores ~25%; code listings less).
    """
    words: list[str] = []
    for i, text in enumerate(texts):
        if i >= LANGUAGE_SAMPLE_PAGES or len(words) >= LANGUAGE_SAMPLE_WORDS:
            break
        words.extend(w.lower() for w in _WORD.findall(text))
    words = words[:LANGUAGE_SAMPLE_WORDS]
    if len(words) < 50:
        return None
    counts = Counter(words)
    scores = sorted(((sum(counts[w] for w in stop), lang) for lang, stop in _STOPWORDS.items()),
                    reverse=True)
    (best, lang), (second, _) = scores[0], scores[1]
    if best >= 0.08 * len(words) and best >= 2 * second:
        return lang
    return None


def _spread(items: Sequence[str], n: int) -> list[str]:
    """Up to ``n`` items evenly spaced over ``items``: a manual's first pages are often a
    table of contents, which says little about its language."""
    if len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def _catalog_language(reader: PdfReader) -> str | None:
    """The catalog's ``/Lang`` (e.g. ``en-US`` → ``en``), a fallback when the text is unclear."""
    try:
        root = reader.trailer["/Root"].get_object()
        value = root.get("/Lang") if isinstance(root, dict) else None
    except Exception:
        return None
    if value is None:
        return None
    primary = str(value).strip().split("-")[0].split("_")[0].lower()
    return primary if re.fullmatch(r"[a-z]{2}", primary) else None


# --- sniffing ----------------------------------------------------------------------------------

_SIGNATURES: Sequence[tuple[bytes, str]] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"PK\x03\x04", "a ZIP archive (or a .docx/.xlsx/.pptx/.epub document)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Microsoft Office document"),
    (b"{\\rtf", "an RTF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"%!PS", "a PostScript file"),
)


def sniff_kind(data: bytes) -> str:
    """A short human description of what ``data`` looks like (for error messages)."""
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "a WebP image"
    head = data[:1024].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "an HTML page"
    if head.startswith(b"<?xml") or head.startswith(b"<svg"):
        return "an XML or SVG file"
    if head.startswith((b"{", b"[")):
        return "JSON or other text"
    try:
        sample = data[:1024].decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the 1024-byte boundary still counts as text.
        sample = data[:1020].decode("utf-8", errors="ignore")
        if len(sample) < 200:
            return "binary data"
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in sample)
    return "plain text" if sample and printable / len(sample) > 0.95 else "binary data"
