"""``VectorStore`` on Pinecone (official ``pinecone`` SDK, REST), one namespace per tenant.

Chunks, their text and document metadata stay in PostgreSQL; Pinecone holds one record per
chunk: ``id`` = the chunk id (a UUID string, so re-upserting the same chunk overwrites it and a
migration re-run creates no duplicates), the 384 float values, and the few metadata fields our
filters need (:func:`chunk_metadata`). Tenancy is the namespace, ``{prefix}{tenant_id}``: a
query can only see its own tenant's records, whatever its filter says.

Limits honoured here (Pinecone "Operation limits", 2026-07 API): an upsert request carries at
most 1,000 vectors and 2 MB, so batches are cut by both count and estimated JSON size (budget
:data:`REQUEST_BUDGET_BYTES`, under 2,000,000 bytes for the envelope and float formatting);
metadata at most 40 KB per vector; ``top_k`` at most 10,000; fetch and delete at most 1,000
ids per request. Deleting a document uses delete-by-metadata (``document_id``).

Errors are translated by exception class, never by message text (:func:`_translate`):
connection problems, timeouts, 429 and 5xx → ``TransientError``; 400/413 and client-side
value errors → ``ValidationFailed``; 401/403 and a missing index → ``ConfigurationError``.

The SDK client is built lazily by a cached factory (:func:`pinecone_client`): importing this
module or constructing the store makes no network call; :meth:`PineconeVectorStore.check_index`
does, and wiring calls it once at start-up.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from querio.errors import ConfigurationError, QuerioError, TransientError, ValidationFailed
from querio.models import ChunkRef, SearchFilters
from querio.ports import Vector

log = logging.getLogger(__name__)

DIMENSION = 384  # all-MiniLM-L6-v2; the pgvector column is vector(384) too
METRIC = "cosine"
MAX_BATCH_VECTORS = 1000  # per upsert request (Pinecone operation limits)
MAX_REQUEST_BYTES = 2_000_000  # "2 MB" per upsert request
#: What one upsert batch may weigh by our estimate (the JSON of its records): the rest of the
#: 2 MB is headroom for the envelope and for the SDK's float formatting differing from ours.
REQUEST_BUDGET_BYTES = 1_800_000
MAX_METADATA_BYTES = 40_000  # "40 KB" per vector
MAX_TOP_K = 10_000
MAX_IDS_PER_REQUEST = 1000  # fetch and delete
LIST_PAGE = 100  # the list endpoint's largest page


@dataclass(frozen=True, slots=True)
class VectorRecord:
    """One chunk's vector as Pinecone stores it: ``values`` shape ``(384,)``, float32."""

    chunk_id: uuid.UUID
    values: Vector
    metadata: dict[str, Any]


def chunk_metadata(*, document_id: uuid.UUID, page_number: int | None, page_end: int | None, chunk_index: int,
                   tags: Sequence[str], uploaded_at: dt.datetime) -> dict[str, Any]:
    """The metadata a record carries: exactly what :func:`pinecone_filter` filters on.

    ``page``/``page_end`` are 1-based pages (``page_end`` falls back to ``page``, as
    ``COALESCE(page_end, page_number)`` does in SQL); ``uploaded_at`` is Unix seconds (Pinecone
    compares numbers only); ``tags`` a list of strings (matched with ANY semantics). Null values
    are left out (Pinecone rejects them).
    """
    meta: dict[str, Any] = {"document_id": str(document_id), "chunk_index": int(chunk_index),
                            "tags": [str(t) for t in tags],
                            "uploaded_at": _epoch(uploaded_at)}
    if page_number is not None:
        meta["page"] = int(page_number)
        meta["page_end"] = int(page_end if page_end is not None else page_number)
    return meta


def pinecone_filter(filters: SearchFilters) -> dict[str, Any] | None:
    """Our ``SearchFilters`` as a Pinecone metadata filter, or ``None`` for no filter.

    Same semantics as ``search_filter_sql`` (the PostgreSQL half): ``document_ids`` and ``tags``
    match ANY listed value (an empty list is no filter); pages keep chunks overlapping
    ``[page_from, page_to]``; ``uploaded_after`` inclusive, ``uploaded_before`` exclusive,
    naive datetimes taken as UTC.
    """
    clauses: list[dict[str, Any]] = []
    if filters.document_ids:
        clauses.append({"document_id": {"$in": [str(d) for d in filters.document_ids]}})
    if filters.tags:
        clauses.append({"tags": {"$in": [str(t) for t in filters.tags]}})
    if filters.page_from is not None:
        clauses.append({"page_end": {"$gte": filters.page_from}})
    if filters.page_to is not None:
        clauses.append({"page": {"$lte": filters.page_to}})
    if filters.uploaded_after is not None:
        clauses.append({"uploaded_at": {"$gte": _epoch(filters.uploaded_after)}})
    if filters.uploaded_before is not None:
        clauses.append({"uploaded_at": {"$lt": _epoch(filters.uploaded_before)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _epoch(t: dt.datetime) -> float:
    return (t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t).timestamp()


@lru_cache(maxsize=4)
def pinecone_client(api_key: str, host: str | None = None) -> Any:
    """The process-wide SDK client for ``(api_key, control-plane host)``; built on first use.

    ``host`` is only for a gateway or the local stand-in; ``None`` is Pinecone's public API.
    """
    from pinecone import Pinecone

    return Pinecone(api_key=api_key, host=host) if host else Pinecone(api_key=api_key)


@contextmanager
def _translate(action: str) -> Iterator[None]:
    """Map SDK exceptions to domain errors by class (see the module docstring)."""
    from pinecone.errors import exceptions as pe

    try:
        yield
    except QuerioError:
        raise
    except (pe.UnauthorizedError, pe.ForbiddenError) as exc:
        raise ConfigurationError(f"Pinecone refused the API key while trying to {action} (QUERIO_PINECONE_API_KEY"
                                 f" / QUERIO_PINECONE_API_KEY_SECRET_ARN): {exc}") from exc
    except pe.NotFoundError as exc:
        raise ConfigurationError(f"Pinecone index not found while trying to {action} (QUERIO_PINECONE_INDEX):"
                                 f" {exc}") from exc
    except (pe.RateLimitError, pe.ServiceError, pe.PineconeConnectionError, pe.PineconeTimeoutError) as exc:
        raise TransientError(f"Pinecone unavailable while trying to {action}: {exc}") from exc
    except pe.PayloadTooLargeError as exc:
        raise ValidationFailed(f"Pinecone rejected the request size while trying to {action}: {exc}") from exc
    except pe.ApiError as exc:
        if exc.status_code >= 500 or exc.status_code in (408, 429):
            raise TransientError(f"Pinecone unavailable while trying to {action}: {exc}") from exc
        raise ValidationFailed(f"Pinecone rejected the request to {action}: {exc}") from exc
    except (pe.PineconeValueError, pe.PineconeTypeError) as exc:
        raise ValidationFailed(f"invalid request to {action}: {exc}") from exc
    except pe.PineconeError as exc:  # response parsing and the rest: the service misbehaved
        raise TransientError(f"Pinecone error while trying to {action}: {exc}") from exc


class PineconeVectorStore:
    """Nearest chunks by cosine similarity in the tenant's Pinecone namespace.

    ``client_factory`` returns the SDK client (:func:`pinecone_client`); ``index_name`` is
    ``QUERIO_PINECONE_INDEX``; ``host`` (``QUERIO_PINECONE_HOST``), when set, is the data-plane
    host too (no describe round trip; used for the local stand-in). Vectors are not co-located
    with the chunk rows (``colocated = False``).
    """

    name = "pinecone"
    colocated = False

    def __init__(self, client_factory: Callable[[], Any], *, index_name: str, host: str | None = None,
                 namespace_prefix: str = "tenant-", dimension: int = DIMENSION, metric: str = METRIC) -> None:
        self._client_factory = client_factory
        self.index_name = index_name
        self.host = host
        self.namespace_prefix = namespace_prefix
        self.dimension = dimension
        self.metric = metric
        self._index: Any = None
        self._lock = threading.Lock()

    # plumbing ---------------------------------------------------------------------------------------
    def namespace(self, tenant_id: str) -> str:
        return f"{self.namespace_prefix}{tenant_id}"

    def tenant_of(self, namespace: str) -> str | None:
        """The tenant whose namespace this is, ``None`` for namespaces not ours."""
        if not namespace.startswith(self.namespace_prefix):
            return None
        return namespace[len(self.namespace_prefix):] or None

    def _data(self) -> Any:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    with _translate("open the index"):
                        client = self._client_factory()
                        self._index = (client.index(host=self.host) if self.host
                                       else client.index(name=self.index_name))
        return self._index

    def check_index(self) -> None:
        """Describe the index; ``ConfigurationError`` unless it exists, is ready, and has one
        dense vector field of ``dimension`` (384) with metric ``metric`` (cosine)."""
        from pinecone.models.indexes.schema import DenseVectorField

        with _translate(f"describe index {self.index_name!r}"):
            model = self._client_factory().indexes.describe(self.index_name)
        dense = [f for f in model.schema.fields.values() if isinstance(f, DenseVectorField)]
        if len(dense) != 1:
            raise ConfigurationError(f"Pinecone index {self.index_name!r} (QUERIO_PINECONE_INDEX) has no single"
                                     " dense vector field; create it with dimension 384 and metric cosine")
        field = dense[0]
        if field.dimension != self.dimension or str(field.metric).lower() != self.metric:
            raise ConfigurationError(
                f"Pinecone index {self.index_name!r} (QUERIO_PINECONE_INDEX) is {field.dimension}-dimensional"
                f" {field.metric}; Querio's embeddings need {self.dimension}-dimensional {self.metric}",
                details={"index_dimension": field.dimension, "index_metric": field.metric,
                         "expected_dimension": self.dimension, "expected_metric": self.metric})
        if not model.status.ready:
            raise ConfigurationError(f"Pinecone index {self.index_name!r} is not ready ({model.status.state})")

    # writes ----------------------------------------------------------------------------------------------
    def upsert(self, tenant_id: str, document_id: uuid.UUID, chunk_ids: Sequence[uuid.UUID],
               embeddings: Vector, metadata: Sequence[dict[str, Any]]) -> None:
        """Upsert one document's chunk vectors (``embeddings`` shape ``(len(chunk_ids), 384)``).

        ``metadata[i]`` is record i's metadata (see :func:`chunk_metadata`); ``document_id`` is
        added to it. Raises ``ValidationFailed`` for a wrong shape, non-finite or all-zero rows,
        or metadata over 40 KB (nothing is sent).
        """
        if embeddings.ndim != 2 or embeddings.shape[0] != len(chunk_ids) or len(metadata) != len(chunk_ids):
            raise ValidationFailed(f"embeddings shape {embeddings.shape} and {len(metadata)} metadata entries do"
                                   f" not match {len(chunk_ids)} ids")
        records = [VectorRecord(cid, embeddings[i], {**metadata[i], "document_id": str(document_id)})
                   for i, cid in enumerate(chunk_ids)]
        self.upsert_records(tenant_id, records)

    def upsert_records(self, tenant_id: str, records: Sequence[VectorRecord]) -> int:
        """Upsert records of any documents into the tenant's namespace; returns the number of
        requests sent. Batches hold at most 1,000 records and ~1.8 MB of JSON each."""
        payload = [self._record(r) for r in records]
        if not payload:
            return 0
        ns = self.namespace(tenant_id)
        index = self._data()
        requests = 0
        for batch in _batches(payload):
            with _translate(f"upsert {len(batch)} vectors"):
                index.upsert(vectors=batch, namespace=ns)
            requests += 1
        return requests

    def _record(self, r: VectorRecord) -> dict[str, Any]:
        values = np.asarray(r.values, dtype=np.float32)
        if values.shape != (self.dimension,):
            raise ValidationFailed(f"vector of {r.chunk_id} has shape {values.shape}, expected ({self.dimension},)")
        if not np.isfinite(values).all():
            raise ValidationFailed(f"vector of {r.chunk_id} has NaN or infinite values")
        if not values.any():
            raise ValidationFailed(f"vector of {r.chunk_id} is all zeros (Pinecone needs a non-zero value)")
        meta = {k: v for k, v in r.metadata.items() if v is not None}
        size = len(json.dumps(meta, separators=(",", ":")).encode())
        if size > MAX_METADATA_BYTES:
            raise ValidationFailed(f"metadata of {r.chunk_id} is {size:,} bytes; Pinecone allows"
                                   f" {MAX_METADATA_BYTES:,} per vector")
        return {"id": str(r.chunk_id), "values": values.tolist(), "metadata": meta}

    def delete_document(self, tenant_id: str, document_id: uuid.UUID) -> None:
        """Delete every record of the document (delete by metadata); deleting nothing is fine."""
        from pinecone.errors.exceptions import NotFoundError

        index = self._data()
        with _translate(f"delete the vectors of {document_id}"):
            try:
                index.delete(filter={"document_id": {"$eq": str(document_id)}}, namespace=self.namespace(tenant_id))
            except NotFoundError:
                return  # the namespace does not exist: nothing to delete

    def delete_ids(self, tenant_id: str, chunk_ids: Sequence[str | uuid.UUID]) -> int:
        """Delete records by id (at most 1,000 per request); returns how many ids were sent."""
        from pinecone.errors.exceptions import NotFoundError

        ids = [str(i) for i in chunk_ids]
        index = self._data()
        for start in range(0, len(ids), MAX_IDS_PER_REQUEST):
            with _translate("delete vectors by id"):
                try:
                    index.delete(ids=ids[start:start + MAX_IDS_PER_REQUEST], namespace=self.namespace(tenant_id))
                except NotFoundError:
                    return 0
        return len(ids)

    # reads --------------------------------------------------------------------------------------------
    def query(self, tenant_id: str, vector: Vector, k: int, filters: SearchFilters) -> list[ChunkRef]:
        """Up to ``k`` (capped at 10,000) records nearest to ``vector`` (shape ``(384,)``), best first.

        ``score`` is Pinecone's cosine similarity, in [-1, 1]. Records whose id is not a UUID
        (not written by Querio) are skipped. ``ValidationFailed`` for a bad vector.
        """
        q = np.asarray(vector, dtype=np.float32)
        if q.shape != (self.dimension,):
            raise ValidationFailed(f"query vector has shape {q.shape}, expected ({self.dimension},)")
        if not np.isfinite(q).all():
            raise ValidationFailed("query vector has NaN or infinite values")
        if k <= 0:
            return []
        if not q.any():
            return []  # cosine similarity to the zero vector is undefined: nothing is near it
        kwargs: dict[str, Any] = {"top_k": min(k, MAX_TOP_K), "vector": q.tolist(),
                                  "namespace": self.namespace(tenant_id)}
        flt = pinecone_filter(filters)
        if flt is not None:
            kwargs["filter"] = flt
        with _translate("query"):
            response = self._data().query(**kwargs)
        refs = []
        for match in response.matches:
            try:
                refs.append(ChunkRef(chunk_id=uuid.UUID(match.id), score=float(match.score)))
            except ValueError:
                log.warning("skipping Pinecone record %r in %s: its id is not a chunk id", match.id,
                            self.namespace(tenant_id))
        return refs

    def list_ids(self, tenant_id: str) -> Iterator[list[str]]:
        """Every record id in the tenant's namespace, a page (≤ 100) at a time."""
        index = self._data()
        token: str | None = None
        while True:
            with _translate("list vector ids"):
                page = index.list_paginated(namespace=self.namespace(tenant_id), limit=LIST_PAGE,
                                            pagination_token=token)
            ids = [item.id for item in page.vectors if item.id]
            if ids:
                yield ids
            token = page.pagination.next if page.pagination is not None else None
            if not token:
                return

    def fetch_values(self, tenant_id: str, chunk_ids: Sequence[str | uuid.UUID]) -> dict[str, list[float]]:
        """Stored values by id (absent ids are left out); at most 1,000 ids per request."""
        ids = [str(i) for i in chunk_ids]
        out: dict[str, list[float]] = {}
        for start in range(0, len(ids), MAX_IDS_PER_REQUEST):
            with _translate("fetch vectors"):
                response = self._data().fetch(ids=ids[start:start + MAX_IDS_PER_REQUEST],
                                              namespace=self.namespace(tenant_id))
            out.update({vid: list(v.values) for vid, v in response.vectors.items()})
        return out

    def namespace_counts(self) -> dict[str, int]:
        """Records per tenant (our namespaces only), from ``describe_index_stats``. The counts
        lag writes by seconds on real Pinecone (eventual consistency)."""
        with _translate("describe index stats"):
            stats = self._data().describe_index_stats()
        out = {}
        for ns, summary in stats.namespaces.items():
            tenant = self.tenant_of(ns)
            if tenant is not None:
                out[tenant] = int(summary.vector_count)
        return out


def _batches(payload: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Greedy batches of at most ``MAX_BATCH_VECTORS`` records and ``REQUEST_BUDGET_BYTES``
    of estimated JSON (one 384-float record is ~7.5 KB, so ~240 records per request)."""
    batch: list[dict[str, Any]] = []
    size = 0
    for rec in payload:
        rec_size = len(json.dumps(rec, separators=(",", ":")).encode()) + 1
        if batch and (len(batch) >= MAX_BATCH_VECTORS or size + rec_size > REQUEST_BUDGET_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(rec)
        size += rec_size
    if batch:
        yield batch
