"""Boundary validation and small pure helpers of the ingest pipeline."""

import pydantic
import pytest

from querio.ingest.chunking import TITLE_MAX_TOKENS
from querio.ingest.pipeline import blob_key, display_filename, embedding_context, embedding_texts
from querio.models import ChatRequest, QueryRequest, SearchRequest, clean_tags


@pytest.mark.parametrize("model", [SearchRequest, QueryRequest])
def test_nul_in_a_query_is_a_validation_error(model: type[pydantic.BaseModel]) -> None:
    with pytest.raises(pydantic.ValidationError, match="NUL"):
        model(query="fit a model\x00")


def test_nul_in_chat_and_tags_never_reaches_the_database() -> None:
    with pytest.raises(pydantic.ValidationError, match="NUL"):
        ChatRequest(message="\x00hello")
    with pytest.raises(pydantic.ValidationError, match="NUL"):
        SearchRequest(query="x", filters={"tags": ["a\x00"]})
    assert clean_tags([" Manual\x00 ", "manual", "R"]) == ("manual", "r")


@pytest.mark.parametrize(("raw", "shown"), [
    ("../../evil.pdf", "evil.pdf"), ("C:\\Users\\me\\report.pdf", "report.pdf"),
    ("/etc/passwd", "passwd"), ("bad\x00name\n.pdf", "badname.pdf"), ("", "document.pdf"), ("..", "document.pdf"),
])
def test_user_filenames_are_display_names_only(raw: str, shown: str) -> None:
    assert display_filename(raw) == shown


def test_blob_keys_come_from_the_tenant_and_id_only() -> None:
    import uuid

    doc = uuid.UUID("abcdef00-0000-0000-0000-000000000000")
    assert blob_key("t1", doc) == "tenants/t1/documents/ab/cd/abcdef00000000000000000000000000.pdf"


def test_embedding_context_prefers_the_title_then_the_file_stem() -> None:
    assert embedding_context("R Data Import/Export", "R-data.pdf") == "R Data Import/Export"
    assert embedding_context(None, "dir/gnuplot.pdf") == "gnuplot"
    assert embedding_context("  multi\n line  title ", "x.pdf") == "multi line title"
    assert len(embedding_context("t" * 500, "x.pdf")) == 200


class WordCounter:
    """Counts a token per whitespace word (all ``embedding_texts`` asks of an embedder)."""

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(t.split()) for t in texts]


def test_embedded_text_carries_the_section_title_unless_the_chunk_has_it() -> None:
    emb = WordCounter()
    contents = ["Constants\nInteger constants are read with strtoll().",  # opens with its title
                "Floating point constants are read with atof().",  # from the middle of the section
                "Before.\nConstants\nInteger constants...",  # holds it as a line
                "Text of a document without headings.",
                "Const"]  # the start of its own title line, cut by a tiny cap
    sections = ["Constants", "Constants", "Constants", None, "Constants"]
    assert embedding_texts(emb, "gnuplot", contents, sections) == [
        "gnuplot\n" + contents[0], "gnuplot\nConstants\n" + contents[1], "gnuplot\n" + contents[2],
        "gnuplot\n" + contents[3], "gnuplot\n" + contents[4]]
    assert embedding_texts(emb, "", contents[1:2], sections[1:2]) == ["Constants\n" + contents[1]]
    assert embedding_texts(emb, "gnuplot", contents[1:2]) == ["gnuplot\n" + contents[1]]


def test_a_long_section_title_is_cut_to_whole_words_that_fit_the_room_the_chunker_kept() -> None:
    title = " ".join(f"w{i}" for i in range(TITLE_MAX_TOKENS + 5))
    text = embedding_texts(WordCounter(), "ctx", ["body"], [title])[0]
    kept = text.split("\n")[1]
    assert len(kept.split()) == TITLE_MAX_TOKENS and title.startswith(kept)
