"""Settings from the environment, validated once at start-up (cold start for Lambda).

Every variable is prefixed ``QUERIO_`` except ``REDIS_URL``, the conventional name.
A missing or invalid setting raises :class:`~querio.errors.ConfigurationError` naming it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from querio.errors import ConfigurationError


class Settings(BaseSettings):
    """Runtime settings. Defaults give the embedded local stack."""

    model_config = SettingsConfigDict(env_prefix="QUERIO_", extra="ignore", frozen=True)

    # where embedded data lives (blobs, the private PostgreSQL cluster)
    data_dir: Path = Field(default=Path(".querio"), description="embedded data directory")

    # storage backends ------------------------------------------------------------------------
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL DSN with pgvector; unset = start a private server under data_dir",
    )
    blob_backend: Literal["filesystem", "s3"] = "filesystem"
    vector_backend: Literal["pgvector", "pinecone"] = Field(
        default="pgvector",
        description="which store answers vector queries; vectors stay in PostgreSQL too (issue 5)",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "QUERIO_REDIS_URL"),
        description="redis:// or rediss:// (TLS, ElastiCache); unset = in-process cache",
    )
    redis_auth_secret_arn: str | None = Field(
        default=None, description="Secrets Manager secret holding the Redis AUTH token (ElastiCache); read at start-up"
    )
    redis_cluster: bool = Field(default=False, description="Redis cluster mode (the enterprise tier's ElastiCache)")
    tier: str | None = Field(default=None, description="deployment tier (small | mid | enterprise), set by the CDK app")

    # ingestion -----------------------------------------------------------------------------------
    # ~1000 characters is the seed's "balanced" size and roughly what all-MiniLM-L6-v2 sees
    # (256 word pieces): chunks are also capped in tokens so no text goes un-embedded.
    chunk_size: int = Field(default=1000, ge=200, le=8000, description="max characters per chunk")
    chunk_overlap: int = Field(default=150, ge=0, le=2000, description="characters shared by neighbours")
    embed_batch_size: int = Field(default=16, ge=1, le=512)
    embedder: Literal["auto", "onnx", "torch"] = Field(
        default="auto",
        description="auto = ONNX Runtime when a model dir is set or an export is cached (else exported"
        " once from the torch model when torch is installed), else sentence-transformers on torch",
    )
    model_dir: Path | None = Field(
        default=None, description="ONNX model directory (model.onnx + tokenizer.json), e.g. /opt/model in Lambda"
    )
    model_precision: Literal["fp32", "fp16", "int8", "qint8"] = Field(
        default="qint8",
        description="which cached export auto/onnx use when model_dir is unset (the Lambda layer ships the same);"
        " qint8 = int8 MatMuls, ~1.8x the fp32 ingest throughput at the same recall (README: Embeddings)",
    )
    max_file_bytes: int = Field(default=100 * 1024 * 1024, ge=1, description="reject larger uploads (bytes)")
    max_pages: int = Field(default=5000, ge=1)

    # retrieval ---------------------------------------------------------------------------------------
    hybrid_alpha: float = Field(
        default=0.5, ge=0.0, le=1.0, description="vector weight in RRF fusion (the seed's alpha)"
    )
    rrf_k: int = Field(default=60, ge=1, description="RRF constant (Cormack et al. 2009 use 60)")
    candidate_multiplier: int = Field(default=4, ge=1, le=20, description="each retriever returns k*this")
    hnsw_ef_search: int = Field(default=100, ge=10, le=1000)
    exact_scan_max_rows: int = Field(
        default=20_000, ge=0,
        description="tenants with at most this many chunks and no own index, and filters keeping at most this many,"
                    " get an exact (not HNSW) vector scan",
    )
    tenant_index_min_rows: int = Field(
        default=5_000, ge=0,
        description="a tenant with more chunks gets its own (partial) HNSW index after an ingest; 0 = never",
    )
    text_budget: int = Field(
        default=20_000, ge=0, le=10_000_000,
        description="BM25: postings of the query's rarest lexemes read whole (rarest first, while they fit)",
    )
    text_depth: int = Field(
        default=200, ge=10, le=100_000,
        description="BM25: postings read from each other query lexeme, best first",
    )

    # caching --------------------------------------------------------------------------------------------
    embedding_cache_ttl_s: int = Field(default=86_400, ge=0, description="the seed's 24 h")
    result_cache: bool = True
    corpus_version_ttl_s: float = Field(
        default=5.0, ge=0.0, le=300.0,
        description="seconds a process reuses a tenant's corpus version (PostgreSQL) in result-cache keys",
    )

    # AWS (the serverless runtime; issue 3) ---------------------------------------------------------------
    s3_bucket: str | None = Field(default=None, description="PDF bucket (required when blob_backend=s3)")
    database_secret_arn: str | None = Field(
        default=None, description="Secrets Manager secret with RDS credentials (host, port, username, password, dbname)"
    )
    ingest_queue_url: str | None = Field(default=None, description="SQS queue for re-enqueued page-range work items")
    bedrock_model_id: str | None = Field(default=None, description="Bedrock model id; unset = extractive answers")
    rate_limit_per_minute: int = Field(default=120, ge=0, description="requests per user per minute; 0 = off")
    archive_after_days: int = Field(default=365, ge=1, description="days without access before GLACIER (seed: 365)")
    purge_after_days: int = Field(default=30, ge=0, description="days a soft-deleted document is kept before purge")
    pages_per_part: int = Field(default=200, ge=10, description="pages per ingest work item for large PDFs")

    # PDF download URLs (issue 14): S3 presigned, or CloudFront signed (mid and enterprise) ----------------
    download_urls: Literal["s3", "cloudfront"] = Field(
        default="s3", description="s3 = presigned S3 GETs; cloudfront = CloudFront signed URLs (canned policy)"
    )
    cloudfront_domain: str | None = Field(default=None, description="the PDF distribution's domain name")
    cloudfront_key_pair_id: str | None = Field(default=None, description="CloudFront public key id (key group)")
    cloudfront_private_key_secret_arn: str | None = Field(
        default=None, description="Secrets Manager secret holding the RSA private key (PEM) that signs URLs"
    )

    # Pinecone (issue 5; see querio.adapters.pinecone_vectors and querio.vectors) ---------------------------
    pinecone_api_key: SecretStr | None = Field(default=None, description="Pinecone API key")
    pinecone_api_key_secret_arn: str | None = Field(
        default=None, description='Secrets Manager secret holding the key (plain, or JSON {"apiKey": ...})'
    )
    pinecone_index: str | None = Field(default=None, description="Pinecone index (384-d, cosine)")
    pinecone_host: str | None = Field(
        default=None, description="control- and data-plane host override (a gateway, the local stand-in)"
    )
    pinecone_namespace_prefix: str = Field(
        default="tenant-", max_length=300, description="namespace of tenant T is PREFIX + T"
    )
    vector_shadow: bool = Field(
        default=False,
        description="write vectors to both stores and query both, logging their agreement (serve per vector_backend)",
    )
    vector_shadow_sample_rate: float = Field(
        default=1.0, ge=0.0, le=1.0, description="share of queries also sent to the shadow store"
    )

    # full text (issue 15; see querio.adapters.opensearch and querio.fulltext) ---------------------------
    fulltext_backend: Literal["postgres", "opensearch"] = Field(
        default="postgres",
        description="which engine answers the full-text leg (issue 15); PostgreSQL stays the system of record")
    opensearch_url: str | None = Field(
        default=None, description="OpenSearch endpoint (https://...); required when QUERIO_FULLTEXT_BACKEND=opensearch")
    opensearch_index_prefix: str = Field(
        default="querio-chunks", max_length=100, description="prefix of the full-text index name(s)")

    # identity and request limits (the HTTP API) ------------------------------------------------------
    tenant_claim: str = Field(
        default="custom:tenant_id", min_length=1, max_length=128,
        description="JWT claim naming the caller's tenant (Cognito custom attribute by default; pools differ)",
    )
    personal_workspaces: bool = Field(
        default=True,
        description="a token without the tenant claim works in the user's own workspace (u~<digest of sub>);"
        " false = the tenant claim is required (403 without it)",
    )
    max_request_file_bytes: int | None = Field(
        default=None, ge=1,
        description="largest file POST /api/documents takes in the request itself (Lambda: the invoke"
        " payload limit, set by the CDK app); unset = QUERIO_MAX_FILE_BYTES. Larger files go through"
        " POST /api/documents/upload-url",
    )

    # local server ----------------------------------------------------------------------------------------
    local_tenant: str = Field(default="local", description="tenant used by the CLI and `querio serve`")

    @field_validator("tier")
    @classmethod
    def _known_tier(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from querio.tiers import get_tier

        return get_tier(value).name  # UnknownTier (a ValueError) lists the valid tiers

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("QUERIO_CHUNK_OVERLAP must be smaller than QUERIO_CHUNK_SIZE")
        if self.download_urls == "cloudfront":
            missing = [env_name(f) for f in ("cloudfront_domain", "cloudfront_key_pair_id",
                                             "cloudfront_private_key_secret_arn") if not getattr(self, f)]
            if missing:
                raise ValueError(f"{', '.join(missing)} required when QUERIO_DOWNLOAD_URLS=cloudfront")
            if self.blob_backend != "s3":
                raise ValueError("QUERIO_DOWNLOAD_URLS=cloudfront serves the S3 bucket: set QUERIO_BLOB_BACKEND=s3")
        if self.uses_pinecone:
            if not self.pinecone_index:
                raise ValueError("QUERIO_PINECONE_INDEX is required when QUERIO_VECTOR_BACKEND=pinecone"
                                 " or QUERIO_VECTOR_SHADOW=true")
            if self.pinecone_api_key is None and not self.pinecone_api_key_secret_arn:
                raise ValueError("QUERIO_PINECONE_API_KEY or QUERIO_PINECONE_API_KEY_SECRET_ARN is required when"
                                 " QUERIO_VECTOR_BACKEND=pinecone or QUERIO_VECTOR_SHADOW=true")
        if self.fulltext_backend == "opensearch" and not self.opensearch_url:
            raise ValueError("QUERIO_OPENSEARCH_URL is required when QUERIO_FULLTEXT_BACKEND=opensearch")
        return self

    @property
    def uses_pinecone(self) -> bool:
        """Whether queries or shadow queries reach Pinecone (then its settings are required)."""
        return self.vector_backend == "pinecone" or self.vector_shadow

    @property
    def request_file_limit(self) -> int:
        """Largest file an upload request may carry (never above ``max_file_bytes``)."""
        if self.max_request_file_bytes is None:
            return self.max_file_bytes
        return min(self.max_request_file_bytes, self.max_file_bytes)

    @property
    def embedded_database(self) -> bool:
        return not self.database_url

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def pg_dir(self) -> Path:
        return self.data_dir / "pg"


def env_name(field_name: str) -> str:
    """The environment variable that sets ``field_name`` (the CDK app names settings through this)."""
    info = Settings.model_fields.get(field_name)
    if info is None:
        raise KeyError(f"no setting {field_name!r}")
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"QUERIO_{field_name.upper()}"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment plus ``overrides``; fail with the variable's name."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "settings"
            name = loc if loc.isupper() else f"QUERIO_{loc.upper()}"
            problems.append(f"{name}: {err['msg']}")
        raise ConfigurationError("invalid settings: " + "; ".join(problems)) from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
