"""The Lambda functions and their layers: ingest (SQS), query (HTTP API), archive (schedule)
and migrate (deploy-time custom resource). One construct per function; shared settings here.

Every function: Python 3.14 on x86_64, in the VPC's app subnets, X-Ray active tracing, its
own log group with the tier's retention, explicit least-privilege statements (no wildcard
actions), configuration only through ``QUERIO_*`` environment variables that
``querio.config.Settings`` validates at cold start.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from querio.config import env_name
from querio.tiers import LAMBDA_REQUEST_FILE_BYTES, FunctionTier, Tier
from stacks import bundling
from stacks.auth import TENANT_CLAIM
from stacks.custom_resources import VPC_POLICY
from stacks.delivery import DeliverySettings
from stacks.fulltext import FulltextDomain
from stacks.nag import acknowledge
from stacks.network import Network
from stacks.storage import TENANT_PREFIX, bucket_name, bucket_name_as_nag_prints_it

#: Where the model layer's files land in the function (``/opt`` + the layer's ``model/``).
MODEL_DIR = "/opt/model"

_LOG_RETENTION = {30: logs.RetentionDays.ONE_MONTH, 90: logs.RetentionDays.THREE_MONTHS,
                  365: logs.RetentionDays.ONE_YEAR}


@dataclass(frozen=True)
class RuntimeResources:
    """What the functions are configured with (all from the stateful stack)."""

    stage: str
    queue: sqs.IQueue
    database_secret: secretsmanager.ISecret
    redis_url: str
    redis_auth_secret: secretsmanager.ISecret
    redis_cluster: bool
    pinecone_secret: secretsmanager.ISecret | None = None
    pinecone_index: str | None = None
    pinecone_namespace_prefix: str = "tenant-"
    bedrock_model_id: str | None = None
    pdf_delivery: DeliverySettings | None = None  # mid/enterprise: CloudFront signed download URLs
    fulltext: FulltextDomain | None = None  # enterprise: the OpenSearch domain (full text)
    opensearch_index_prefix: str = "querio-chunks"


class Layers(Construct):
    """The three layers (see ``stacks.bundling``): dependencies, the querio runtime, the model."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        arch = [lambda_.Architecture.X86_64]
        runtimes = [bundling.RUNTIME]
        self.dependencies = lambda_.LayerVersion(
            self, "Dependencies", code=bundling.dependencies_code(), compatible_runtimes=runtimes,
            compatible_architectures=arch, description="Querio third-party packages (manylinux wheels)")
        self.runtime = lambda_.LayerVersion(
            self, "Runtime", code=bundling.runtime_code(), compatible_runtimes=runtimes,
            compatible_architectures=arch, description="The querio runtime package")
        self.model = lambda_.LayerVersion(
            self, "Model", code=bundling.model_code(), compatible_runtimes=runtimes,
            compatible_architectures=arch,
            description=f"all-MiniLM-L6-v2 as ONNX ({bundling.MODEL_PRECISION} embeddings) for ONNX Runtime")

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        return [self.dependencies, self.runtime, self.model]


def environment(tier: Tier, res: RuntimeResources) -> dict[str, str]:
    """The settings every function shares (names: ``querio.config.Settings``)."""
    env = {
        "POWERTOOLS_SERVICE_NAME": "querio",
        "POWERTOOLS_METRICS_NAMESPACE": "Querio",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "HF_HUB_OFFLINE": "1",
        "QUERIO_TIER": tier.name,
        "QUERIO_BLOB_BACKEND": "s3",
        "QUERIO_S3_BUCKET": bucket_name(res.stage),
        "QUERIO_DATABASE_SECRET_ARN": res.database_secret.secret_arn,
        "REDIS_URL": res.redis_url,
        "QUERIO_REDIS_AUTH_SECRET_ARN": res.redis_auth_secret.secret_arn,
        "QUERIO_REDIS_CLUSTER": "true" if res.redis_cluster else "false",
        "QUERIO_EMBEDDER": "onnx",
        "QUERIO_MODEL_DIR": MODEL_DIR,
        "QUERIO_INGEST_QUEUE_URL": res.queue.queue_url,
        "QUERIO_RATE_LIMIT_PER_MINUTE": str(tier.api.rate_limit_per_minute),
        "QUERIO_ARCHIVE_AFTER_DAYS": str(tier.archive.archive_after_days),
        "QUERIO_PURGE_AFTER_DAYS": str(tier.archive.purge_after_days),
        "QUERIO_VECTOR_BACKEND": tier.vector_backend,
    }
    if tier.vector_backend == "pinecone":
        if res.pinecone_secret is None or not res.pinecone_index:
            raise ValueError(f"the {tier.name} tier uses Pinecone: a key secret and an index name are required")
        env.update({"QUERIO_PINECONE_API_KEY_SECRET_ARN": res.pinecone_secret.secret_arn,
                    "QUERIO_PINECONE_INDEX": res.pinecone_index,
                    "QUERIO_PINECONE_NAMESPACE_PREFIX": res.pinecone_namespace_prefix})
    env[env_name("fulltext_backend")] = tier.fulltext_backend
    if tier.fulltext_backend == "opensearch":
        if res.fulltext is None:
            raise ValueError(f"the {tier.name} tier keeps full text in OpenSearch: a domain is required")
        env.update({env_name("opensearch_url"): res.fulltext.url,
                    env_name("opensearch_index_prefix"): res.opensearch_index_prefix})
    if res.bedrock_model_id:
        env["QUERIO_BEDROCK_MODEL_ID"] = res.bedrock_model_id
    env.update(res.pdf_delivery.environment() if res.pdf_delivery else {env_name("download_urls"): "s3"})
    return env


class QuerioFunction(Construct):
    """One function: its role (VPC access + explicit statements), log group and settings."""

    def __init__(self, scope: Construct, id: str, *, name: str, handler: str, size: FunctionTier, tier: Tier,
                 network: Network, layers: Layers, env: dict[str, str], description: str) -> None:
        super().__init__(scope, id)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description=f"Querio {name} function",
                             managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(VPC_POLICY)])
        acknowledge(self.role, f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{VPC_POLICY}]",
                    "AWS's minimal policy for a VPC function: CloudWatch Logs plus the ENI actions Lambda needs; "
                    "those EC2 actions only work on Resource '*'.")
        self.log_group = logs.LogGroup(self, "Logs", retention=_LOG_RETENTION[tier.log_retention_days],
                                       removal_policy=RemovalPolicy.DESTROY)
        self.function = lambda_.Function(
            self, "Function", runtime=bundling.RUNTIME, architecture=lambda_.Architecture.X86_64,
            code=bundling.function_code(name), handler=handler, layers=layers.all, role=self.role,
            memory_size=size.memory_mb, timeout=Duration.seconds(size.timeout_s),
            reserved_concurrent_executions=size.reserved_concurrency, environment=env,
            vpc=network.vpc, vpc_subnets=network.app_subnets, security_groups=[network.functions_sg],
            tracing=lambda_.Tracing.ACTIVE, log_group=self.log_group, description=description,
        )
        acknowledge(self._default_policy(), "AwsSolutions-IAM5[Resource::*]",
                    "Active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords support no resource "
                    "scoping (AWS documents Resource '*' for them); nothing else in this policy uses '*'.")

    def allow(self, actions: list[str], resources: list[str]) -> None:
        self.role.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=resources))

    def read_secrets(self, *secrets: secretsmanager.ISecret | None) -> None:
        arns = [s.secret_arn for s in secrets if s is not None]
        self.allow(["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], arns)

    def use_tenant_objects(self, stage: str, actions: list[str]) -> None:
        """``actions`` on ``tenants/*`` objects only, plus ListBucket (so a missing key is a 404, not a 403)."""
        bucket_arn = f"arn:{Aws.PARTITION}:s3:::{bucket_name(stage)}"
        self.allow(actions, [f"{bucket_arn}/{TENANT_PREFIX}*"])
        self.allow(["s3:ListBucket"], [bucket_arn])
        acknowledge(self._default_policy(),
                    f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket_name_as_nag_prints_it(stage)}"
                    f"/{TENANT_PREFIX}*]",
                    "Objects are per tenant and created at run time (tenants/{tenant}/uploads/...); the key "
                    "prefix is the narrowest static scope, and the runtime checks the tenant on every key.")

    def _default_policy(self) -> Construct:
        policy = self.role.node.try_find_child("DefaultPolicy")
        assert policy is not None, "add a statement first"
        return policy  # type: ignore[return-value]


class Functions(Construct):
    """``ingest``, ``query``, ``archive`` and ``migrate`` with their permissions."""

    def __init__(self, scope: Construct, id: str, *, tier: Tier, network: Network, res: RuntimeResources) -> None:
        super().__init__(scope, id)
        self.layers = Layers(self, "Layers")
        env = environment(tier, res)
        secrets = (res.database_secret, res.redis_auth_secret, res.pinecone_secret)

        def fn(cid: str, name: str, handler: str, size: FunctionTier, description: str) -> QuerioFunction:
            f = QuerioFunction(self, cid, name=name, handler=handler, size=size, tier=tier, network=network,
                               layers=self.layers, env=env, description=description)
            f.read_secrets(*secrets)
            return f

        self.ingest = fn("Ingest", "ingest", "handler.lambda_handler", tier.ingest_function,
                         "S3 notifications (via SQS) -> parse, chunk, embed, store")
        self.ingest.use_tenant_objects(res.stage, ["s3:GetObject", "s3:GetObjectAttributes", "s3:PutObject",
                                                    "s3:DeleteObject"])
        self.ingest.allow(["sqs:SendMessage"], [res.queue.queue_arn])  # page-range work items

        self.query = fn("Query", "query", "handler.handler", tier.query_function,
                        "HTTP API: documents, search, query, chat, stats")
        self.query.use_tenant_objects(res.stage, ["s3:GetObject", "s3:GetObjectAttributes", "s3:PutObject",
                                                   "s3:DeleteObject", "s3:RestoreObject"])
        # Identity and the request-body limit concern the HTTP API only (Lambda's 6 MB invoke payload).
        self.query.function.add_environment(env_name("tenant_claim"), TENANT_CLAIM)
        self.query.function.add_environment(env_name("max_request_file_bytes"), str(LAMBDA_REQUEST_FILE_BYTES))
        if res.pdf_delivery:
            self.query.read_secrets(res.pdf_delivery.private_key_secret)
        if res.bedrock_model_id:
            self.query.allow(["bedrock:InvokeModel"],
                             [f"arn:aws:bedrock:*::foundation-model/{res.bedrock_model_id}"])

        self.archive = fn("Archive", "archive", "handler.lambda_handler", tier.archive_function,
                          "Daily: cold documents to GLACIER, purge soft-deleted ones")
        self.archive.use_tenant_objects(res.stage, ["s3:GetObject", "s3:GetObjectAttributes", "s3:PutObject",
                                                     "s3:DeleteObject"])

        if res.fulltext is not None:  # index, search, and delete/reprocess (archive purges) follow PostgreSQL
            searchers = (self.ingest, self.query, self.archive)
            for f in searchers:
                res.fulltext.grant(f.role, f._default_policy())
            # IAM is half of it: fine-grained access control admits the roles once they are mapped
            mapping = res.fulltext.map_granted_roles(self, index_prefix=res.opensearch_index_prefix)
            for f in searchers:  # so no queued message meets a 403 on the first deploy
                f.function.node.add_dependency(mapping)

        self.migrate = QuerioFunction(self, "Migrate", name="migrate", handler="handler.on_event",
                                      size=FunctionTier(memory_mb=512, timeout_s=300, reserved_concurrency=None),
                                      tier=tier, network=network, layers=self.layers, env=env,
                                      description="Deploy time: apply the schema migrations")
        self.migrate.read_secrets(res.database_secret)
