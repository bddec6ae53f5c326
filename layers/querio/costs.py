"""Monthly cost estimate per tier: ``querio cost --tier small|mid|enterprise``.

Line by line as in the seed's "Cost Analysis" (``shared/seeds/000_06be95047c706418.txt``),
from the tier table (:mod:`querio.tiers`), the seed's price list, and AWS list prices for the
services the seed does not price (it assumed EC2 servers; Querio is serverless). Each line
says where its price comes from, and :data:`WORKLOADS` states the traffic assumed.

All amounts are USD per month (730 hours), us-east-1 on-demand list prices; no free tier,
no savings plans, no taxes. Pure data and arithmetic: no AWS calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from querio.tiers import Tier

HOURS_PER_MONTH = 730

# --- prices -------------------------------------------------------------------------------------
# Seed > Raw PDF Storage > Cost Breakdown (AWS S3) and Storage Costs per 100GB
S3_STANDARD_USD_PER_GB = 0.023
S3_GET_USD_PER_1000 = 0.0004
DATA_TRANSFER_OUT_USD_PER_GB = 0.09
# Seed > Vector Embeddings Storage > Pinecone pricing / Cost Analysis
PINECONE_STARTER_USD = 70.0
PINECONE_STANDARD_2_PODS_USD = 350.0  # seed > Cost Analysis > Large Deployment
# AWS list prices, us-east-1 (not in the seed, which priced EC2 servers instead of Lambda)
LAMBDA_USD_PER_GB_S = 0.0000166667
LAMBDA_USD_PER_MILLION_REQUESTS = 0.20
HTTP_API_USD_PER_MILLION = 1.00
SQS_USD_PER_MILLION = 0.40
RDS_GP3_USD_PER_GB = 0.115
INTERFACE_ENDPOINT_USD_PER_AZ_HOUR = 0.01
NAT_GATEWAY_USD_PER_HOUR = 0.045
NAT_USD_PER_GB = 0.045
SECRET_USD_PER_MONTH = 0.40
ALARM_USD_PER_MONTH = 0.10
DASHBOARD_USD_PER_MONTH = 3.00
WAF_ACL_USD = 5.00
WAF_RULE_USD = 1.00
WAF_USD_PER_MILLION = 0.60
CLOUDFRONT_USD_PER_GB = 0.085
CLOUDFRONT_USD_PER_10K_HTTPS = 0.01
S3_REPLICATION_USD_PER_GB = 0.02  # inter-region transfer of replicated bytes (us-east-1 to another US region)
CLOUDWATCH_LOGS_USD_PER_GB = 0.50


@dataclass(frozen=True)
class Workload:
    """Traffic a tier is priced for. Sources: the seed's Cost Analysis scenario where it has one."""

    documents: int
    mb_per_document: float  # seed: 10K documents = 10 GB, so 1 MB each
    pages_per_document: int  # the eval corpus averages ~100 pages; most business PDFs are shorter
    new_documents_per_month: int
    queries_per_month: int  # seed: "S3 Requests (10K/month)" is downloads; queries are ours
    downloads_per_month: int  # seed: S3 Requests line
    ingest_pages_per_s: float  # measured on 2 vCPUs (measured-limits: parse + embed + store)
    query_ms: float  # warm query Lambda duration
    log_gb: float


WORKLOADS: dict[str, Workload] = {
    "small": Workload(documents=10_000, mb_per_document=1.0, pages_per_document=20, new_documents_per_month=1_000,
                      queries_per_month=100_000, downloads_per_month=10_000, ingest_pages_per_s=10.0,
                      query_ms=150.0, log_gb=2.0),
    "mid": Workload(documents=100_000, mb_per_document=1.0, pages_per_document=20, new_documents_per_month=10_000,
                    queries_per_month=1_000_000, downloads_per_month=100_000, ingest_pages_per_s=10.0,
                    query_ms=150.0, log_gb=10.0),
    "enterprise": Workload(documents=1_000_000, mb_per_document=1.0, pages_per_document=20,
                           new_documents_per_month=100_000, queries_per_month=10_000_000,
                           downloads_per_month=1_000_000, ingest_pages_per_s=10.0, query_ms=150.0, log_gb=50.0),
}


@dataclass(frozen=True)
class CostLine:
    item: str
    usd: float
    source: str


@dataclass(frozen=True)
class CostEstimate:
    tier: str
    lines: tuple[CostLine, ...]
    assumptions: tuple[str, ...]

    @property
    def total_usd(self) -> float:
        return round(sum(line.usd for line in self.lines), 2)

    def render(self) -> str:
        """The seed's layout: ``Item:   $x.xx`` lines, a rule, the total, then assumptions."""
        width = max(len(line.item) for line in self.lines) + 2
        out = [f"Querio {self.tier} tier: estimated monthly cost (USD)"]
        for line in self.lines:
            out.append(f"{line.item + ':':<{width}} ${line.usd:>9,.2f}   [{line.source}]")
        out.append("-" * (width + 11))
        out.append(f"{'Total:':<{width}} ${self.total_usd:>9,.2f}")
        out.append("")
        out.append("Assumptions:")
        out.extend(f"- {a}" for a in self.assumptions)
        return "\n".join(out)


def estimate(tier: Tier, workload: Workload | None = None) -> CostEstimate:
    """Monthly cost lines for ``tier`` under ``workload`` (default :data:`WORKLOADS` [tier])."""
    w = workload or WORKLOADS[tier.name]
    gb = w.documents * w.mb_per_document / 1024
    lines: list[CostLine] = []

    def add(item: str, usd: float, source: str) -> None:
        lines.append(CostLine(item, round(usd, 2), source))

    add(f"AWS S3 Storage ({gb:,.0f} GB)", gb * S3_STANDARD_USD_PER_GB, "seed: $0.023/GB")
    add(f"S3 Requests ({w.downloads_per_month:,}/month)", w.downloads_per_month / 1000 * S3_GET_USD_PER_1000 * 10,
        "seed: $0.04 per 10K requests")
    db = tier.database
    add(f"PostgreSQL RDS ({db.instance_class}{', Multi-AZ' if db.multi_az else ''})", db.seed_monthly_usd,
        "seed: Cost Analysis")
    storage_gb = db.allocated_storage_gib * (2 if db.multi_az else 1)
    label = f"{db.allocated_storage_gib} GiB x 2, Multi-AZ" if db.multi_az else f"{storage_gb} GiB"
    add(f"RDS storage (gp3, {label})", storage_gb * RDS_GP3_USD_PER_GB, "AWS: $0.115/GB-month")
    c = tier.cache
    nodes = c.shards * (1 + c.replicas_per_shard)
    shape = f"{c.shards} shards x {1 + c.replicas_per_shard} nodes" if c.cluster_mode else f"{nodes} node(s)"
    add(f"Redis ({c.node_type}, {shape})", nodes * c.seed_monthly_usd_per_node, "seed: per-node price")
    if tier.vector_backend == "pinecone":
        usd = PINECONE_STANDARD_2_PODS_USD if tier.name == "enterprise" else PINECONE_STARTER_USD
        add("Pinecone (Standard, 2 pods)" if tier.name == "enterprise" else "Pinecone (Starter)", usd,
            "seed: Cost Analysis")
    else:
        add("Vectors (pgvector in RDS)", 0.0, "seed: ChromaDB self-hosted $0.00; here inside RDS")
    ingest_s = w.new_documents_per_month * w.pages_per_document / w.ingest_pages_per_s
    gb_s = (ingest_s * tier.ingest_function.memory_mb / 1024
            + w.queries_per_month * w.query_ms / 1000 * tier.query_function.memory_mb / 1024)
    requests = w.queries_per_month + w.new_documents_per_month + 31
    add("Lambda (ingest + query + archive)", gb_s * LAMBDA_USD_PER_GB_S
        + requests / 1e6 * LAMBDA_USD_PER_MILLION_REQUESTS, "AWS: $0.0000166667/GB-s; replaces the seed's EC2")
    add(f"API Gateway HTTP API ({w.queries_per_month:,} requests)",
        w.queries_per_month / 1e6 * HTTP_API_USD_PER_MILLION, "AWS: $1.00/million")
    add("SQS (ingest + DLQ)", w.new_documents_per_month * 4 / 1e6 * SQS_USD_PER_MILLION, "AWS: $0.40/million")
    endpoints = 2 * tier.availability_zones  # SQS + Secrets Manager interface endpoints, per AZ
    add(f"VPC interface endpoints ({endpoints} AZ-endpoints)",
        endpoints * INTERFACE_ENDPOINT_USD_PER_AZ_HOUR * HOURS_PER_MONTH, "AWS: $0.01/hour per AZ; S3 gateway free")
    if tier.nat_gateways:
        add(f"NAT gateway ({tier.nat_gateways}, Pinecone traffic)",
            tier.nat_gateways * NAT_GATEWAY_USD_PER_HOUR * HOURS_PER_MONTH
            + w.queries_per_month * 0.00002 * NAT_USD_PER_GB, "AWS: $0.045/hour + $0.045/GB")
    # DB, Redis AUTH, Pinecone key, CloudFront URL-signing key
    secrets = 2 + (tier.vector_backend == "pinecone") + tier.storage.cloudfront_downloads
    add(f"Secrets Manager ({secrets} secrets)", secrets * SECRET_USD_PER_MONTH, "AWS: $0.40/secret")
    if tier.api.waf:
        add("WAF (web ACL, 4 rules)", WAF_ACL_USD + 4 * WAF_RULE_USD
            + w.queries_per_month / 1e6 * WAF_USD_PER_MILLION, "AWS: $5/ACL + $1/rule + $0.60/million")
        add("CloudFront (in front of the API)", w.queries_per_month / 10_000 * CLOUDFRONT_USD_PER_10K_HTTPS
            + w.queries_per_month * 0.00001 * CLOUDFRONT_USD_PER_GB, "AWS: $0.01/10K HTTPS + $0.085/GB")
    download_gb = w.downloads_per_month * w.mb_per_document / 1024
    if tier.storage.cloudfront_downloads:  # S3 to CloudFront is free; CloudFront's egress replaces S3's
        add("Data Transfer (PDFs via CloudFront)", download_gb * CLOUDFRONT_USD_PER_GB
            + w.downloads_per_month / 10_000 * CLOUDFRONT_USD_PER_10K_HTTPS, "AWS: $0.085/GB + $0.01/10K HTTPS")
    else:
        add("Data Transfer", download_gb * DATA_TRANSFER_OUT_USD_PER_GB, "seed: $0.09/GB out")
    if tier.storage.replicate:
        new_gb = w.new_documents_per_month * w.mb_per_document / 1024
        add(f"S3 replica ({gb:,.0f} GB + {new_gb:,.0f} GB/month replicated)",
            gb * S3_STANDARD_USD_PER_GB + new_gb * S3_REPLICATION_USD_PER_GB, "AWS: $0.023/GB + $0.02/GB transfer")
    add("CloudWatch (logs, alarms, dashboard)", w.log_gb * CLOUDWATCH_LOGS_USD_PER_GB + 12 * ALARM_USD_PER_MONTH
        + DASHBOARD_USD_PER_MONTH, "AWS: $0.50/GB logs, $0.10/alarm, $3/dashboard")
    assumptions = (
        f"{w.documents:,} documents of {w.mb_per_document:g} MB ({tier.seed_scale}; seed's Cost Analysis scenario)",
        f"{w.new_documents_per_month:,} new documents/month of {w.pages_per_document} pages, ingested at "
        f"{w.ingest_pages_per_s:g} pages/s per function",
        f"{w.queries_per_month:,} queries/month at {w.query_ms:g} ms warm; {w.downloads_per_month:,} downloads/month",
        "us-east-1 on-demand list prices, 730 h/month; no free tier, reserved instances or savings plans",
        "seed prices kept as the seed states them (RDS, Redis, Pinecone); the seed's EC2/ECS line is replaced "
        "by Lambda, API Gateway and SQS",
        "not included: Bedrock tokens (answers are extractive unless QUERIO_BEDROCK_MODEL_ID is set), "
        "Cognito beyond its free 10K monthly active users, S3 Glacier retrievals",
    )
    return CostEstimate(tier=tier.name, lines=tuple(lines), assumptions=assumptions)
