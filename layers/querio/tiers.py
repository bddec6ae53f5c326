"""The deployment tiers: the seed's storage advice as frozen, typed records (pure data).

Both the CDK stacks (``stacks/``) and the runtime (``querio cost``, settings defaults) read
this module, so it imports nothing of ours and nothing of CDK.

Units are in the field names (``_gib``, ``_mb``, ``_s``, ``_days``, ``_per_minute``). Where a
number comes from the seed document (``shared/seeds/000_06be95047c706418.txt``, "Storage
Recommendations for Querio RAG System"), :attr:`Tier.sources` names the section it comes from;
numbers the seed does not give (Lambda sizes, queue settings) cite the AWS limit or the
measurement they follow from instead. Sections cited:

* "Architecture by Scale" (Small Business 10K-100K documents, Mid-Market 100K-1M,
  Enterprise 1M+): which stores each tier uses;
* "Cost Analysis" (Small 10K / Medium 100K / Large 1M documents): instance classes and prices;
* "Raw PDF Storage" (S3 lifecycle: STANDARD_IA after 90 days, GLACIER after 365);
* "Best Practices > Data Retention and Archival" (``archive_old_documents(days=365)``);
* "Caching Layer" (``rate_limit(max_requests=100, window=3600)``; TTLs);
* "Decision Matrix" and "Conclusion" ("If >1M vectors: migrate to Pinecone").

Sources that start with ``capacity:`` are ``querio capacity`` (:mod:`querio.capacity`) with the
per-chunk figures measured by ``bench/capacity.py`` (``bench/results/2026-12-06-capacity.json``).

Usage::

    from querio.tiers import get_tier
    tier = get_tier("small")          # UnknownTier lists the valid names otherwise
    tier.database.instance_class      # "db.t3.micro"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from types import MappingProxyType
from typing import Any, Literal

TierName = Literal["small", "mid", "enterprise"]
VectorBackend = Literal["pgvector", "pinecone"]
FulltextBackend = Literal["postgres", "opensearch"]

#: Lambda's Python runtime for every function and layer (``pip --python-version`` too).
LAMBDA_PYTHON_VERSION = "3.14"
#: AWS limit: a function's code plus all its layers, unzipped (bytes).
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
#: AWS limit: API Gateway HTTP API integration timeout (seconds), so the query function's cap.
HTTP_API_INTEGRATION_TIMEOUT_S = 30
#: AWS limit: a synchronous Lambda invocation's request payload, the whole event JSON (6 MB).
LAMBDA_INVOKE_PAYLOAD_BYTES = 6 * 1024 * 1024
#: Room in an HTTP API (payload v2) event for all but the body: headers, requestContext, JSON framing.
HTTP_API_EVENT_ENVELOPE_BYTES = 64 * 1024
#: Room for multipart framing around an uploaded file (boundaries, part headers, the tags field).
MULTIPART_FRAMING_BYTES = 64 * 1024
#: The largest file ``POST /api/documents`` can carry to a Lambda function: API Gateway passes a
#: binary (multipart) body base64-encoded, 4 bytes per 3, inside the 6 MB event. ~4.39 MiB;
#: larger files take the presigned S3 upload (the CDK app sets it as QUERIO_MAX_REQUEST_FILE_BYTES).
LAMBDA_REQUEST_FILE_BYTES = ((LAMBDA_INVOKE_PAYLOAD_BYTES - HTTP_API_EVENT_ENVELOPE_BYTES) * 3 // 4
                             - MULTIPART_FRAMING_BYTES)
#: AWS (Lambda with SQS): the queue's visibility timeout is at least 6x the function timeout
#: (plus the batching window), so Lambda can retry a throttled batch before the message reappears.
SQS_VISIBILITY_FUNCTION_TIMEOUTS = 6
#: AWS limit: SQS visibility timeouts are at most 12 hours.
SQS_MAX_VISIBILITY_TIMEOUT_S = 12 * 3600


@dataclass(frozen=True)
class EngineSpec:
    """An instance class's memory and on-demand price (RDS PostgreSQL Single-AZ, or OpenSearch Service)."""

    memory_gib: float
    usd_per_hour: float


_PRICES = "AWS price list, us-east-1 on-demand (RDS for PostgreSQL Single-AZ; OpenSearch Service), Dec 2026"
#: Instance classes the tiers use or the README compares. Source: :data:`_PRICES` and the instance-type pages.
ENGINE_SPECS: Mapping[str, EngineSpec] = MappingProxyType({
    "db.t3.micro": EngineSpec(1, 0.018), "db.t3.small": EngineSpec(2, 0.036),
    "db.r6g.large": EngineSpec(16, 0.225), "db.r6g.xlarge": EngineSpec(32, 0.45),
    "db.r6g.2xlarge": EngineSpec(64, 0.899), "db.r6g.4xlarge": EngineSpec(128, 1.798),
    "db.r6g.8xlarge": EngineSpec(256, 3.596), "db.r6g.12xlarge": EngineSpec(384, 5.394),
    "m6g.large.search": EngineSpec(8, 0.128), "r6g.large.search": EngineSpec(16, 0.167),
    "r6g.xlarge.search": EngineSpec(32, 0.335), "r6g.2xlarge.search": EngineSpec(64, 0.669),
})


class UnknownTier(ValueError):
    """A tier name that is not in :data:`TIERS`; the message lists the valid ones."""


@dataclass(frozen=True)
class DatabaseTier:
    """RDS PostgreSQL 16 with pgvector (metadata, chunks, BM25 postings, small-tier vectors)."""

    instance_class: str
    allocated_storage_gib: int
    max_allocated_storage_gib: int  # storage autoscaling ceiling
    multi_az: bool
    backup_retention_days: int
    deletion_protection: bool
    #: The seed's monthly price for its database line (USD/month), kept to compare with ours.
    seed_monthly_usd: float


@dataclass(frozen=True)
class PineconeTier:
    """Pinecone pods for the vectors (mid, enterprise): one record per chunk."""

    pod_type: str
    pods: int
    usd_per_pod_month: float


@dataclass(frozen=True)
class OpenSearchTier:
    """Amazon OpenSearch Service domain for full text (enterprise): in the VPC, over the tier's AZs."""

    engine_version: str
    data_instance_type: str
    data_nodes: int  # a multiple of the AZ count (zone awareness)
    master_instance_type: str
    master_nodes: int  # dedicated masters: 3 (quorum survives one loss)
    ebs_gib_per_node: int  # gp3
    replicas: int  # replica shards per primary
    primary_shards: int


@dataclass(frozen=True)
class CacheTier:
    """ElastiCache Redis: query-embedding and result cache, rate limits, stats."""

    node_type: str
    shards: int  # node groups; > 1 only with cluster mode
    replicas_per_shard: int
    cluster_mode: bool
    seed_monthly_usd_per_node: float


@dataclass(frozen=True)
class FunctionTier:
    """One Lambda function's size. ``reserved_concurrency=None`` reserves nothing."""

    memory_mb: int
    timeout_s: int
    reserved_concurrency: int | None


@dataclass(frozen=True)
class QueueTier:
    """The ingest queue (S3 notifications and page-range work items) and its DLQ."""

    batch_size: int
    max_batching_window_s: int
    max_receive_count: int
    max_concurrency: int  # the event source mapping's ScalingConfig.MaximumConcurrency (>= 2)
    dlq_retention_days: int


@dataclass(frozen=True)
class StorageTier:
    """The PDF bucket's lifecycle."""

    infrequent_access_after_days: int
    glacier_after_days: int
    noncurrent_versions_expire_days: int
    access_logs_expire_days: int
    #: Downloads through CloudFront signed URLs (origin access control), else S3 presigned URLs.
    cloudfront_downloads: bool = False
    #: Replicate the PDF bucket to a second region (``replica_region`` context).
    replicate: bool = False


@dataclass(frozen=True)
class ArchiveTier:
    """The daily archive run (``functions/archive``)."""

    schedule_expression: str  # EventBridge cron, UTC
    archive_after_days: int
    purge_after_days: int


@dataclass(frozen=True)
class ApiTier:
    """HTTP API throttling (per stage) and the per-user rate limit (Redis)."""

    throttle_rate_per_s: int
    throttle_burst: int
    rate_limit_per_minute: int
    waf: bool
    #: WAF rate-based rule: requests per source IP per 5 minutes (AWS WAF's window).
    waf_ip_limit_per_5_minutes: int


@dataclass(frozen=True)
class Tier:
    """One deployment tier. Frozen: read it, never change it at run time."""

    name: TierName
    seed_scale: str  # the seed's name for this scale
    expected_documents: int  # the Cost Analysis scenario this tier is sized for
    document_range: tuple[int, int | None]  # Architecture by Scale's range (None = open)
    vector_backend: VectorBackend
    #: Which engine answers the full-text leg (QUERIO_FULLTEXT_BACKEND); PostgreSQL stays the system of record.
    fulltext_backend: FulltextBackend
    #: The top of the range this tier is sized to hold by ``querio capacity`` (documents).
    capacity_documents: int
    database: DatabaseTier
    pinecone: PineconeTier | None
    opensearch: OpenSearchTier | None
    cache: CacheTier
    ingest_function: FunctionTier
    query_function: FunctionTier
    archive_function: FunctionTier
    queue: QueueTier
    storage: StorageTier
    archive: ArchiveTier
    api: ApiTier
    #: AZs for the VPC; NAT gateways (0 = none; needed only to reach Pinecone's public API).
    availability_zones: int
    nat_gateways: int
    log_retention_days: int
    #: Where each number comes from: dotted field path -> seed section or AWS/measured source.
    sources: Mapping[str, str] = field(default_factory=dict)

    def field_paths(self) -> list[str]:
        """Every leaf field as a dotted path (``"database.instance_class"``), sources excluded."""
        return _leaf_paths(self)

    def value(self, path: str) -> Any:
        """The value at a dotted ``path`` (see :meth:`field_paths`)."""
        obj: Any = self
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj

    @property
    def queue_visibility_timeout_s(self) -> int:
        """The ingest queue's visibility timeout (seconds), derived so it can never fall behind the
        function: AWS asks for at least 6x the consuming function's timeout plus the batching window
        (Lambda may retry a throttled batch before the message reappears)."""
        seconds = (SQS_VISIBILITY_FUNCTION_TIMEOUTS * self.ingest_function.timeout_s
                   + self.queue.max_batching_window_s)
        if seconds > SQS_MAX_VISIBILITY_TIMEOUT_S:
            raise ValueError(f"the {self.name} tier's ingest timeout needs a {seconds} s visibility timeout;"
                             f" SQS allows at most {SQS_MAX_VISIBILITY_TIMEOUT_S} s")
        return seconds


def _leaf_paths(obj: Any, prefix: str = "") -> list[str]:
    out: list[str] = []
    for f in fields(obj):
        if f.name == "sources":
            continue
        value = getattr(obj, f.name)
        path = f"{prefix}{f.name}"
        if is_dataclass(value):
            out.extend(_leaf_paths(value, path + "."))
        else:
            out.append(path)
    return out


# --- sources shared by all tiers ----------------------------------------------------------------

_SEED_LIFECYCLE = "seed > Raw PDF Storage > S3 Lifecycle Configuration (STANDARD_IA at 90 days, GLACIER at 365)"
_SEED_ARCHIVE = "seed > Best Practices > Data Retention and Archival: archive_old_documents(days=365) to GLACIER"
_SEED_RATE = ("seed > Caching Layer: rate_limit(max_requests=100, window=3600); kept as a per-minute window so a "
              "burst cannot lock a user out for an hour, same order of magnitude per hour")
_COMMON_SOURCES = {
    "storage.infrequent_access_after_days": _SEED_LIFECYCLE,
    "storage.glacier_after_days": _SEED_LIFECYCLE,
    "storage.noncurrent_versions_expire_days": "not in the seed: versioning keeps deleted PDFs recoverable this long",
    "storage.access_logs_expire_days": "not in the seed: server access logs kept for audits",
    "archive.archive_after_days": _SEED_ARCHIVE,
    "archive.schedule_expression": "issue: the archive runs daily; 03:00 UTC is off-peak for most regions",
    "archive.purge_after_days": "not in the seed: soft-deleted documents are purged after this grace period",
    "api.rate_limit_per_minute": _SEED_RATE,
    "ingest_function.memory_mb": ("AWS: 1,769 MB = 1 vCPU, 3,538 MB = 2 vCPUs, and 3,008 MB is the most a new "
                                  "account may use; embedding uses every vCPU (measured-limits: ~24 chunks/s "
                                  "on 2 cores)"),
    "ingest_function.timeout_s": "AWS: 900 s is Lambda's maximum; a PDF part is sized to finish in half of it",
    "query_function.timeout_s": "AWS: API Gateway HTTP API integrations time out at 30 s",
    "query_function.memory_mb": "AWS: 1,769 MB = one full vCPU for query embedding (~10 ms per query)",
    "archive_function.memory_mb": "archive only copies objects server-side and updates rows: little memory",
    "archive_function.timeout_s": "AWS: 900 s maximum; the run is resumable, so a cut-off run just continues",
    "queue.max_receive_count": "AWS/SQS practice: 5 receives before the DLQ rides out transient outages",
    "queue.batch_size": "one PDF (or part) per message: a slow PDF never holds back others in its batch",
    "queue.max_batching_window_s": "no batching window: ingest starts as soon as a PDF lands",
    "queue.dlq_retention_days": "AWS: 14 days is SQS's maximum retention, time to inspect and redrive",
    "log_retention_days": "not in the seed: CloudWatch Logs retention",
    "availability_zones": "AWS: an RDS subnet group needs subnets in at least 2 AZs",
    "expected_documents": "seed > Cost Analysis scenario for this tier",
    "document_range": "seed > Architecture by Scale",
    "seed_scale": "seed > Architecture by Scale",
}


def _tier(sources: dict[str, str], **kwargs: Any) -> Tier:
    return Tier(sources=MappingProxyType({**_COMMON_SOURCES, **sources}), **kwargs)


_STORAGE = StorageTier(infrequent_access_after_days=90, glacier_after_days=365,
                       noncurrent_versions_expire_days=30, access_logs_expire_days=365)
_ARCHIVE = ArchiveTier(schedule_expression="cron(0 3 * * ? *)", archive_after_days=365, purge_after_days=30)

SMALL = _tier(
    {
        "vector_backend": "seed > Architecture by Scale > Small Business: one vector store beside PostgreSQL "
                          "(ChromaDB there; pgvector here keeps vectors in the same RDS instance and transaction)",
        "database.instance_class": "capacity: 100K documents = 8.45M chunks need 44.6 GiB of hot indexes (HNSW "
                                   "2,049 B + readable postings 3,616 B per chunk) within 75% of RAM: 64 GiB. "
                                   "The seed's db.t3.micro (1 GiB) holds ~1,700 documents",
        "database.seed_monthly_usd": "seed > Cost Analysis > Small Deployment: PostgreSQL RDS (db.t3.micro) $15.00",
        "database.allocated_storage_gib": "capacity: 10K documents (bottom of the range) are 18 GiB; room to grow",
        "database.max_allocated_storage_gib": "capacity: 100K documents are 177 GiB at 22,520 B per chunk (the "
                                              "packed BM25 blocks included); within 85% of the ceiling",
        "fulltext_backend": "issue 15: small and mid use PostgreSQL (BM25 postings) for full text",
        "capacity_documents": "seed > Architecture by Scale > Small Business: 10K-100K documents (the top)",
        "pinecone": "pgvector: no Pinecone",
        "opensearch": "PostgreSQL full text: no OpenSearch",
        "database.multi_az": "seed > Architecture by Scale: Multi-AZ is the Enterprise tier's",
        "database.backup_retention_days": "RDS default-class retention: 7 days of point-in-time recovery",
        "database.deletion_protection": "seed > Enterprise only; small stacks are expected to be torn down",
        "cache.node_type": "seed > Cost Analysis > Small Deployment: Redis (cache.t3.micro) $12.00",
        "cache.seed_monthly_usd_per_node": "seed > Cost Analysis > Small Deployment: $12.00",
        "cache.replicas_per_shard": "seed > Small Business: a single Redis node (the cache is an optimisation)",
        "cache.shards": "seed > Small Business: a single Redis node",
        "cache.cluster_mode": "seed > Redis Cluster appears from Mid-Market up",
        "ingest_function.reserved_concurrency": "none: new accounts have a 10-execution quota; queue concurrency "
                                                "caps ingest instead",
        "query_function.reserved_concurrency": "none: new accounts have a 10-execution quota",
        "archive_function.reserved_concurrency": "1: runs must not overlap",
        "queue.max_concurrency": "2 (the AWS minimum): a small team's ingest; leaves the database to queries",
        "api.throttle_rate_per_s": "not in the seed: a small team's traffic, 10x its expected peak",
        "api.throttle_burst": "not in the seed: 2x the steady rate",
        "api.waf": "seed > Enterprise tier only (Security section asks for encryption, not WAF)",
        "api.waf_ip_limit_per_5_minutes": "unused without WAF",
        "storage.cloudfront_downloads": "seed > Architecture by Scale > Small Business: AWS S3 (PDFs), no CDN; "
                                        "S3 presigned URLs",
        "storage.replicate": "seed > Small Business: one region",
        "nat_gateways": "0: S3 gateway and SQS/Secrets Manager interface endpoints serve every AWS call",
    },
    name="small", seed_scale="Small Business", expected_documents=10_000, document_range=(10_000, 100_000),
    vector_backend="pgvector", fulltext_backend="postgres", capacity_documents=100_000,
    pinecone=None, opensearch=None,
    database=DatabaseTier(instance_class="db.r6g.2xlarge", allocated_storage_gib=50, max_allocated_storage_gib=220,
                          multi_az=False, backup_retention_days=7, deletion_protection=False,
                          seed_monthly_usd=15.0),
    cache=CacheTier(node_type="cache.t3.micro", shards=1, replicas_per_shard=0, cluster_mode=False,
                    seed_monthly_usd_per_node=12.0),
    ingest_function=FunctionTier(memory_mb=3008, timeout_s=900, reserved_concurrency=None),
    query_function=FunctionTier(memory_mb=1769, timeout_s=29, reserved_concurrency=None),
    archive_function=FunctionTier(memory_mb=512, timeout_s=900, reserved_concurrency=1),
    queue=QueueTier(batch_size=1, max_batching_window_s=0, max_receive_count=5,
                    max_concurrency=2, dlq_retention_days=14),
    storage=_STORAGE, archive=_ARCHIVE,
    api=ApiTier(throttle_rate_per_s=50, throttle_burst=100, rate_limit_per_minute=60, waf=False,
                waf_ip_limit_per_5_minutes=0),
    availability_zones=2, nat_gateways=0, log_retention_days=30,
)

MID = _tier(
    {
        "vector_backend": "seed > Architecture by Scale > Mid-Market: Pinecone (vectors); Conclusion: "
                          "'If >1M vectors: migrate to Pinecone'",
        "database.instance_class": "capacity: the BM25 postings' readable part (3,616 B per chunk) within 75% of "
                                   "128 GiB holds ~337K documents; 1M would need db.r6g.12xlarge (384 GiB, "
                                   "~$3,940/month): see the README, mid does not hold its top on PostgreSQL full text",
        "database.seed_monthly_usd": "seed > Cost Analysis > Medium Deployment: PostgreSQL RDS (db.t3.small) $30.00",
        "database.allocated_storage_gib": "capacity: 100K documents (bottom of the range) are 133 GiB",
        "database.max_allocated_storage_gib": "capacity: 1M documents are 1,328 GiB at 16,878 B per chunk (no "
                                              "vectors in PostgreSQL; the packed BM25 blocks included); within 85% "
                                              "of the ceiling",
        "fulltext_backend": "issue 15: small and mid use PostgreSQL (BM25 postings) for full text",
        "capacity_documents": "seed > Architecture by Scale > Mid-Market: 100K-1M documents (the top)",
        "pinecone.pod_type": "seed > Vector Embeddings Storage > Pinecone: Standard pods ($0.096/hour per pod)",
        "pinecone.pods": "capacity: 1M documents = 84.5M records; ~10M 384-dim records per s1 pod",
        "pinecone.usd_per_pod_month": "seed > Pinecone: $0.096/hour per pod x 730 h",
        "opensearch": "PostgreSQL full text (issue 15): no OpenSearch",
        "database.multi_az": "seed > Architecture by Scale: Multi-AZ is the Enterprise tier's",
        "database.backup_retention_days": "14 days: a business corpus is worth two weeks of point-in-time recovery",
        "database.deletion_protection": "on: from Mid-Market the data is a business asset",
        "cache.node_type": "seed > Cost Analysis > Medium Deployment: Redis (cache.m5.large) $100.00",
        "cache.seed_monthly_usd_per_node": "seed > Cost Analysis > Medium Deployment: $100.00",
        "cache.replicas_per_shard": "brief: a bigger, replicated cache (one replica, automatic failover)",
        "cache.shards": "one shard: cluster mode is Enterprise's",
        "cache.cluster_mode": "seed > Enterprise: Redis Cluster",
        "ingest_function.reserved_concurrency": "10: leaves room for the query function and caps DB connections",
        "query_function.reserved_concurrency": "none: the query function scales with traffic",
        "archive_function.reserved_concurrency": "1: runs must not overlap",
        "queue.max_concurrency": "10 ingest workers: leaves the database's connections to queries",
        "api.throttle_rate_per_s": "not in the seed: 100K documents, several teams",
        "api.throttle_burst": "not in the seed: 2x the steady rate",
        "api.waf": "seed > Enterprise tier only",
        "api.waf_ip_limit_per_5_minutes": "unused without WAF",
        "storage.cloudfront_downloads": "seed > Architecture by Scale > Mid-Market: AWS S3 + CloudFront CDN (PDFs)",
        "storage.replicate": "seed > Mid-Market keeps one region; multi-region S3 is the Enterprise tier's",
        "nat_gateways": "1: Pinecone's API is on the public internet; one NAT (~$33/month) for the tier that "
                        "needs it; AWS calls still use the free/interface endpoints",
    },
    name="mid", seed_scale="Mid-Market", expected_documents=100_000, document_range=(100_000, 1_000_000),
    vector_backend="pinecone", fulltext_backend="postgres", capacity_documents=1_000_000,
    pinecone=PineconeTier(pod_type="s1.x1", pods=9, usd_per_pod_month=0.096 * 730), opensearch=None,
    database=DatabaseTier(instance_class="db.r6g.4xlarge", allocated_storage_gib=150, max_allocated_storage_gib=1600,
                          multi_az=False, backup_retention_days=14, deletion_protection=True,
                          seed_monthly_usd=30.0),
    cache=CacheTier(node_type="cache.m5.large", shards=1, replicas_per_shard=1, cluster_mode=False,
                    seed_monthly_usd_per_node=100.0),
    ingest_function=FunctionTier(memory_mb=3538, timeout_s=900, reserved_concurrency=10),
    query_function=FunctionTier(memory_mb=1769, timeout_s=29, reserved_concurrency=None),
    archive_function=FunctionTier(memory_mb=512, timeout_s=900, reserved_concurrency=1),
    queue=QueueTier(batch_size=1, max_batching_window_s=0, max_receive_count=5,
                    max_concurrency=10, dlq_retention_days=14),
    storage=replace(_STORAGE, cloudfront_downloads=True), archive=_ARCHIVE,
    api=ApiTier(throttle_rate_per_s=200, throttle_burst=400, rate_limit_per_minute=120, waf=False,
                waf_ip_limit_per_5_minutes=0),
    availability_zones=2, nat_gateways=1, log_retention_days=90,
)

ENTERPRISE = _tier(
    {
        "vector_backend": "seed > Architecture by Scale > Enterprise: Pinecone or Milvus (vectors)",
        "database.instance_class": "seed > Cost Analysis > Large Deployment: PostgreSQL RDS (Multi-AZ) $300.00; "
                                   "capacity: no hot index left in PostgreSQL (vectors in Pinecone, full text in "
                                   "OpenSearch): rows by key only",
        "database.seed_monthly_usd": "seed > Cost Analysis > Large Deployment: $300.00 (Multi-AZ)",
        "database.allocated_storage_gib": "capacity: 1M documents (bottom of the range) are 313 GiB of chunks",
        "database.max_allocated_storage_gib": "capacity: 10M documents are 3,127 GiB at 3,975 B per chunk (chunks "
                                              "only); within 85% of the ceiling",
        "fulltext_backend": "seed > Enterprise: Elasticsearch Cluster (full-text + chunks); Amazon OpenSearch "
                            "Service; PostgreSQL stays the system of record",
        "capacity_documents": "seed > Enterprise: 1M+ documents; sized for 10M (10x the bottom)",
        "pinecone.pod_type": "seed > Cost Analysis > Large Deployment: Pinecone (Standard)",
        "pinecone.pods": "capacity: 10M documents = 845M records; ~10M 384-dim records per s1 pod",
        "pinecone.usd_per_pod_month": "seed > Pinecone: $0.096/hour per pod x 730 h",
        "opensearch.engine_version": "the newest OpenSearch engine the CDK construct library names",
        "opensearch.data_instance_type": "capacity: 32 GiB (16 GiB heap) per data node; memory-optimised for search",
        "opensearch.data_nodes": "capacity: 10M documents = 1,990 GiB with one replica; 3 per AZ over 2 AZs",
        "opensearch.master_instance_type": "AWS: dedicated masters m6g.large.search for clusters up to ~10 data "
                                           "nodes",
        "opensearch.master_nodes": "AWS: three dedicated masters keep a quorum when one is lost",
        "opensearch.ebs_gib_per_node": "capacity: 6 x 400 GiB >= 1,990 GiB (source x 2 x 1.45, AWS sizing)",
        "opensearch.replicas": "one replica: every shard survives the loss of a node or an AZ",
        "opensearch.primary_shards": "capacity: 755 GiB of primary index at 10M documents in shards of <= 30 GiB "
                                     "(AWS: 10-30 GiB for search), a multiple of the 6 data nodes",
        "database.multi_az": "seed > Enterprise: PostgreSQL RDS Multi-AZ (metadata)",
        "database.backup_retention_days": "35 days: RDS's maximum automated retention",
        "database.deletion_protection": "seed > Enterprise: high availability requirements",
        "cache.node_type": "seed > Cost Analysis > Large Deployment: Redis Cluster $200.00 (2 x cache.m5.large)",
        "cache.seed_monthly_usd_per_node": "seed > Cost Analysis: cache.m5.large $100.00",
        "cache.replicas_per_shard": "one replica per shard in another AZ (Multi-AZ failover)",
        "cache.shards": "seed > Enterprise: Redis Cluster; 2 shards as in the seed's $200 line",
        "cache.cluster_mode": "seed > Enterprise: Redis Cluster (caching)",
        "ingest_function.reserved_concurrency": "50: bounded so ingest bursts never starve queries",
        "query_function.reserved_concurrency": "none: the query function scales with traffic",
        "archive_function.reserved_concurrency": "1: runs must not overlap",
        "queue.max_concurrency": "50 ingest workers (seed > Enterprise: SQS async processing)",
        "api.throttle_rate_per_s": "not in the seed: 1M+ documents, many tenants",
        "api.throttle_burst": "not in the seed: 2x the steady rate",
        "api.waf": "brief: Enterprise adds WAF (CloudFront in front of the HTTP API)",
        "api.waf_ip_limit_per_5_minutes": "AWS WAF rate-based rule per source IP; 2,000 per 5 min = ~6.7 rps",
        "storage.cloudfront_downloads": "seed > Architecture by Scale > Enterprise: Multi-region S3 + CloudFront "
                                        "(PDFs)",
        "storage.replicate": "seed > Architecture by Scale > Enterprise: Multi-region S3 (PDFs); S3 replication "
                             "to replica_region",
        "nat_gateways": "one per AZ: Pinecone's public API must survive the loss of an AZ",
    },
    name="enterprise", seed_scale="Enterprise", expected_documents=1_000_000, document_range=(1_000_000, None),
    vector_backend="pinecone", fulltext_backend="opensearch", capacity_documents=10_000_000,
    pinecone=PineconeTier(pod_type="s1.x1", pods=85, usd_per_pod_month=0.096 * 730),
    opensearch=OpenSearchTier(engine_version="2.19", data_instance_type="r6g.xlarge.search", data_nodes=6,
                              master_instance_type="m6g.large.search", master_nodes=3, ebs_gib_per_node=400,
                              replicas=1, primary_shards=30),
    database=DatabaseTier(instance_class="db.r6g.large", allocated_storage_gib=400,
                          max_allocated_storage_gib=3700, multi_az=True, backup_retention_days=35,
                          deletion_protection=True, seed_monthly_usd=300.0),
    cache=CacheTier(node_type="cache.m5.large", shards=2, replicas_per_shard=1, cluster_mode=True,
                    seed_monthly_usd_per_node=100.0),
    ingest_function=FunctionTier(memory_mb=3538, timeout_s=900, reserved_concurrency=50),
    query_function=FunctionTier(memory_mb=1769, timeout_s=29, reserved_concurrency=None),
    archive_function=FunctionTier(memory_mb=512, timeout_s=900, reserved_concurrency=1),
    queue=QueueTier(batch_size=1, max_batching_window_s=0, max_receive_count=5,
                    max_concurrency=50, dlq_retention_days=14),
    storage=replace(_STORAGE, cloudfront_downloads=True, replicate=True), archive=_ARCHIVE,
    api=ApiTier(throttle_rate_per_s=1000, throttle_burst=2000, rate_limit_per_minute=600, waf=True,
                waf_ip_limit_per_5_minutes=2000),
    availability_zones=2, nat_gateways=2, log_retention_days=365,
)

#: Every tier by name. Read-only.
TIERS: Mapping[str, Tier] = MappingProxyType({t.name: t for t in (SMALL, MID, ENTERPRISE)})
DEFAULT_TIER: TierName = "small"


def get_tier(name: str | None) -> Tier:
    """The tier called ``name`` (``None`` or ``""`` = :data:`DEFAULT_TIER`).

    Raises :class:`UnknownTier` naming the valid tiers for anything else.
    """
    key = (name or DEFAULT_TIER).strip().lower()
    try:
        return TIERS[key]
    except KeyError:
        raise UnknownTier(f"unknown tier {name!r}; valid tiers: {', '.join(TIERS)}") from None
