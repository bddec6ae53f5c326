"""The stacks, split by lifecycle, and :func:`build` which wires them for one tier.

=============  =====================================================  ==========================
stack          holds                                                   changes when
=============  =====================================================  ==========================
Network        VPC, subnets, endpoints, flow logs                      almost never
Stateful       PDF bucket, ingest queue + DLQ, RDS, Redis, Cognito,    rarely; RETAIN/SNAPSHOT
               Pinecone secret
Compute        layers, functions, SQS event source, archive schedule,  every code change
               schema migrations
Api            HTTP API, JWT authorizer, stage                         routes or auth change
Edge           (enterprise) CloudFront + WAF, pinned to us-east-1      WAF rules change
Monitoring     alarms, SNS topic, dashboard                            thresholds change
=============  =====================================================  ==========================

A code deploy touches only Compute; tearing Compute down never touches data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import App, CfnOutput, Environment, Stack, Tags
from constructs import Construct

from querio.tiers import Tier
from stacks.api import HttpApi
from stacks.archive import ArchiveSchedule
from stacks.auth import UserPool
from stacks.cache import Cache
from stacks.compute import Functions, RuntimeResources
from stacks.database import Database
from stacks.edge import WafFrontDoor
from stacks.ingest import IngestEvents
from stacks.migrations import SchemaMigrations
from stacks.monitoring import Monitoring
from stacks.network import Network
from stacks.storage import DocumentBucket, IngestQueue, notify_ingest
from stacks.vectors import PineconeConfig


@dataclass(frozen=True)
class AppOptions:
    """Everything ``app.py`` reads from ``-c`` context besides the tier."""

    stage: str = ""  # -c env=prod → stacks named prod-Querio-*
    region: str | None = None
    account: str | None = None
    cors_origins: list[str] = field(default_factory=lambda: ["*"])
    alarm_email: str | None = None
    pinecone_index: str = "querio"
    bedrock_model_id: str | None = None


class NetworkStack(Stack):
    def __init__(self, scope: Construct, id: str, *, tier: Tier, **kwargs: object) -> None:
        super().__init__(scope, id, **kwargs)  # type: ignore[arg-type]
        self.network = Network(self, "Network", tier=tier)


class StatefulStack(Stack):
    def __init__(self, scope: Construct, id: str, *, tier: Tier, network: Network, opts: AppOptions,
                 **kwargs: object) -> None:
        super().__init__(scope, id, **kwargs)  # type: ignore[arg-type]
        self.documents = DocumentBucket(self, "Documents", tier=tier, cors_origins=opts.cors_origins,
                                        stage=opts.stage)
        self.ingest_queue = IngestQueue(self, "IngestQueue", tier=tier)
        notify_ingest(self.documents.bucket, self.ingest_queue.queue)
        self.database = Database(self, "Database", tier=tier, network=network)
        self.cache = Cache(self, "Cache", tier=tier, network=network)
        self.users = UserPool(self, "Users", tier=tier)
        self.pinecone = (PineconeConfig(self, "Pinecone", index_name=opts.pinecone_index)
                         if tier.vector_backend == "pinecone" else None)
        CfnOutput(self, "BucketName", value=self.documents.bucket.bucket_name)
        CfnOutput(self, "UserPoolId", value=self.users.pool.user_pool_id)
        CfnOutput(self, "UserPoolClientId", value=self.users.client.user_pool_client_id)
        if self.pinecone:
            CfnOutput(self, "PineconeSecretArn", value=self.pinecone.secret.secret_arn,
                      description="put the Pinecone API key here (README: Deploy)")


class ComputeStack(Stack):
    def __init__(self, scope: Construct, id: str, *, tier: Tier, network: Network, stateful: StatefulStack,
                 opts: AppOptions, **kwargs: object) -> None:
        super().__init__(scope, id, **kwargs)  # type: ignore[arg-type]
        pinecone = stateful.pinecone
        res = RuntimeResources(
            stage=opts.stage, queue=stateful.ingest_queue.queue,
            database_secret=stateful.database.secret, redis_url=stateful.cache.url,
            redis_auth_secret=stateful.cache.auth_secret, redis_cluster=stateful.cache.cluster_mode,
            pinecone_secret=pinecone.secret if pinecone else None,
            pinecone_index=pinecone.index_name if pinecone else None,
            bedrock_model_id=opts.bedrock_model_id,
        )
        self.functions = Functions(self, "Functions", tier=tier, network=network, res=res)
        IngestEvents(self, "IngestEvents", tier=tier, function=self.functions.ingest, queue=res.queue)
        self.archive = ArchiveSchedule(self, "ArchiveSchedule", tier=tier, function=self.functions.archive)
        self.migrations = SchemaMigrations(self, "Migrations", function=self.functions.migrate)


class ApiStack(Stack):
    def __init__(self, scope: Construct, id: str, *, tier: Tier, compute: ComputeStack, stateful: StatefulStack,
                 opts: AppOptions, **kwargs: object) -> None:
        super().__init__(scope, id, **kwargs)  # type: ignore[arg-type]
        self.http = HttpApi(self, "Http", tier=tier, function=compute.functions.query,
                            user_pool=stateful.users.pool, client=stateful.users.client,
                            cors_origins=opts.cors_origins)
        CfnOutput(self, "ApiUrl", value=self.http.url)


class EdgeStack(Stack):
    def __init__(self, scope: Construct, id: str, *, tier: Tier, api: ApiStack, **kwargs: object) -> None:
        super().__init__(scope, id, **kwargs)  # type: ignore[arg-type]
        self.front_door = WafFrontDoor(self, "FrontDoor", tier=tier, api_endpoint=api.http.url)
        CfnOutput(self, "Url", value=f"https://{self.front_door.distribution.distribution_domain_name}")


class MonitoringStack(Stack):
    def __init__(self, scope: Construct, id: str, *, tier: Tier, stateful: StatefulStack, compute: ComputeStack,
                 api: ApiStack, opts: AppOptions, **kwargs: object) -> None:
        super().__init__(scope, id, **kwargs)  # type: ignore[arg-type]
        f = compute.functions
        self.monitoring = Monitoring(
            self, "Monitoring", tier=tier,
            functions={"Ingest": f.ingest, "Query": f.query, "Archive": f.archive},
            dlqs={"Ingest": stateful.ingest_queue.dlq, "Archive": compute.archive.dlq},
            api=api.http.api, database=stateful.database.instance, alarm_email=opts.alarm_email)


@dataclass
class QuerioStacks:
    network: NetworkStack
    stateful: StatefulStack
    compute: ComputeStack
    api: ApiStack
    monitoring: MonitoringStack
    edge: EdgeStack | None

    def all(self) -> list[Stack]:
        stacks: list[Stack] = [self.network, self.stateful, self.compute, self.api, self.monitoring]
        return stacks + ([self.edge] if self.edge else [])


def build(app: App, tier: Tier, opts: AppOptions) -> QuerioStacks:
    """Add the tier's stacks to ``app``. Edge (WAF) only where ``tier.api.waf``."""
    prefix = f"{opts.stage}-" if opts.stage else ""
    region = opts.region
    if tier.api.waf and not region:
        region = "us-east-1"  # CloudFront-scope WAF lives there; keep the whole app beside it
    env = Environment(account=opts.account, region=region) if (region or opts.account) else None
    common = {"env": env, "cross_region_references": bool(tier.api.waf and region and region != "us-east-1")}

    def name(part: str) -> str:
        return f"{prefix}Querio-{part}"

    network = NetworkStack(app, name("Network"), tier=tier, description=f"Querio network ({tier.name})", **common)
    stateful = StatefulStack(app, name("Stateful"), tier=tier, network=network.network, opts=opts,
                             description=f"Querio data: S3, SQS, RDS, Redis, Cognito ({tier.name})",
                             termination_protection=tier.database.deletion_protection, **common)
    compute = ComputeStack(app, name("Compute"), tier=tier, network=network.network, stateful=stateful, opts=opts,
                           description=f"Querio functions ({tier.name})", **common)
    api = ApiStack(app, name("Api"), tier=tier, compute=compute, stateful=stateful, opts=opts,
                   description=f"Querio HTTP API ({tier.name})", **common)
    monitoring = MonitoringStack(app, name("Monitoring"), tier=tier, stateful=stateful, compute=compute, api=api,
                                 opts=opts, description=f"Querio alarms and dashboard ({tier.name})", **common)
    edge = None
    if tier.api.waf:
        edge_env = Environment(account=opts.account, region="us-east-1")
        edge = EdgeStack(app, name("Edge"), tier=tier, api=api, env=edge_env,
                         cross_region_references=common["cross_region_references"],
                         description=f"Querio CloudFront + WAF in front of the API ({tier.name})")
    stacks = QuerioStacks(network, stateful, compute, api, monitoring, edge)
    for stack in stacks.all():
        Tags.of(stack).add("app", "querio")
        Tags.of(stack).add("tier", tier.name)
        if opts.stage:
            Tags.of(stack).add("stage", opts.stage)
    return stacks
