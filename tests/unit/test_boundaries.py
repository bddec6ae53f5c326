"""Boundary validation and small pure helpers of the ingest pipeline."""

import pydantic
import pytest

from querio.ingest.pipeline import blob_key, display_filename, embedding_context
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
