"""The one place that picks an adapter for each port, from the settings.

Clients are built by cached factories on first use, never at import time, so importing a
handler is cheap and tests can build a service against any settings they like.
"""

from __future__ import annotations

import threading
from functools import lru_cache

from querio.config import Settings, get_settings
from querio.ports import BlobStore, Cache, Embedder
from querio.service import QuerioService

_lock = threading.Lock()


def build_blob_store(settings: Settings) -> BlobStore:
    if settings.blob_backend == "filesystem":
        from querio.adapters.fs_blobs import FilesystemBlobStore

        return FilesystemBlobStore(settings.blob_dir)
    raise NotImplementedError("the S3 blob store arrives with the serverless runtime")


def build_cache(settings: Settings) -> Cache:
    if settings.redis_url:
        from querio.adapters.redis_cache import RedisCache

        return RedisCache(settings.redis_url)
    from querio.adapters.memory_cache import MemoryCache

    return MemoryCache()


def database_url(settings: Settings) -> str:
    """The configured DSN, or the embedded server's (started on first call)."""
    if settings.database_url:
        return settings.database_url
    from querio.adapters.postgres.embedded import start_embedded

    return start_embedded(settings.pg_dir)


def build_service(settings: Settings) -> QuerioService:
    """Build a service with fresh adapters for ``settings`` (migrations applied first)."""
    from querio.adapters.postgres.migrate import migrate
    from querio.adapters.postgres.store import PostgresDocumentStore
    from querio.adapters.postgres.vectors import PgVectorStore
    from querio.embedding import get_embedder
    from querio.retrieval.answer import ExtractiveAnswerer

    dsn = database_url(settings)
    migrate(dsn)
    documents = PostgresDocumentStore(dsn)
    vectors = PgVectorStore(documents, ef_search=settings.hnsw_ef_search,
                            exact_scan_max_rows=settings.exact_scan_max_rows)

    def embedder() -> Embedder:
        return get_embedder(settings.embed_batch_size)

    return QuerioService(settings=settings, documents=documents, vectors=vectors,
                         blobs=build_blob_store(settings), cache=build_cache(settings), embedder=embedder,
                         answerer=lambda e: ExtractiveAnswerer(e))


@lru_cache(maxsize=1)
def get_service() -> QuerioService:
    """The process-wide service (Lambda container, CLI process, local server)."""
    with _lock:
        return build_service(get_settings())
