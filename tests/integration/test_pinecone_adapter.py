"""The Pinecone adapter and the pgvector+Pinecone mirror, through the real SDK against the stand-in
and real PostgreSQL: the start-up index check, error mapping, request batching, the filter
mapping, settings, the post-commit sync, orphan repair and shadow agreement."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import boto3
import numpy as np
import pytest
from moto import mock_aws

from querio import wiring
from querio.adapters.pinecone_vectors import (
    PineconeVectorStore,
    VectorRecord,
    chunk_metadata,
    pinecone_client,
    pinecone_filter,
)
from querio.adapters.postgres.store import PostgresDocumentStore
from querio.adapters.postgres.vector_source import PostgresVectorSource
from querio.adapters.postgres.vectors import PgVectorStore
from querio.config import load_settings
from querio.errors import ConfigurationError, TransientError, ValidationFailed
from querio.models import SearchFilters
from querio.observability import counters
from querio.vectors.mirror import MirroredVectorStore
from querio.vectors.sync import IndexSync
from tests.fixtures.postgres import drafts, ingest, unit_vectors
from tests.pinecone_standin.fixture import API_KEY, INDEX, pinecone_standin  # noqa: F401
from tests.pinecone_standin.server import StandinIndex, StandinServer, running

pytestmark = pytest.mark.integration
NOFILTER = SearchFilters()


def adapter(server: StandinServer, *, index: str = INDEX, key: str = API_KEY) -> PineconeVectorStore:
    return PineconeVectorStore(lambda: pinecone_client(key, server.url), index_name=index, host=server.url)


@pytest.mark.parametrize(("dimension", "metric", "problem"),
                         [(768, "cosine", "768"), (384, "dotproduct", "dotproduct")])
def test_index_shape_is_checked_at_start_up(dimension: int, metric: str, problem: str) -> None:
    with running(StandinIndex("wrong", dimension, metric), api_key=API_KEY) as server:
        with pytest.raises(ConfigurationError, match=problem) as err:
            adapter(server, index="wrong").check_index()
        assert "QUERIO_PINECONE_INDEX" in err.value.message
        assert err.value.details["expected_dimension"] == 384


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the SDK's sleeps between retries (its own test seam): a dead server fails in
    milliseconds instead of ~5 s, with the same retries and the same final error."""
    from pinecone._internal import http_client

    monkeypatch.setattr(http_client, "_retry_sleep", lambda _s: None)


def test_missing_index_bad_key_and_dead_server(pinecone_standin: StandinServer,  # noqa: F811
                                               no_backoff: None) -> None:
    adapter(pinecone_standin).check_index()  # the right shape passes
    with pytest.raises(ConfigurationError, match="not found"):
        adapter(pinecone_standin, index="nope").check_index()
    with pytest.raises(ConfigurationError, match="API key"):
        adapter(pinecone_standin, key="wrong-key").check_index()
    with running(StandinIndex(INDEX, 384), api_key=API_KEY) as short_lived:
        url = short_lived.url
    dead = PineconeVectorStore(lambda: pinecone_client(API_KEY, url), index_name=INDEX, host=url)
    with pytest.raises(TransientError):
        dead.query("t", unit_vectors(1)[0], 5, NOFILTER)


def test_upserts_are_batched_within_the_request_limits(pinecone_standin: StandinServer) -> None:  # noqa: F811
    store = adapter(pinecone_standin)
    vecs = unit_vectors(1200, seed=1)
    meta = {"document_id": str(uuid.uuid4()), "tags": ["t"] * 50}
    requests = store.upsert_records("t", [VectorRecord(uuid.uuid4(), v, meta) for v in vecs])
    sizes = [size for _, path, size in pinecone_standin.index.requests if path == "/vectors/upsert"]
    assert requests == len(sizes) >= 5  # ~240 records of ~7.5 KB per 1.8 MB request
    assert max(sizes) <= 2_000_000
    assert pinecone_standin.index.count("tenant-t") == 1200


def test_oversized_metadata_and_zero_vectors_are_refused_before_sending(
        pinecone_standin: StandinServer) -> None:  # noqa: F811
    store = adapter(pinecone_standin)
    with pytest.raises(ValidationFailed, match="40,000"):
        store.upsert_records("t", [VectorRecord(uuid.uuid4(), unit_vectors(1)[0], {"blob": "x" * 40_000})])
    with pytest.raises(ValidationFailed, match="zeros"):
        store.upsert_records("t", [VectorRecord(uuid.uuid4(), np.zeros(384, dtype=np.float32), {})])
    assert not [p for _, p, _ in pinecone_standin.index.requests if p == "/vectors/upsert"]


def test_filter_mapping() -> None:
    doc = uuid.uuid4()
    after = dt.datetime(2026, 1, 2, 3, 4, 5)  # naive = UTC
    assert pinecone_filter(SearchFilters()) is None
    assert pinecone_filter(SearchFilters(tags=[], document_ids=[])) is None
    assert pinecone_filter(SearchFilters(document_ids=[doc])) == {"document_id": {"$in": [str(doc)]}}
    assert pinecone_filter(SearchFilters(tags=["a"], page_from=2, page_to=5, uploaded_after=after)) == {"$and": [
        {"tags": {"$in": ["a"]}}, {"page_end": {"$gte": 2}}, {"page": {"$lte": 5}},
        {"uploaded_at": {"$gte": after.replace(tzinfo=dt.UTC).timestamp()}}]}
    meta = chunk_metadata(document_id=doc, page_number=4, page_end=None, chunk_index=2, tags=("x",),
                          uploaded_at=after)
    assert meta == {"document_id": str(doc), "chunk_index": 2, "tags": ["x"], "page": 4, "page_end": 4,
                    "uploaded_at": after.replace(tzinfo=dt.UTC).timestamp()}


def test_settings_name_what_is_missing(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="QUERIO_PINECONE_INDEX"):
        load_settings(data_dir=tmp_path, vector_backend="pinecone")
    with pytest.raises(ConfigurationError, match="QUERIO_PINECONE_API_KEY"):
        load_settings(data_dir=tmp_path, vector_shadow=True, pinecone_index="i")
    monkeypatch.setenv("QUERIO_VECTOR_BACKEND", "pinecone")
    monkeypatch.setenv("QUERIO_PINECONE_INDEX", "idx")
    monkeypatch.setenv("QUERIO_PINECONE_API_KEY_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:1:secret:k")
    monkeypatch.setenv("QUERIO_PINECONE_NAMESPACE_PREFIX", "acme-")
    s = load_settings(data_dir=tmp_path)
    assert (s.vector_backend, s.pinecone_index, s.pinecone_namespace_prefix) == ("pinecone", "idx", "acme-")
    with pytest.raises(ConfigurationError, match="QUERIO_VECTOR_BACKEND"):
        load_settings(data_dir=tmp_path, vector_backend="chroma")


@pytest.mark.parametrize(("secret", "expected"),
                         [("pk-plain-123", "pk-plain-123"), ('{"apiKey": "pk-json"}', "pk-json")])
def test_api_key_from_secrets_manager(secret: str, expected: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    wiring.pinecone_key_from_secret.cache_clear()
    from querio.adapters import aws_clients

    clear = getattr(aws_clients.secretsmanager, "cache_clear", None)
    with mock_aws():
        if clear:
            clear()
        arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name=f"pinecone-{uuid.uuid4().hex[:6]}", SecretString=secret)["ARN"]
        settings = load_settings(data_dir=tmp_path, pinecone_index="i", pinecone_api_key_secret_arn=arn)
        assert wiring.pinecone_api_key(settings) == expected
        with pytest.raises(ConfigurationError, match="QUERIO_PINECONE_API_KEY_SECRET_ARN"):
            wiring.pinecone_key_from_secret(arn + "-missing")
        if clear:
            clear()
    wiring.pinecone_key_from_secret.cache_clear()


# --- the mirror: pgvector keeps the vectors, Pinecone serves ---------------------------------------


@pytest.fixture
def mirror(pg_store: PostgresDocumentStore, pinecone_standin: StandinServer  # noqa: F811
           ) -> Iterator[MirroredVectorStore]:
    yield MirroredVectorStore(PgVectorStore(pg_store), adapter(pinecone_standin), PostgresVectorSource(pg_store),
                              serve="pinecone", shadow=True)


def test_sync_serve_and_purge(mirror: MirroredVectorStore, pg_store: PostgresDocumentStore,
                              pinecone_standin: StandinServer) -> None:  # noqa: F811
    assert isinstance(mirror, IndexSync) and mirror.colocated and mirror.name == "pinecone"
    vecs = unit_vectors(6, seed=3)
    doc = ingest(pg_store, "t1", [f"text {i}" for i in range(6)], embeddings=vecs, tags=["blue"])
    assert mirror.pinecone.namespace_counts() == {}
    mirror.document_stored("t1", doc.id)
    assert mirror.pinecone.namespace_counts() == {"t1": 6}
    mirror.document_stored("t1", doc.id)  # again (a retried sync): still 6, no duplicates
    assert mirror.pinecone.namespace_counts() == {"t1": 6}
    assert not _deletes(pinecone_standin)  # a new document costs no delete-by-metadata (rate-limited)
    # a reprocess writes new chunk rows (new ids): the old records are replaced, not kept
    assert pg_store.reset_for_reprocess("t1", doc.id) and pg_store.try_start_processing("t1", doc.id,
                                                                                          stale_after_s=60)
    pg_store.complete_document("t1", doc.id, chunks=drafts(["new a", "new b"]), embeddings=unit_vectors(2, seed=9),
                               info={})
    mirror.document_stored("t1", doc.id, replaced=True)
    assert mirror.pinecone.namespace_counts() == {"t1": 2} and len(_deletes(pinecone_standin)) == 1
    vecs = unit_vectors(2, seed=9)
    refs = mirror.query("t1", vecs[1], 3, SearchFilters(tags=["blue"]))
    truth = PgVectorStore(pg_store).query("t1", vecs[1], 3, NOFILTER)
    assert [r.chunk_id for r in refs] == [r.chunk_id for r in truth]
    assert mirror.shadow_stats.queries == 1 and mirror.shadow_stats.mean == 1.0
    mirror.document_purged("t1", doc.id)
    assert mirror.pinecone.namespace_counts() == {}


def test_orphans_are_reported_and_repaired(mirror: MirroredVectorStore, pg_store: PostgresDocumentStore) -> None:
    vecs = unit_vectors(8, seed=4)
    keep = ingest(pg_store, "t1", [f"a {i}" for i in range(4)], embeddings=vecs[:4])
    gone = ingest(pg_store, "t1", [f"b {i}" for i in range(4)], embeddings=vecs[4:])
    mirror.document_stored("t1", keep.id)
    mirror.document_stored("t1", gone.id)
    pg_store.purge_document("t1", gone.id)  # chunk rows gone, Pinecone not told: 4 orphans
    before = counters["VectorOrphans"]
    refs = mirror.query("t1", vecs[5], 8, NOFILTER)
    assert len(refs) == 4 and {r.chunk_id for r in refs} <= set(_ids(pg_store, keep.id))
    assert counters["VectorOrphans"] - before == 4
    assert mirror.pinecone.namespace_counts() == {"t1": 4}  # repaired: the orphans were deleted


def test_a_failed_sync_never_fails_the_ingest(pg_store: PostgresDocumentStore, no_backoff: None) -> None:
    with running(StandinIndex(INDEX, 384), api_key=API_KEY) as server:
        url = server.url
    dead = PineconeVectorStore(lambda: pinecone_client(API_KEY, url), index_name=INDEX, host=url)
    mirror = MirroredVectorStore(PgVectorStore(pg_store), dead, PostgresVectorSource(pg_store), serve="pgvector",
                                 shadow=True)
    doc = ingest(pg_store, "t1", ["x"], embeddings=unit_vectors(1))
    before = counters["VectorSyncFailures"]
    mirror.document_stored("t1", doc.id)  # logs and counts, does not raise
    assert counters["VectorSyncFailures"] - before == 1
    # pgvector serves; the shadow query fails quietly
    assert len(mirror.query("t1", unit_vectors(1)[0], 3, NOFILTER)) == 1
    assert mirror.shadow_stats.errors == 1


def _deletes(server: StandinServer) -> list[str]:
    return [p for _, p, _ in server.index.requests if p == "/vectors/delete"]


def _ids(store: PostgresDocumentStore, document_id: uuid.UUID) -> list[uuid.UUID]:
    with store.connection() as conn:
        return [r[0] for r in conn.execute("SELECT id FROM document_chunks WHERE document_id = %s",
                                           (document_id,)).fetchall()]

