"""Issue 13: the embedder variant is recorded with the corpus, a mismatch is refused, and
`reembed` converts a corpus (resumably, per tenant) — on the real PostgreSQL and real models
(the shipped int8 export and the fp32 reference export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest

from querio.config import Settings
from querio.embedding import REFERENCE_VARIANT
from querio.errors import EmbedderMismatch
from querio.models import Principal, SearchMode, SearchRequest
from querio.reembed import ReembedStep
from querio.service import QuerioService
from querio.wiring import build_service
from tests.fixtures.pdfs import make_text_pdf
from tests.fixtures.service import make_settings

pytestmark = pytest.mark.integration

PAGES = [
    "Bicycle maintenance. To fix a flat tyre, remove the wheel, lever the tyre off the rim, "
    "find the puncture in the inner tube and apply a rubber patch with glue.",
    "Baking bread. Knead the dough for ten minutes, let it rise until doubled in size, "
    "then bake at two hundred and twenty degrees Celsius for thirty minutes.",
]


def variants(dsn: str, tenant: str) -> list[str | None]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute(
            "SELECT embedder_variant FROM documents WHERE tenant_id = %s ORDER BY id", (tenant,)).fetchall()]


def vectors(dsn: str, document_id: object) -> np.ndarray:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT embedding::text FROM document_chunks WHERE document_id = %s ORDER BY chunk_index",
                            (document_id,)).fetchall()
    return np.array([[float(x) for x in r[0].strip("[]").split(",")] for r in rows], dtype=np.float32)


@pytest.fixture
def reference(settings: Settings, tmp_path: Path, pg_dsn: str) -> QuerioService:
    """A second service on the same database and blobs, embedding with the fp32 reference export."""
    svc = build_service(make_settings(settings.data_dir, pg_dsn, model_precision="fp32"))
    yield svc
    svc.documents.close()


def test_the_shipped_default_is_quantized_and_not_the_reference_variant(service: QuerioService) -> None:
    assert service.settings.model_precision == "qint8"
    assert service.embedder.variant.startswith("all-MiniLM-L6-v2/qint8/sha256:")
    assert service.embedder.variant != REFERENCE_VARIANT


def test_ingest_records_the_running_variant(service: QuerioService, alice: Principal, pg_dsn: str) -> None:
    doc = service.ingest(alice, make_text_pdf(PAGES), "bikes.pdf").document
    assert doc is not None and doc.embedder_variant == service.embedder.variant
    assert variants(pg_dsn, alice.tenant_id) == [service.embedder.variant]


def test_a_corpus_of_another_variant_is_refused_for_vector_search_only(
        service: QuerioService, reference: QuerioService, alice: Principal, bob: Principal) -> None:
    service.ingest(alice, make_text_pdf(PAGES), "bikes.pdf")
    reference.ingest(bob, make_text_pdf(PAGES), "bikes.pdf")
    for mode in (SearchMode.VECTOR, SearchMode.HYBRID):
        with pytest.raises(EmbedderMismatch) as refused:
            reference.search(alice, SearchRequest(query="fix a flat tyre", mode=mode))
        assert "querio reembed" in refused.value.message and service.embedder.variant in refused.value.message
    # full text needs no vectors; and bob's corpus, embedded by the reference, is fine with it
    assert reference.search(alice, SearchRequest(query="flat tyre", mode=SearchMode.TEXT)).results
    assert reference.search(bob, SearchRequest(query="fix a flat tyre")).results[0].page == 1
    with pytest.raises(EmbedderMismatch):
        service.search(bob, SearchRequest(query="fix a flat tyre"))


def test_reembed_converts_one_tenant_resumably(service: QuerioService, reference: QuerioService,
                                                alice: Principal, bob: Principal, pg_dsn: str) -> None:
    first = reference.ingest(alice, make_text_pdf(PAGES), "a.pdf").document
    second = reference.ingest(alice, make_text_pdf(PAGES[::-1]), "b.pdf").document
    reference.ingest(bob, make_text_pdf(PAGES), "a.pdf")
    fresh = service.ingest(Principal(tenant_id="tenant-carol", user_id="carol"), make_text_pdf(PAGES), "a.pdf")
    assert first and second and fresh.document
    steps: list[ReembedStep] = []

    partial = service.reembed(tenant_id=alice.tenant_id, progress=steps.append, limit=1)  # a killed run
    assert (partial.documents, partial.reembedded) == (2, 1)
    assert sorted(variants(pg_dsn, alice.tenant_id), key=str) == sorted([service.embedder.variant, REFERENCE_VARIANT])
    with pytest.raises(EmbedderMismatch):  # half done: still refused
        service.search(alice, SearchRequest(query="fix a flat tyre"))

    rest = service.reembed(tenant_id=alice.tenant_id, progress=steps.append)  # resumes: only the other one
    assert (rest.documents, rest.reembedded, rest.skipped) == (1, 1, 0)
    assert [(s.done, s.total, s.status) for s in steps] == [(1, 2, "reembedded"), (1, 1, "reembedded")]
    assert variants(pg_dsn, alice.tenant_id) == [service.embedder.variant] * 2
    assert variants(pg_dsn, bob.tenant_id) == [REFERENCE_VARIANT]  # tenant-scoped
    # the same vectors a fresh ingest of the same PDF gives, and searchable again
    assert np.allclose(vectors(pg_dsn, first.id), vectors(pg_dsn, fresh.document.id), atol=1e-5)
    assert service.search(alice, SearchRequest(query="fix a flat tyre")).results[0].page == 1
    assert service.reembed(tenant_id=alice.tenant_id).documents == 0  # nothing left

    everyone = service.reembed(tenant_id=None)
    assert (everyone.documents, everyone.tenants) == (1, [bob.tenant_id])
