"""The one place that picks an adapter for each port, from the settings.

Clients are built by cached factories on first use, never at import time, so importing a
handler is cheap and tests can build a service against any settings they like.
"""

from __future__ import annotations

import json
import threading
from functools import lru_cache
from typing import TYPE_CHECKING

from querio.config import Settings, get_settings
from querio.errors import ConfigurationError, NotFound
from querio.ports import AnswerGenerator, BlobStore, Cache, DownloadUrls, Embedder, FullTextSearch, VectorStore
from querio.service import QuerioService

if TYPE_CHECKING:
    from querio.adapters.opensearch import OpenSearchFullText
    from querio.adapters.pinecone_vectors import PineconeVectorStore
    from querio.adapters.postgres.store import PostgresDocumentStore
    from querio.adapters.postgres.vector_source import PostgresMigrationCheckpoints, PostgresVectorSource
    from querio.adapters.postgres.vectors import PgVectorStore

_lock = threading.Lock()


def build_blob_store(settings: Settings) -> BlobStore:
    if settings.blob_backend == "filesystem":
        from querio.adapters.fs_blobs import FilesystemBlobStore

        return FilesystemBlobStore(settings.blob_dir)
    if not settings.s3_bucket:
        raise ConfigurationError("QUERIO_S3_BUCKET is required when QUERIO_BLOB_BACKEND=s3")
    from querio.adapters import aws_clients
    from querio.adapters.s3_blobs import S3BlobStore

    return S3BlobStore(settings.s3_bucket, aws_clients.s3)


def build_download_urls(settings: Settings, blobs: BlobStore) -> DownloadUrls:
    """S3 presigned GETs, or (``QUERIO_DOWNLOAD_URLS=cloudfront``) CloudFront signed URLs whose
    private key is read from Secrets Manager on the first link."""
    from querio.adapters.download_urls import CloudFrontSignedUrls, PresignedS3Urls

    if settings.download_urls == "s3":
        return PresignedS3Urls(blobs)
    secret_arn = settings.cloudfront_private_key_secret_arn
    if not (secret_arn and settings.cloudfront_domain and settings.cloudfront_key_pair_id):
        raise ConfigurationError("QUERIO_DOWNLOAD_URLS=cloudfront needs QUERIO_CLOUDFRONT_DOMAIN, "
                                 "QUERIO_CLOUDFRONT_KEY_PAIR_ID and QUERIO_CLOUDFRONT_PRIVATE_KEY_SECRET_ARN")
    return CloudFrontSignedUrls(settings.cloudfront_domain, settings.cloudfront_key_pair_id,
                                lambda: cloudfront_private_key(secret_arn))


@lru_cache(maxsize=4)
def cloudfront_private_key(secret_arn: str) -> str:
    """The URL-signing key (PEM, the secret's whole SecretString), read once per process."""
    pem = read_secret(secret_arn, "QUERIO_CLOUDFRONT_PRIVATE_KEY_SECRET_ARN").strip()
    if "PRIVATE KEY-----" not in pem:
        raise ConfigurationError("QUERIO_CLOUDFRONT_PRIVATE_KEY_SECRET_ARN: the secret holds no PEM private key "
                                 "(the deploy's key-pair custom resource writes it)")
    return pem


def build_cache(settings: Settings) -> Cache:
    if settings.redis_url:
        from querio.adapters.redis_cache import RedisCache

        password = redis_auth_token(settings.redis_auth_secret_arn) if settings.redis_auth_secret_arn else None
        return RedisCache(settings.redis_url, password=password, cluster=settings.redis_cluster)
    from querio.adapters.memory_cache import MemoryCache

    return MemoryCache()


def database_url(settings: Settings) -> str:
    """The configured DSN; else the RDS secret's (``QUERIO_DATABASE_SECRET_ARN``); else the
    embedded server's (started on first call)."""
    if settings.database_url:
        return settings.database_url
    if settings.database_secret_arn:
        return dsn_from_secret(settings.database_secret_arn)
    from querio.adapters.postgres.embedded import start_embedded

    return start_embedded(settings.pg_dir)


def read_secret(secret_arn: str, setting: str) -> str:
    """A Secrets Manager secret's ``SecretString``. A missing or unreadable secret is a
    ``ConfigurationError`` naming ``setting``; throttling or an outage stays transient."""
    from querio.adapters import aws_clients
    from querio.adapters.s3_blobs import classify_error

    try:
        raw = aws_clients.secretsmanager().get_secret_value(SecretId=secret_arn)["SecretString"]
    except Exception as exc:
        mapped = classify_error(exc, setting)
        if mapped is None or isinstance(mapped, NotFound):
            raise ConfigurationError(f"{setting}: cannot read the secret ({exc})") from exc
        raise mapped from exc
    return str(raw)


@lru_cache(maxsize=8)
def dsn_from_secret(secret_arn: str) -> str:
    """A libpq DSN from an RDS-style Secrets Manager secret (``host``, ``port``, ``username``,
    ``password``, ``dbname``), with ``sslmode=require``. Read once per process (cold start);
    a rotated password is picked up by the next container. Errors name the setting."""
    from querio.adapters.postgres import conninfo

    raw = read_secret(secret_arn, "QUERIO_DATABASE_SECRET_ARN")
    try:
        secret = json.loads(raw)
        return conninfo(host=secret["host"], port=str(secret.get("port", 5432)), user=secret["username"],
                        password=secret["password"], dbname=secret.get("dbname") or "postgres",
                        sslmode="require", connect_timeout="10")
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            "QUERIO_DATABASE_SECRET_ARN: the secret must be JSON with host, port, username, password"
            f" and dbname ({type(exc).__name__}: {exc})") from exc


def build_vector_store(settings: Settings, documents: PostgresDocumentStore) -> VectorStore:
    """pgvector alone; or, with ``QUERIO_VECTOR_BACKEND=pinecone`` or ``QUERIO_VECTOR_SHADOW``, the
    mirror of pgvector and Pinecone (querio.vectors.mirror), whose index is checked here, at
    start-up: a missing index or a dimension/metric mismatch raises ``ConfigurationError``."""
    from querio.adapters.postgres.vectors import PgVectorStore

    pgvector = PgVectorStore(documents, ef_search=settings.hnsw_ef_search,
                             exact_scan_max_rows=settings.exact_scan_max_rows,
                             tenant_index_min_rows=settings.tenant_index_min_rows)
    if not settings.uses_pinecone:
        return pgvector
    from querio.vectors.mirror import MirroredVectorStore

    pinecone = build_pinecone_store(settings)
    pinecone.check_index()
    return MirroredVectorStore(pgvector, pinecone, build_vector_source(pgvector), serve=settings.vector_backend,
                               shadow=settings.vector_shadow, shadow_sample_rate=settings.vector_shadow_sample_rate)


def build_vector_source(pgvector: PgVectorStore) -> PostgresVectorSource:
    """The pgvector columns as a ``VectorSource`` (``querio vectors``, the Pinecone mirror), on
    the document store's pool."""
    from querio.adapters.postgres.vector_source import PostgresVectorSource

    return PostgresVectorSource(pgvector.store)


def build_migration_checkpoints(pgvector: PgVectorStore) -> PostgresMigrationCheckpoints:
    """The cursor of ``querio vectors migrate`` (``vector_migrations``), on the same pool."""
    from querio.adapters.postgres.vector_source import PostgresMigrationCheckpoints

    return PostgresMigrationCheckpoints(pgvector.store)


def build_pinecone_store(settings: Settings) -> PineconeVectorStore:
    """The Pinecone adapter for ``settings`` (no network call until first use)."""
    from querio.adapters.pinecone_vectors import PineconeVectorStore, pinecone_client

    if not settings.pinecone_index:
        raise ConfigurationError("QUERIO_PINECONE_INDEX is required for the Pinecone vector store")
    api_key = pinecone_api_key(settings)
    host = settings.pinecone_host
    return PineconeVectorStore(lambda: pinecone_client(api_key, host), index_name=settings.pinecone_index,
                               host=host, namespace_prefix=settings.pinecone_namespace_prefix)


def pinecone_api_key(settings: Settings) -> str:
    """``QUERIO_PINECONE_API_KEY``, else the secret named by ``QUERIO_PINECONE_API_KEY_SECRET_ARN``."""
    if settings.pinecone_api_key is not None:
        return settings.pinecone_api_key.get_secret_value()
    if settings.pinecone_api_key_secret_arn:
        return pinecone_key_from_secret(settings.pinecone_api_key_secret_arn)
    raise ConfigurationError("QUERIO_PINECONE_API_KEY or QUERIO_PINECONE_API_KEY_SECRET_ARN is required for the"
                             " Pinecone vector store")


@lru_cache(maxsize=8)
def pinecone_key_from_secret(secret_arn: str) -> str:
    """The Pinecone API key from Secrets Manager: the SecretString itself, or JSON ``{"apiKey": ...}``.
    Read once per process (cold start). Errors name the setting."""
    text = read_secret(secret_arn, "QUERIO_PINECONE_API_KEY_SECRET_ARN").strip()
    if text.startswith("{"):
        try:
            text = str(json.loads(text)["apiKey"]).strip()
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError('QUERIO_PINECONE_API_KEY_SECRET_ARN: a JSON secret must be {"apiKey": "..."}'
                                     f" ({type(exc).__name__}: {exc})") from exc
    if not text:
        raise ConfigurationError("QUERIO_PINECONE_API_KEY_SECRET_ARN: the secret is empty")
    return text


def build_fulltext(settings: Settings, documents: PostgresDocumentStore) -> FullTextSearch:
    """PostgreSQL BM25; or, once ``QUERIO_OPENSEARCH_URL`` is set, OpenSearch kept in step after
    each commit (querio.fulltext.sync), serving the leg when ``QUERIO_FULLTEXT_BACKEND=opensearch``
    and only written to (the cut-over's dual-write phase) while it is ``postgres``."""
    from querio.adapters.postgres.fulltext import PostgresChunkSource, PostgresFullText

    if not settings.opensearch_url:
        return PostgresFullText(documents, text_depth=settings.text_depth, budget=settings.text_budget)
    from querio.fulltext.sync import SyncedFullText

    # while the backend is still postgres, PostgreSQL answers and OpenSearch is only written to
    answer = None if settings.fulltext_backend == "opensearch" else \
        PostgresFullText(documents, text_depth=settings.text_depth, budget=settings.text_budget)
    return SyncedFullText(build_opensearch(settings), PostgresChunkSource(documents), answer=answer)


def build_opensearch(settings: Settings) -> OpenSearchFullText:
    """The OpenSearch adapter for ``settings`` (no network call until first use)."""
    from querio.adapters.opensearch import OpenSearchFullText, opensearch_client

    url = settings.opensearch_url
    if not url:
        raise ConfigurationError("QUERIO_OPENSEARCH_URL is required for the OpenSearch full-text index")
    return OpenSearchFullText(lambda: opensearch_client(url), index_prefix=settings.opensearch_index_prefix)


@lru_cache(maxsize=4)
def redis_auth_token(secret_arn: str) -> str:
    """The ElastiCache AUTH token (the secret's whole SecretString), read once per process."""
    token = read_secret(secret_arn, "QUERIO_REDIS_AUTH_SECRET_ARN").strip()
    if not token:
        raise ConfigurationError("QUERIO_REDIS_AUTH_SECRET_ARN: the secret is empty")
    return token


def build_answerer(settings: Settings, extractive: AnswerGenerator) -> AnswerGenerator:
    """Bedrock (Converse API) when ``QUERIO_BEDROCK_MODEL_ID`` is set, else the extractive answerer,
    which also serves as Bedrock's fallback on errors."""
    if not settings.bedrock_model_id:
        return extractive
    from querio.adapters import aws_clients
    from querio.retrieval.bedrock import BedrockAnswerer

    return BedrockAnswerer(aws_clients.bedrock_runtime, settings.bedrock_model_id, fallback=extractive)


def build_service(settings: Settings) -> QuerioService:
    """Build a service with fresh adapters for ``settings`` (migrations applied first)."""
    from querio.adapters.postgres.migrate import migrate
    from querio.adapters.postgres.search import PostgresChunkSearch
    from querio.adapters.postgres.store import PostgresDocumentStore
    from querio.adapters.postgres.vectors import PgVectorStore
    from querio.embedding import get_embedder
    from querio.retrieval.answer import ExtractiveAnswerer

    dsn = database_url(settings)
    migrate(dsn)
    # one pool behind every storage port (several of their writes share a transaction)
    documents = PostgresDocumentStore(dsn)
    vectors = build_vector_store(settings, documents)
    pgvector = vectors if isinstance(vectors, PgVectorStore) else getattr(vectors, "pgvector", None)
    fulltext = build_fulltext(settings, documents)
    # one statement per hybrid search when PostgreSQL serves both legs; else the domain fuses
    search = PostgresChunkSearch(vectors, text_depth=settings.text_depth,
                                 budget=settings.text_budget) \
        if isinstance(vectors, PgVectorStore) and settings.fulltext_backend == "postgres" else None

    def embedder() -> Embedder:
        return get_embedder(settings.embed_batch_size, settings.embedder, settings.model_dir,
                            settings.model_precision)

    blobs = build_blob_store(settings)
    return QuerioService(settings=settings, documents=documents, chats=documents, query_log=documents,
                         s3_objects=documents, sweeps=documents, parts=documents, variants=documents, vectors=vectors,
                         blobs=blobs, cache=build_cache(settings), embedder=embedder,
                         answerer=lambda e: build_answerer(settings, ExtractiveAnswerer(e)),
                         urls=build_download_urls(settings, blobs), search=search,
                         indexes=pgvector if isinstance(pgvector, PgVectorStore) else None, fulltext=fulltext)


@lru_cache(maxsize=1)
def get_service() -> QuerioService:
    """The process-wide service (Lambda container, CLI process, local server)."""
    with _lock:
        return build_service(get_settings())
