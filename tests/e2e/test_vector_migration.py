"""pgvector → Pinecone end to end: real service (PostgreSQL, the embedding model, PDFs), the real
SDK against the stand-in. Migrate with an interruption and a resume, re-run (no duplicates),
verify (counts, agreement, recall), cut over with shadow mode, keep the stores in step on
ingest and delete, reconcile drift, and the ``querio vectors`` commands."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from querio import wiring
from querio.adapters.pinecone_vectors import PineconeVectorStore
from querio.adapters.postgres.store import PostgresDocumentStore
from querio.adapters.postgres.vectors import PgVectorStore
from querio.cli import main
from querio.config import Settings, load_settings
from querio.models import Principal, SearchMode, SearchRequest
from querio.service import QuerioService
from querio.vectors import source
from querio.vectors.migrate import checkpoint, migrate, migration_name
from querio.vectors.mirror import MirroredVectorStore
from querio.vectors.reconcile import reconcile
from querio.vectors.verify import verify
from tests.fixtures.pdfs import make_text_pdf
from tests.pinecone_standin.fixture import API_KEY, INDEX, pinecone_standin  # noqa: F401
from tests.pinecone_standin.server import StandinServer

pytestmark = pytest.mark.e2e

TOPICS = [
    "Tomatoes need full sun, regular watering and a sturdy stake to climb.",
    "To fix a flat tyre, remove the wheel and patch the inner tube with glue.",
    "Knead the dough for ten minutes and bake at two hundred and twenty degrees.",
    "A compass needle points to magnetic north; correct for declination on maps.",
    "Backups follow the three-two-one rule: three copies, two media, one offsite.",
    "Sourdough starter needs regular feeding with flour and water to stay active.",
]
QUESTIONS = ["how do I repair a punctured bicycle tyre", "what temperature to bake bread", "how many backup copies"]


def pdf(n: int, salt: str) -> bytes:
    return make_text_pdf([f"{TOPICS[(n + i) % len(TOPICS)]} ({salt} page {i + 1})" for i in range(6)],
                         title=f"Manual {salt}")


def pinecone_settings(base: Settings, server: StandinServer, **extra: object) -> Settings:
    return load_settings(data_dir=base.data_dir, database_url=base.database_url, pinecone_index=INDEX,
                         pinecone_host=server.url, pinecone_api_key=API_KEY, pinecone_namespace_prefix="tenant-",
                         **extra)


def counts(target: PineconeVectorStore) -> dict[str, int]:
    return target.namespace_counts()


@pytest.fixture
def corpus(service: QuerioService, alice: Principal, bob: Principal) -> QuerioService:
    for i in range(3):
        assert service.ingest(alice, pdf(i, f"alice-{i}"), f"alice-{i}.pdf").status == "ingested"
    assert service.ingest(bob, pdf(4, "bob"), "bob.pdf").status == "ingested"
    return service


def test_migrate_interrupt_resume_rerun_and_verify(corpus: QuerioService, settings: Settings,
                                                   pinecone_standin: StandinServer, alice: Principal) -> None:  # noqa: F811
    store = corpus.documents
    assert isinstance(store, PostgresDocumentStore)
    target = wiring.build_pinecone_store(pinecone_settings(settings, pinecone_standin))
    live = source.live_counts(store)
    total = sum(live.values())
    assert set(live) == {"tenant-alice", "tenant-bob"} and total >= 20

    dry = migrate(store, target, batch_size=4, dry_run=True)
    assert dry.remaining_at_start == total and dry.batches == -(-total // 4)
    assert counts(target) == {} and checkpoint(store, migration_name(target)) is None  # nothing written

    first = migrate(store, target, batch_size=4, stop_after=2)  # interrupted after 2 batches
    assert first.stopped_early and not first.completed and first.copied == 8
    saved = checkpoint(store, migration_name(target))
    assert saved is not None and saved["status"] == "running" and saved["copied"] == 8
    assert sum(counts(target).values()) == 8

    second = migrate(store, target, batch_size=4)  # resumes after the checkpoint
    assert second.resumed and second.start_after == saved["last_chunk_id"]
    assert second.copied == total - 8 and second.copied_total == total and second.completed
    assert counts(target) == live  # equal counts per tenant
    assert checkpoint(store, migration_name(target))["status"] == "completed"  # type: ignore[index]

    again = migrate(store, target, batch_size=50)  # a new pass: overwrites, never duplicates
    assert again.completed and again.copied == total and counts(target) == live

    pgvector = PgVectorStore(store)
    report = verify(store, pgvector, target, embed_query=corpus.embedder.embed_query, questions=QUESTIONS, k=5)
    assert report.counts_match and report.query_source == "questions" and report.queries == 6
    assert report.agreement_at_k == 1.0 and report.recall_at_k == {"pgvector": 1.0, "pinecone": 1.0}
    # once users have searched, their stored queries are the sample
    corpus.search(alice, SearchRequest(query="sourdough starter feeding", k=3))
    report = verify(store, pgvector, target, embed_query=corpus.embedder.embed_query, questions=QUESTIONS, k=5)
    assert report.query_source == "query_analytics" and report.queries == 1


def test_cut_over_with_shadow_keeps_both_stores_in_step(corpus: QuerioService, settings: Settings,
                                                        pinecone_standin: StandinServer,  # noqa: F811
                                                        alice: Principal, bob: Principal) -> None:
    store = corpus.documents
    assert isinstance(store, PostgresDocumentStore)
    target = wiring.build_pinecone_store(pinecone_settings(settings, pinecone_standin))
    migrate(store, target)
    cut = wiring.build_service(pinecone_settings(settings, pinecone_standin, vector_backend="pinecone",
                                                 vector_shadow=True, result_cache=False))
    try:
        assert isinstance(cut.vectors, MirroredVectorStore) and cut.health()["vector_backend"] == "pinecone"
        for q in QUESTIONS:
            request = SearchRequest(query=q, k=5, mode=SearchMode.VECTOR)
            assert ([h.chunk_id for h in cut.search(alice, request).results]
                    == [h.chunk_id for h in corpus.search(alice, request).results])
        assert cut.vectors.shadow_stats.queries == 3 and cut.vectors.shadow_stats.mean == 1.0
        hybrid = cut.search(alice, SearchRequest(query="flat tyre inner tube patch", k=3))
        assert hybrid.results and "tyre" in hybrid.results[0].snippet

        # a new document reaches Pinecone after its commit; a delete removes it from both
        before = counts(target)["tenant-bob"]
        outcome = cut.ingest(bob, pdf(2, "bob-2"), "bob-2.pdf")
        assert outcome.document is not None
        assert counts(target)["tenant-bob"] == before + outcome.chunks == source.live_counts(store)["tenant-bob"]
        cut.delete_document(bob, outcome.document.id)
        assert counts(target)["tenant-bob"] == before
        # and a reprocessed document is replaced, not doubled
        alice_doc = cut.list_documents(alice).documents[0]
        cut.reprocess(alice, alice_doc.id)
        assert counts(target) == source.live_counts(store)
    finally:
        cut.close()


def test_reconcile_repairs_missing_vectors_and_orphans(corpus: QuerioService, settings: Settings,
                                                       pinecone_standin: StandinServer) -> None:  # noqa: F811
    store = corpus.documents
    assert isinstance(store, PostgresDocumentStore)
    target = wiring.build_pinecone_store(pinecone_settings(settings, pinecone_standin))
    migrate(store, target)
    alice_ids = sorted(source.live_ids(store, "tenant-alice"))
    target.delete_ids("tenant-alice", alice_ids[:3])  # a lost write
    stray = source.records_by_id(store, "tenant-alice", [uuid.UUID(alice_ids[5])])[0]
    target.upsert_records("tenant-bob", [stray])  # a record with no chunk row in bob's tenant

    dry = reconcile(store, target, dry_run=True)
    assert (dry.missing, dry.orphans) == (3, 1)
    assert sum(counts(target).values()) == sum(source.live_counts(store).values()) - 3 + 1  # untouched
    fixed = reconcile(store, target)
    assert fixed.tenants["tenant-alice"].missing == 3 and fixed.tenants["tenant-bob"].orphans == 1
    assert counts(target) == source.live_counts(store)
    assert reconcile(store, target, dry_run=True).missing == 0


def test_vectors_commands(corpus: QuerioService, settings: Settings, pinecone_standin: StandinServer,  # noqa: F811
                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for name, value in {"QUERIO_DATA_DIR": str(settings.data_dir), "QUERIO_DATABASE_URL": settings.database_url,
                        "QUERIO_PINECONE_INDEX": INDEX, "QUERIO_PINECONE_HOST": pinecone_standin.url,
                        "QUERIO_PINECONE_API_KEY": API_KEY}.items():
        monkeypatch.setenv(name, str(value))
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps({"question": q}) for q in QUESTIONS), encoding="utf-8")
    base = ["vectors", "migrate", "--from", "pgvector", "--to", "pinecone", "--batch-size", "3", "--json"]

    assert main([*base, "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["migration"]["dry_run"] is True
    assert main([*base, "--stop-after", "1"]) == 0
    out = json.loads(capsys.readouterr().out)["migration"]
    assert out["stopped_early"] and out["copied"] == 3
    assert main([*base, "--questions", str(questions), "--k", "5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["migration"]["resumed"] and result["migration"]["completed"]
    assert result["verify"]["counts_match"] and result["verify"]["agreement_at_k"] == 1.0

    pinecone_standin.index.namespaces["tenant-tenant-bob"].popitem()  # drift
    assert main(["vectors", "verify", "--sample", "0", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["mismatched_tenants"] == ["tenant-bob"]
    assert main(["vectors", "reconcile", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["missing"] == 1
    assert main(["vectors", "verify", "--sample", "0"]) == 0
    assert "equal" in capsys.readouterr().out
    assert main(["vectors", "migrate", "--from", "pgvector", "--to", "pinecone", "--batch-size", "0"]) == 1
    assert "batch size" in capsys.readouterr().err
