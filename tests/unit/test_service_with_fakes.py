"""The domain service on in-memory fakes of its storage ports (``tests/fakes``), with the
network off: ingest, search, chat, stats, delete and purge, the archive job, S3 event order,
and ``querio vectors migrate``'s resumable copy. The same behaviours on PostgreSQL are in
``tests/integration`` and ``tests/e2e``; these run in about a second."""

from __future__ import annotations

import datetime as dt
import socket
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from querio.adapters.fs_blobs import FilesystemBlobStore
from querio.adapters.memory_cache import MemoryCache
from querio.archive import run_archive
from querio.config import load_settings
from querio.errors import NotFound
from querio.ingest.events import S3Version
from querio.models import ChatRequest, DocumentStatus, Principal, SearchMode, SearchRequest
from querio.retrieval.answer import ExtractiveAnswerer
from querio.service import QuerioService
from querio.vectors.migrate import migrate
from tests.fakes import (
    HashEmbedder,
    InMemoryChats,
    InMemoryCheckpoints,
    InMemoryDocuments,
    InMemoryQueryLog,
    InMemoryS3Objects,
    InMemorySweeps,
    InMemoryVectors,
    InMemoryVectorSource,
)
from tests.fixtures.pdfs import make_text_pdf

ALICE = Principal(tenant_id="tenant-alice", user_id="alice")
BOB = Principal(tenant_id="tenant-bob", user_id="bob")
GARDEN = ["Tomatoes need full sun, regular watering and a sturdy stake to climb.",
          "Prune the basil often so it grows bushy and does not flower too early."]
BIKES = ["To fix a flat tyre, remove the wheel and patch the inner tube with glue."]


@pytest.fixture(autouse=True)
def network_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt fails the test: the fakes and the local adapters need none."""
    def refuse(*_a: Any, **_k: Any) -> None:
        raise AssertionError("a unit test of the service tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def docs() -> InMemoryDocuments:
    return InMemoryDocuments()


@pytest.fixture
def service(tmp_path: Path, docs: InMemoryDocuments) -> Iterator[QuerioService]:
    embedder = HashEmbedder()
    # a DSN that cannot be reached: nothing here may open it
    settings = load_settings(data_dir=tmp_path, database_url="postgresql://nobody@127.0.0.1:1/none")
    svc = QuerioService(settings=settings, documents=docs, chats=InMemoryChats(), query_log=InMemoryQueryLog(docs),
                        s3_objects=InMemoryS3Objects(docs), sweeps=InMemorySweeps(docs), parts=_no_parts(),
                        vectors=InMemoryVectors(docs), blobs=FilesystemBlobStore(tmp_path / "blobs"),
                        cache=MemoryCache(), embedder=lambda: embedder, answerer=ExtractiveAnswerer)
    yield svc
    svc.close()


def _no_parts() -> Any:
    """Page-range parts are not exercised here (small PDFs): any call is a test failure."""
    class NoParts:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"IngestParts.{name} called for a small PDF")
    return NoParts()


def _ingest(service: QuerioService, who: Principal, pages: list[str], name: str) -> uuid.UUID:
    outcome = service.ingest(who, make_text_pdf(pages), name)
    assert outcome.status == "ingested" and outcome.document is not None, outcome
    return outcome.document.id


def test_ingest_search_and_tenancy(service: QuerioService) -> None:
    garden = _ingest(service, ALICE, GARDEN, "garden.pdf")
    _ingest(service, BOB, BIKES, "bikes.pdf")
    assert service.ingest(ALICE, make_text_pdf(GARDEN), "again.pdf").status == "duplicate"
    for mode in SearchMode:
        hits = service.search(ALICE, SearchRequest(query="basil flower prune", k=3, mode=mode)).results
        assert hits and hits[0].document_id == garden and hits[0].page == 2, mode
    # another tenant's documents are neither listed nor found nor searched
    assert [d.filename for d in service.list_documents(BOB).documents] == ["bikes.pdf"]
    with pytest.raises(NotFound):
        service.get_document(BOB, garden)
    assert service.search(BOB, SearchRequest(query="basil", k=3, mode=SearchMode.TEXT)).results == []


def test_chat_keeps_history_per_tenant_and_stats_count_queries(service: QuerioService) -> None:
    _ingest(service, ALICE, GARDEN, "garden.pdf")
    first = service.chat(ALICE, ChatRequest(message="How much sun do tomatoes need?"))
    assert "sun" in first.answer.answer.lower() and first.answer.citations
    again = service.chat(ALICE, ChatRequest(message="And basil?", session_id=first.session_id))
    assert again.session_id == first.session_id
    assert [m.role for m in service.chat_history(ALICE, first.session_id)] == ["user", "assistant"] * 2
    with pytest.raises(NotFound):
        service.chat_history(BOB, first.session_id)
    service.search(ALICE, SearchRequest(query="tomatoes", k=2))
    stats = service.stats(ALICE)  # flushes the background analytics writer into the QueryLog fake
    assert (stats.documents, stats.pages, stats.queries) == (1, 2, 1)
    service.delete_chat_session(ALICE, first.session_id)
    assert service.list_chat_sessions(ALICE) == []


def test_delete_hides_at_once_and_purges_blob_chunks_and_row(service: QuerioService,
                                                            docs: InMemoryDocuments) -> None:
    doc_id = _ingest(service, ALICE, GARDEN, "garden.pdf")
    path = docs.rows[doc_id].storage_path
    assert path and service.blobs.exists(path)
    cached = service.search(ALICE, SearchRequest(query="tomatoes sun", k=2))
    service.delete_document(ALICE, doc_id)
    assert doc_id not in docs.rows and doc_id not in docs.chunks and not service.blobs.exists(path)
    after = service.search(ALICE, SearchRequest(query="tomatoes sun", k=2))
    assert cached.results and after.results == [] and not after.cached  # the corpus version moved


def test_archive_job_purges_expired_deletes_and_archives_idle_documents(service: QuerioService,
                                                                         docs: InMemoryDocuments) -> None:
    idle = _ingest(service, ALICE, GARDEN, "garden.pdf")
    gone = _ingest(service, BOB, BIKES, "bikes.pdf")
    service.delete_document(BOB, gone, purge=False)  # the retention path: soft-deleted, kept
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    report = run_archive(service, now=later, batch_size=1)
    assert (report.purged, report.archived, report.errors) == (1, 1, [])
    assert gone not in docs.rows and docs.rows[idle].storage_class == "GLACIER"
    assert run_archive(service, now=later).archived == 0  # idempotent


def test_s3_events_apply_in_sequencer_order(service: QuerioService) -> None:
    key = "tenants/tenant-alice/uploads/garden.pdf"
    service.blobs.put(key, make_text_pdf(GARDEN))
    newer = service.ingest_s3_object("tenant-alice", "bucket", key,
                                     version=S3Version(event_name="ObjectCreated:Put", sequencer="00B2"))
    assert newer.status == "ingested" and newer.document is not None
    stale = service.ingest_s3_object("tenant-alice", "bucket", key,
                                     version=S3Version(event_name="ObjectCreated:Put", sequencer="00A1"))
    assert stale.status == "skipped" and "later event" in (stale.reason or "")
    assert service.s3_objects.find_by_s3_key("tenant-alice", "bucket", key).id == newer.document.id  # type: ignore[union-attr]
    assert service.delete_s3_object_document("tenant-alice", "bucket", key,
                                             version=S3Version(event_name="ObjectRemoved", sequencer="0099")) is None


class FakePinecone:
    """What ``migrate`` needs of the target: the index check, its name and batched upserts."""

    index_name, namespace_prefix = "idx", ""

    def __init__(self) -> None:
        self.records: dict[str, dict[uuid.UUID, Any]] = {}

    def check_index(self) -> None:
        pass

    def upsert_records(self, tenant: str, records: Sequence[Any]) -> int:
        self.records.setdefault(tenant, {}).update({r.chunk_id: r for r in records})
        return 1


def test_vector_migration_resumes_from_its_checkpoint(service: QuerioService, docs: InMemoryDocuments) -> None:
    for i in range(3):
        _ingest(service, ALICE, [f"{GARDEN[0]} Bed {i}.", GARDEN[1]], f"garden-{i}.pdf")
    _ingest(service, BOB, BIKES, "bikes.pdf")
    source, checkpoints, target = InMemoryVectorSource(docs), InMemoryCheckpoints(), FakePinecone()
    live = source.live_counts()
    first = migrate(source, checkpoints, target, batch_size=2, stop_after=1)  # type: ignore[arg-type]
    assert first.stopped_early and first.copied == 2
    second = migrate(source, checkpoints, target, batch_size=2)  # type: ignore[arg-type]
    assert second.resumed and second.completed and second.copied == sum(live.values()) - 2
    assert {t: len(r) for t, r in target.records.items()} == live
    record = next(iter(target.records["tenant-bob"].values()))
    assert record.metadata["page"] == 1 and record.values.shape == (384,)
    assert docs.rows[uuid.UUID(record.metadata["document_id"])].processing_status == DocumentStatus.COMPLETED
