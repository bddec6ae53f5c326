"""Full text on Amazon OpenSearch Service (issue 15; the seed's Elasticsearch cluster), opensearch-py.

What the index holds. One document per chunk, ``_id`` = the chunk id (so a re-sent chunk
overwrites itself: every write is idempotent), with the chunk's text and exactly the fields
the search filters need (:func:`chunk_source`). PostgreSQL stays the system of record: the
index is written after each commit and can be rebuilt from PostgreSQL at any time
(``querio fulltext backfill``); chunk text is indexed but left out of ``_source``, since
search results are read back from PostgreSQL anyway.

Tenancy: ONE shared index, routing by tenant, and a ``term`` filter on ``tenant_id`` in every
query, count and delete. Why not an index per tenant: every index costs at least one primary
shard plus replicas, and a domain has a shard budget (about 1,000 shards per data node, and
heap per shard); with thousands of tenants, most of them small, per-tenant indexes exhaust the
budget long before the data does, and a tiny shard per tenant wastes heap on segment overhead.
Routing puts all of a tenant's chunks on one shard, so a search touches one shard instead of
all of them; the filter is what isolates (routing only picks shards, and a shard holds many
tenants). The routing value is a digest of the tenant id (:func:`routing_key`), not the id:
``_search?routing=a,b`` would read a comma as two routing values. ``_routing`` is required by
the mapping, so a write without it is refused by OpenSearch itself. The cost of sharing: BM25's
document frequencies and average length are per shard, so a tenant's scores also count other
tenants' chunks on its shard (PostgreSQL's leg uses per-tenant statistics); ``querio fulltext
verify`` measures how far the rankings agree (top-10 overlap on the eval questions).

Analysis: the built-in ``english`` analyzer (standard tokenizer, lowercase, English stop words,
possessive and Porter stemming: the counterpart of PostgreSQL's ``english`` configuration), on
text normalized by :func:`querio.text.normalize_chars` before indexing and queries normalized
by :func:`querio.text.normalize_line` before searching: the normalization documents and
queries get everywhere else. Scoring: BM25 (OpenSearch's default) with ``k1``/``b`` set to
ours (``BM25_K1``/``BM25_B`` of the PostgreSQL leg) in the index's ``similarity`` settings.
Ties break on chunk id, as in SQL.

The index is ``{prefix}-v{SCHEMA_VERSION}``: a mapping change bumps the version, so a new index
is backfilled beside the old one (which stays readable until the cut-over).

Errors by exception class (:func:`_translate`): connection problems, timeouts, 429 and 5xx →
``TransientError``; 401/403 and a missing index → ``ConfigurationError``; other 4xx →
``ValidationFailed``. A bulk response with ``errors: true`` raises ``TransientError`` naming the
first failed item (the document stays ``indexing`` and is retried).

Authentication (:func:`opensearch_client`): an Amazon OpenSearch Service endpoint is signed
with SigV4 (service ``es``) from the function's role credentials (boto3's chain); a URL with
``user:password@`` uses HTTP basic auth (a self-managed test cluster); otherwise none (a local
container). No network call happens until the first request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

from querio.adapters.postgres.store import BM25_B, BM25_K1
from querio.errors import ConfigurationError, QuerioError, TransientError, ValidationFailed
from querio.models import ChunkRef, SearchFilters
from querio.ports import IndexedChunk
from querio.text import normalize_chars, normalize_line

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SIMILARITY = "querio_bm25"
#: Primary shards and replicas of a new index. ~50 GB per 10^8 chunks of text keeps each of 6
#: shards within AWS's 10-50 GB guidance; one replica survives the loss of a node (zone awareness).
DEFAULT_SHARDS = 6
DEFAULT_REPLICAS = 1
#: a bulk request: at most this many actions and about this many bytes (AWS: 5-15 MB per request)
BULK_MAX_ACTIONS = 1000
BULK_MAX_BYTES = 5_000_000
MAX_RESULT_WINDOW = 10_000  # index.max_result_window default: size beyond it is refused
LIST_PAGE = 1000
TERMS_AGG_SIZE = 10_000  # tenants per count request (verify)
_AWS_HOST = re.compile(r"\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.(?:es|aoss)\.amazonaws\.com(?:\.cn)?$")


def routing_key(tenant_id: str) -> str:
    """The routing value of a tenant: 16 hex digits of SHA-256, never the id itself (a comma in a
    ``_search`` routing parameter would split it; the digest has none, and a bounded length)."""
    return hashlib.sha256(tenant_id.encode()).hexdigest()[:16]


def index_name(prefix: str) -> str:
    return f"{prefix}-v{SCHEMA_VERSION}"


def index_body(*, shards: int = DEFAULT_SHARDS, replicas: int = DEFAULT_REPLICAS) -> dict[str, Any]:
    """The ``PUT /{index}`` body: settings (shards, the BM25 similarity) and the strict mapping."""
    return {
        "settings": {"index": {
            "number_of_shards": shards,
            "number_of_replicas": replicas,
            "similarity": {SIMILARITY: {"type": "BM25", "k1": BM25_K1, "b": BM25_B}},
        }},
        "mappings": {
            "dynamic": "strict",  # a field we do not know is a bug: refuse it
            "_routing": {"required": True},
            "_source": {"excludes": ["content"]},  # the text lives in PostgreSQL
            "properties": {
                "tenant_id": {"type": "keyword"},
                "document_id": {"type": "keyword"},
                "chunk_id": {"type": "keyword"},
                "chunk_index": {"type": "integer"},
                "page": {"type": "integer"},
                "page_end": {"type": "integer"},
                "tags": {"type": "keyword"},
                # microseconds since the epoch: PostgreSQL's precision, compared exactly
                "uploaded_at_us": {"type": "long"},
                "content": {"type": "text", "analyzer": "english", "similarity": SIMILARITY},
            },
        },
    }


def epoch_us(t: dt.datetime) -> int:
    """Microseconds since the epoch; naive datetimes are taken as UTC (as in SQL)."""
    t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t
    delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def chunk_source(chunk: IndexedChunk) -> dict[str, Any]:
    """The indexed document of one chunk (normalized text, the filter fields)."""
    return {"tenant_id": chunk.tenant_id, "document_id": str(chunk.document_id), "chunk_id": str(chunk.chunk_id),
            "chunk_index": chunk.chunk_index, "page": chunk.page_number, "page_end": chunk.page_end,
            "tags": list(chunk.tags), "uploaded_at_us": epoch_us(chunk.uploaded_at),
            "content": normalize_chars(chunk.content)}


def filter_clauses(filters: SearchFilters) -> list[dict[str, Any]]:
    """Our ``SearchFilters`` as query-DSL ``filter`` clauses, with the meaning of
    ``search_filter_sql`` (the PostgreSQL half): ``document_ids`` and ``tags`` match ANY listed
    value (an empty list is no filter); pages keep chunks overlapping ``[page_from, page_to]``
    (``page_end >= page_from`` and ``page <= page_to``); ``uploaded_after`` is inclusive,
    ``uploaded_before`` exclusive, naive datetimes UTC. Clauses combine with AND."""
    out: list[dict[str, Any]] = []
    if filters.document_ids:
        out.append({"terms": {"document_id": [str(d) for d in filters.document_ids]}})
    if filters.tags:
        out.append({"terms": {"tags": [str(t) for t in filters.tags]}})
    if filters.page_from is not None:
        out.append({"range": {"page_end": {"gte": filters.page_from}}})
    if filters.page_to is not None:
        out.append({"range": {"page": {"lte": filters.page_to}}})
    if filters.uploaded_after is not None:
        out.append({"range": {"uploaded_at_us": {"gte": epoch_us(filters.uploaded_after)}}})
    if filters.uploaded_before is not None:
        out.append({"range": {"uploaded_at_us": {"lt": epoch_us(filters.uploaded_before)}}})
    return out


def tenant_filter(tenant_id: str) -> dict[str, Any]:
    return {"term": {"tenant_id": tenant_id}}


def search_body(tenant_id: str, query: str, k: int, filters: SearchFilters) -> dict[str, Any]:
    """The ``_search`` body of the full-text leg: BM25 ``match`` (OR of the analyzed terms) on the
    normalized query, the tenant and the filters as non-scoring filters, ties by chunk id."""
    return {
        "size": k,
        "_source": False,
        "track_total_hits": False,
        "query": {"bool": {
            "must": [{"match": {"content": {"query": normalize_line(query), "operator": "or"}}}],
            "filter": [tenant_filter(tenant_id), *filter_clauses(filters)],
        }},
        "sort": [{"_score": {"order": "desc"}}, {"chunk_id": {"order": "asc"}}],
    }


def bulk_index_body(index: str, chunks: Sequence[IndexedChunk]) -> str:
    """NDJSON of ``index`` actions (``_id`` = chunk id, ``routing`` = the tenant's key), newline-ended."""
    lines: list[str] = []
    for c in chunks:
        lines.append(json.dumps({"index": {"_index": index, "_id": str(c.chunk_id),
                                           "routing": routing_key(c.tenant_id)}}))
        lines.append(json.dumps(chunk_source(c), ensure_ascii=False))
    return "\n".join(lines) + "\n"


def bulk_delete_body(index: str, tenant_id: str, chunk_ids: Sequence[uuid.UUID | str]) -> str:
    routing = routing_key(tenant_id)
    return "".join(json.dumps({"delete": {"_index": index, "_id": str(i), "routing": routing}}) + "\n"
                   for i in chunk_ids)


def _translate(exc: Exception, what: str) -> QuerioError:
    """An opensearch-py exception as a domain error (by class and status, never by message)."""
    from opensearchpy import exceptions as ose

    if isinstance(exc, QuerioError):
        return exc
    if isinstance(exc, ose.ConnectionError):  # ConnectionTimeout and SSLError are subclasses
        return TransientError(f"OpenSearch unreachable during {what}: {exc}")
    if isinstance(exc, ose.TransportError):
        status = exc.status_code if isinstance(exc.status_code, int) else 0
        if status in (401, 403):
            return ConfigurationError(f"OpenSearch refused {what} ({status}): check the function role's access"
                                      " policy and fine-grained access mapping")
        if status == 404:
            return ConfigurationError(f"OpenSearch: {what}: index not found (run `querio fulltext backfill`)")
        if status == 429 or status >= 500 or status == 0:
            return TransientError(f"OpenSearch {what} failed ({status or exc.error}); retried")
        return ValidationFailed(f"OpenSearch rejected {what} ({status}: {exc.error})")
    return TransientError(f"OpenSearch {what} failed: {type(exc).__name__}: {exc}")


class OpenSearchFullText:
    """``FullTextSearch`` on OpenSearch plus the writes that keep it in step (module docstring)."""

    name = "opensearch"

    def __init__(self, client: Callable[[], Any], *, index_prefix: str = "querio-chunks",
                 shards: int = DEFAULT_SHARDS, replicas: int = DEFAULT_REPLICAS) -> None:
        self._client_factory = client
        self.index = index_name(index_prefix)
        self.shards = shards
        self.replicas = replicas
        self._ready = False
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        return self._client_factory()

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:
            raise _translate(exc, what) from exc

    # the index -------------------------------------------------------------------------------------
    def ensure_index(self) -> bool:
        """Create the index (settings and mapping of :func:`index_body`) unless it exists; whether
        it was created. Checked once per process."""
        if self._ready:
            return False
        with self._lock:
            if self._ready:
                return False
            exists = self._call("index check", lambda: self.client.indices.exists(index=self.index))
            created = False
            if not exists:
                from opensearchpy.exceptions import RequestError

                try:
                    self.client.indices.create(index=self.index, body=index_body(shards=self.shards,
                                                                                 replicas=self.replicas))
                    created = True
                except RequestError as exc:  # created by a concurrent writer meanwhile
                    if exc.error != "resource_already_exists_exception":
                        raise _translate(exc, "index creation") from exc
                except Exception as exc:
                    raise _translate(exc, "index creation") from exc
            self._ready = True
            return created

    def refresh(self) -> None:
        """Make every write so far visible to search (tests, the end of a backfill)."""
        self._call("refresh", lambda: self.client.indices.refresh(index=self.index))

    # writes ----------------------------------------------------------------------------------------
    def index_chunks(self, chunks: Sequence[IndexedChunk]) -> int:
        """Index (create or overwrite) the chunks, any tenants, in bulk requests cut by count and
        size; returns the number of requests. Raises ``TransientError`` if any item failed."""
        if not chunks:
            return 0
        self.ensure_index()
        requests = 0
        batch: list[IndexedChunk] = []
        size = 0
        for c in chunks:
            weight = len(c.content.encode()) + 400
            if batch and (len(batch) >= BULK_MAX_ACTIONS or size + weight > BULK_MAX_BYTES):
                self._bulk(bulk_index_body(self.index, batch), len(batch))
                requests += 1
                batch, size = [], 0
            batch.append(c)
            size += weight
        self._bulk(bulk_index_body(self.index, batch), len(batch))
        return requests + 1

    def delete_ids(self, tenant_id: str, chunk_ids: Sequence[uuid.UUID | str]) -> None:
        """Delete the tenant's records of these chunk ids (absent ids are not an error)."""
        ids = list(chunk_ids)
        for start in range(0, len(ids), BULK_MAX_ACTIONS):
            part = ids[start:start + BULK_MAX_ACTIONS]
            self._bulk(bulk_delete_body(self.index, tenant_id, part), len(part))

    def delete_document(self, tenant_id: str, document_id: uuid.UUID, *,
                        keep: Sequence[uuid.UUID] = ()) -> int:
        """Delete the document's records of this tenant except the chunk ids in ``keep`` (a
        reprocess keeps its new chunks); returns how many went. Deleting twice is a no-op."""
        must_not = [{"ids": {"values": [str(i) for i in keep]}}] if keep else []
        body = {"query": {"bool": {"filter": [tenant_filter(tenant_id), {"term": {"document_id": str(document_id)}}],
                                   "must_not": must_not}}}
        try:
            result = self.client.delete_by_query(index=self.index, body=body, routing=routing_key(tenant_id),
                                                 conflicts="proceed")
        except Exception as exc:
            from opensearchpy.exceptions import NotFoundError

            if isinstance(exc, NotFoundError):  # no index yet: nothing to delete
                return 0
            raise _translate(exc, "delete by query") from exc
        if result.get("failures"):
            raise TransientError(f"OpenSearch delete of document {document_id} failed: {result['failures'][:1]}")
        return int(result.get("deleted", 0))

    def _bulk(self, body: str, actions: int) -> None:
        # the Bulk API documents NDJSON's own media type (opensearch-py would send application/json)
        result = self._call("bulk write", lambda: self.client.bulk(body=body,
                                                                   headers={"Content-Type": "application/x-ndjson"}))
        if result.get("errors"):
            failed = [item for item in result.get("items", []) for r in item.values() if "error" in r]
            first = next(iter(failed[0].values())) if failed else {}
            raise TransientError(f"OpenSearch bulk write: {len(failed)} of {actions} actions failed"
                                 f" (first: {first.get('status')} {json.dumps(first.get('error'))[:300]})")

    # reads -----------------------------------------------------------------------------------------
    def search(self, tenant_id: str, query: str, k: int, filters: SearchFilters) -> list[ChunkRef]:
        """The tenant's ``k`` best chunks by BM25 (see :func:`search_body`)."""
        if k <= 0 or not query.strip():
            return []
        body = search_body(tenant_id, query, min(k, MAX_RESULT_WINDOW), filters)
        result = self._call("search", lambda: self.client.search(index=self.index, body=body,
                                                                 routing=routing_key(tenant_id)))
        refs = []
        for hit in result.get("hits", {}).get("hits", []):
            score = hit.get("_score")
            if score is None and hit.get("sort"):
                score = hit["sort"][0]
            refs.append(ChunkRef(chunk_id=uuid.UUID(hit["_id"]), score=float(score or 0.0)))
        return refs

    def count(self, tenant_id: str) -> int:
        body = {"query": {"bool": {"filter": [tenant_filter(tenant_id)]}}}
        result = self._call("count", lambda: self.client.count(index=self.index, body=body,
                                                               routing=routing_key(tenant_id)))
        return int(result.get("count", 0))

    def tenant_counts(self) -> dict[str, int]:
        """Records per tenant (a ``terms`` aggregation; the operator's view, all tenants)."""
        body = {"size": 0, "track_total_hits": False,
                "aggs": {"tenants": {"terms": {"field": "tenant_id", "size": TERMS_AGG_SIZE}}}}
        result = self._call("tenant counts", lambda: self.client.search(index=self.index, body=body))
        buckets = result.get("aggregations", {}).get("tenants", {}).get("buckets", [])
        return {str(b["key"]): int(b["doc_count"]) for b in buckets}

    def list_ids(self, tenant_id: str, *, page: int = LIST_PAGE) -> Iterator[list[str]]:
        """Every chunk id the tenant has in the index, pages in chunk-id order (``search_after``)."""
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {"size": page, "_source": False, "track_total_hits": False,
                                    "query": {"bool": {"filter": [tenant_filter(tenant_id)]}},
                                    "sort": [{"chunk_id": {"order": "asc"}}]}
            if after is not None:
                body["search_after"] = after
            result = self._call("id listing", lambda b=body: self.client.search(  # type: ignore[misc]
                index=self.index, body=b, routing=routing_key(tenant_id)))
            hits = result.get("hits", {}).get("hits", [])
            if not hits:
                return
            yield [h["_id"] for h in hits]
            if len(hits) < page:
                return
            after = hits[-1]["sort"]


def aws_region(host: str) -> str | None:
    """The region named by an Amazon OpenSearch Service endpoint, ``None`` for other hosts."""
    match = _AWS_HOST.search(host)
    return match.group("region") if match else None


@lru_cache(maxsize=4)
def opensearch_client(url: str, timeout_s: float = 10.0) -> Any:
    """The process-wide client for ``url`` (see the module docstring for authentication).

    ``RequestsHttpConnection`` + ``RequestsAWSV4SignerAuth`` (``AWSV4SignerAuth`` is its older,
    deprecated name) sign each request with the credentials of the moment: a Lambda role's
    temporary credentials are refreshed by botocore."""
    from opensearchpy import OpenSearch, RequestsHttpConnection

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"QUERIO_OPENSEARCH_URL must be an http(s) URL (got {url!r})")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    auth: Any = None
    if parts.username is not None:
        auth = (unquote(parts.username), unquote(parts.password or ""))
    elif (region := aws_region(parts.hostname)) is not None:
        import boto3
        from opensearchpy import RequestsAWSV4SignerAuth

        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise ConfigurationError("no AWS credentials to sign OpenSearch requests with (the function's role)")
        service = "aoss" if ".aoss." in parts.hostname else "es"
        auth = RequestsAWSV4SignerAuth(credentials, region, service)
    return OpenSearch(hosts=[{"host": parts.hostname, "port": port, "url_prefix": parts.path.rstrip("/")}],
                      http_auth=auth, use_ssl=parts.scheme == "https", verify_certs=parts.scheme == "https",
                      connection_class=RequestsHttpConnection, timeout=timeout_s, max_retries=2,
                      retry_on_timeout=True, pool_maxsize=8)
