"""``querio.ingest.pdf``: bad input is classified, good input parses page by page."""

from __future__ import annotations

import datetime as dt
import io
import logging
from pathlib import Path

import pytest
from pypdf import PdfReader
from pypdf._page import PageObject

from querio import errors
from querio.ingest.pdf import clean_text, guess_language, parse_pdf, parse_pdf_date, sniff_kind
from tests.fixtures.pdfs import IMAGE_PAGE, SAMPLE_PAGES, make_pdf, make_text_pdf

EXPECTED_ERRORS: dict[str, type[errors.PermanentIngestError]] = {
    "empty": errors.EmptyFile,
    "empty_whitespace": errors.EmptyFile,
    "not_pdf_png": errors.NotAPdf,
    "not_pdf_html": errors.NotAPdf,
    "not_pdf_zip": errors.NotAPdf,
    "not_pdf_text": errors.NotAPdf,
    "corrupt": errors.CorruptPdf,
    "truncated": errors.CorruptPdf,
    "encrypted": errors.EncryptedPdf,
    "image_only": errors.NoExtractableText,
}


# --- bad input ----------------------------------------------------------------------------


def test_every_bad_kind_has_an_expectation(bad_pdfs: dict[str, bytes]) -> None:
    assert set(bad_pdfs) == set(EXPECTED_ERRORS)


@pytest.mark.parametrize("name", sorted(EXPECTED_ERRORS))
def test_bad_input_raises_the_right_error(bad_pdfs: dict[str, bytes], name: str) -> None:
    expected = EXPECTED_ERRORS[name]
    with pytest.raises(errors.PermanentIngestError) as info:
        parse_pdf(bad_pdfs[name])
    assert type(info.value) is expected, f"{name}: {type(info.value).__name__}: {info.value}"
    # A human message and the stable code the API and the document row carry.
    assert len(info.value.message) > 20
    assert info.value.code == expected.code


@pytest.mark.parametrize(("name", "words"), [
    ("not_pdf_png", "PNG"), ("not_pdf_html", "HTML"), ("not_pdf_zip", "ZIP"), ("not_pdf_text", "plain text"),
])
def test_not_a_pdf_says_what_it_looks_like(bad_pdfs: dict[str, bytes], name: str, words: str) -> None:
    with pytest.raises(errors.NotAPdf, match=words) as info:
        parse_pdf(bad_pdfs[name])
    assert words in str(info.value.details["looks_like"])


def test_truncated_message_points_at_an_interrupted_transfer(bad_pdfs: dict[str, bytes]) -> None:
    with pytest.raises(errors.CorruptPdf, match="incomplete") as info:
        parse_pdf(bad_pdfs["truncated"])
    assert info.value.details["truncated"] is True


def test_encrypted_message_asks_for_an_unprotected_copy(bad_pdfs: dict[str, bytes]) -> None:
    with pytest.raises(errors.EncryptedPdf, match="password"):
        parse_pdf(bad_pdfs["encrypted"])


def test_scan_message_suggests_ocr(bad_pdfs: dict[str, bytes]) -> None:
    with pytest.raises(errors.NoExtractableText, match="OCR"):
        parse_pdf(bad_pdfs["image_only"])


def test_zero_pages_is_corrupt() -> None:
    with pytest.raises(errors.CorruptPdf, match="no pages"):
        parse_pdf(make_pdf([]))


def test_too_many_pages(sample_pdf_bytes: bytes) -> None:
    with pytest.raises(errors.FileTooLarge, match="3 pages") as info:
        parse_pdf(sample_pdf_bytes, max_pages=2)
    assert info.value.details == {"pages": 3, "max_pages": 2}
    assert parse_pdf(sample_pdf_bytes, max_pages=3).page_count == 3


def test_bad_files_do_not_flood_the_log(bad_pdfs: dict[str, bytes], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    for name in ("corrupt", "truncated"):
        with pytest.raises(errors.CorruptPdf):
            parse_pdf(bad_pdfs[name])
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]


def test_a_page_that_fails_counts_as_empty_and_is_logged(
    sample_pdf_bytes: bytes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    original = PageObject.extract_text

    def flaky(self: PageObject, *args: object, **kwargs: object) -> str:
        if "Chapter 2" in original(self):
            raise KeyError("/Font")  # what pypdf raises on some broken font dictionaries
        return original(self)

    monkeypatch.setattr(PageObject, "extract_text", flaky)
    parsed = parse_pdf(sample_pdf_bytes)
    assert parsed.empty_pages == (2,)
    assert "could not be read" in caplog.text


def test_every_page_failing_is_corrupt(sample_pdf_bytes: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: PageObject, *args: object, **kwargs: object) -> str:
        raise ValueError("bad content stream")

    monkeypatch.setattr(PageObject, "extract_text", broken)
    with pytest.raises(errors.CorruptPdf, match="bad content stream"):
        parse_pdf(sample_pdf_bytes)


# --- good input ---------------------------------------------------------------------------


def test_generated_pdf_round_trips_through_pypdf() -> None:
    data = make_text_pdf(["Hello (world) \\ backslash", "Second page"], title="T", author="A")
    reader = PdfReader(io.BytesIO(data), strict=True)  # strict: the xref must be exact
    assert [p.extract_text() for p in reader.pages] == ["Hello (world) \\ backslash", "Second page"]
    assert reader.metadata is not None and reader.metadata.title == "T"


def test_sample_pdf(sample_pdf_bytes: bytes) -> None:
    parsed = parse_pdf(sample_pdf_bytes)
    assert parsed.page_count == 3
    assert [p.number for p in parsed.pages] == [1, 2, 3]
    assert parsed.empty_pages == ()
    assert "graphing utility" in parsed.pages[0].text
    assert parsed.pages[1].text.startswith("Chapter 2\nR is a language")
    assert parsed.info.title == "Querio sample"
    assert parsed.info.author == "Querio tests"
    assert parsed.info.language == "en"
    assert parsed.word_count == sum(len(p.text.split()) for p in parsed.pages)


def test_mixed_pdf_reports_the_image_page(mixed_pdf_bytes: bytes) -> None:
    parsed = parse_pdf(mixed_pdf_bytes)
    assert parsed.page_count == 3
    assert parsed.empty_pages == (2,)
    assert [p.number for p in parsed.pages] == [1, 2, 3]  # the empty page is kept, not dropped
    assert parsed.pages[1].text == ""
    assert "Gnuplot" in parsed.pages[0].text and "statistical computing" in parsed.pages[2].text


def test_empty_user_password_is_opened(encrypted_empty_password_pdf_bytes: bytes) -> None:
    assert PdfReader(io.BytesIO(encrypted_empty_password_pdf_bytes)).is_encrypted
    parsed = parse_pdf(encrypted_empty_password_pdf_bytes)
    assert parsed.page_count == len(SAMPLE_PAGES)
    assert "NewDocumentCommand" in parsed.pages[2].text


def test_header_after_leading_junk_is_accepted() -> None:
    # Readers accept up to 1 KiB before "%PDF-" (some mail gateways prepend lines).
    parsed = parse_pdf(b"\r\n" * 20 + make_text_pdf(SAMPLE_PAGES))
    assert parsed.page_count == 3


def test_image_pages_are_listed_wherever_they_are() -> None:
    parsed = parse_pdf(make_pdf([IMAGE_PAGE, SAMPLE_PAGES[0], IMAGE_PAGE, SAMPLE_PAGES[1], IMAGE_PAGE]))
    assert parsed.empty_pages == (1, 3, 5)
    assert parsed.page_count == 5


@pytest.mark.parametrize(("raw", "expected"), [
    ("D:20230120164927Z", dt.date(2023, 1, 20)),
    ("D:20221130213155+01'00'", dt.date(2022, 11, 30)),
    ("20221130", dt.date(2022, 11, 30)),
    ("D:2021", dt.date(2021, 1, 1)),
    ("D:20231345", None),  # month 13
    ("D:00000101000000", None),
    ("garbage", None),
    ("", None),
    (None, None),
])
def test_pdf_dates(raw: str | None, expected: dt.date | None) -> None:
    assert parse_pdf_date(raw) == expected


def test_garbage_metadata_is_dropped_not_fatal() -> None:
    data = make_pdf(SAMPLE_PAGES, title="   ", author="untitled", creation_date="D:99999999")
    info = parse_pdf(data).info
    assert (info.title, info.author, info.created_date) == (None, None, None)


def test_licence_text_in_author_is_cut_to_its_first_sentence() -> None:
    author = ("Copyright 1995-2006 The LaTeX Project, All rights reserved.This file may be distributed "
              "and/or modified under the conditions of the LaTeX Project Public License, version 1.3c.")
    info = parse_pdf(make_pdf(SAMPLE_PAGES, author=author)).info
    assert info.author == "Copyright 1995-2006 The LaTeX Project, All rights reserved"


# --- text cleanup ----------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "clean"), [
    ("ﬁle ﬂow ﬀ", "file flow ff"),  # NFKC expands ligatures
    ("a\x00b\x07c", "a b c"),  # control characters
    ("soft\u00adhyphen", "softhyphen"),
    ("tab\tand\u00a0nbsp   runs", "tab and nbsp runs"),
    ("  line one  \n  line two  ", "line one\nline two"),
    ("para\n\n\n\n\nnext", "para\n\nnext"),
    ("reposi-\ntory", "repository"),  # hyphenation across a line end
    ("Debian-\nBased", "Debian-\nBased"),  # capital after the break: not a broken word
    ("aarch64-\napple", "aarch64-\napple"),  # digits: an identifier, left alone
    ("\x88 bullet", "bullet"),  # a C1 control where the PDF meant a bullet
    ("Installation . . . . . . . 12", "Installation \u2026 12"),  # a dot leader is one token, not 14
    ("Index..............301\n2.1 Setup.....7", "Index \u2026 301\n2.1 Setup \u2026 7"),
    ("Part \u00b7 \u00b7 \u00b7 \u00b7 \u00b7 9", "Part \u2026 9"),
    ("wait... done \u2026 and 1.2.3.4", "wait... done ... and 1.2.3.4"),  # ellipses and versions stay
])
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_hyphen_kept_when_the_document_writes_the_compound() -> None:
    assert clean_text("are byte-\ncompiled", {"byte-compiled"}) == "are byte-compiled"
    assert clean_text("are byte-\ncompiled") == "are bytecompiled"


def test_language_guess() -> None:
    english = "The data frame is the most important structure for the analysis of data in R, " * 5
    german = "Der Datenrahmen ist die wichtigste Struktur für die Analyse von Daten und nicht nur das. " * 5
    french = "Le tableau de données est la structure la plus importante pour les analyses et des tests. " * 5
    assert guess_language([english]) == "en"
    assert guess_language([german]) == "de"
    assert guess_language([french]) == "fr"
    assert guess_language(["too short"]) is None
    assert guess_language(["x <- c(1, 2, 3); y <- mean(x) " * 20]) is None  # code: unsure


@pytest.mark.parametrize(("data", "kind"), [
    (b"\xff\xd8\xff\xe0JFIF", "JPEG"),
    (b"<html><body>hi</body></html>", "HTML"),
    (b"{\"a\": 1}", "JSON"),
    (bytes(range(256)) * 4, "binary"),
    ("Grüße aus Köln\n".encode() * 80, "plain text"),
])
def test_sniff_kind(data: bytes, kind: str) -> None:
    assert kind in sniff_kind(data)


# --- the real manuals --------------------------------------------------------------------------


def test_real_manual_matches_pypdf(eval_pdf_dir: Path) -> None:
    data = (eval_pdf_dir / "clsguide.pdf").read_bytes()
    parsed = parse_pdf(data)
    assert parsed.page_count == len(PdfReader(io.BytesIO(data)).pages) == 33
    assert parsed.empty_pages == ()
    assert all(p.text for p in parsed.pages)
    assert parsed.info.title == "LaTeX2ε for class and package writers"
    assert parsed.info.created_date == dt.date(2022, 11, 30)
    assert parsed.info.language == "en"
    assert parsed.word_count > 5000


def test_words_are_not_glued_in_t1_encoded_tex_fonts(eval_pdf_dir: Path) -> None:
    # usrguide.pdf draws a visible-space glyph at code 32; without the font fix pypdf
    # returns "Thisfamilyofcommandsareusedtocreatea" on physical page 4.
    parsed = parse_pdf((eval_pdf_dir / "usrguide.pdf").read_bytes())
    page = parsed.pages[3].text
    assert "This family of commands are used to create a" in page
    assert "Thisfamily" not in page


@pytest.mark.parametrize("name", ["clsguide.pdf", "usrguide.pdf"])
def test_fonts_are_built_once_per_parse_with_the_same_text(eval_pdf_dir: Path, name: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """pypdf builds a page's fonts (their ToUnicode maps parsed) on every page; a parse builds
    each once (``FONT_REUSE``) and must not change a character: its text equals a parse that
    builds every font afresh, as pypdf does on its own."""
    import contextlib

    import pypdf.generic._font as pypdf_font

    import querio.ingest.pdf as pdf

    assert pdf.FONT_REUSE
    builds = {"n": 0}
    get_encoding = pypdf_font.get_encoding

    def counted(*a: object) -> object:
        builds["n"] += 1
        return get_encoding(*a)  # type: ignore[arg-type]

    monkeypatch.setattr(pypdf_font, "get_encoding", counted)
    data = (eval_pdf_dir / name).read_bytes()
    reused = parse_pdf(data)
    once = builds["n"]
    monkeypatch.setattr(pdf, "_font_reuse", contextlib.nullcontext)  # no cache: pypdf as shipped
    fresh = parse_pdf(data)
    assert [p.text for p in reused.pages] == [p.text for p in fresh.pages]
    assert 0 < once * 3 < builds["n"] - once  # each font once, against once per page that uses it
