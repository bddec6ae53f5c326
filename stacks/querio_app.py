"""One top-level stack per tier (``Querio``, or ``<env>-Querio``), split by lifecycle into
nested stacks, and :func:`build` which wires them for one tier.

=============  =====================================================  ==========================
nested stack   holds                                                   changes when
=============  =====================================================  ==========================
Network        VPC, subnets, endpoints, flow logs                      almost never
Stateful       PDF bucket (+ enterprise replica), ingest queue + DLQ,  rarely; RETAIN/SNAPSHOT
               RDS, Redis, Cognito, Pinecone secret; mid/enterprise:
               the PDF CloudFront distribution and its signing key
Compute        layers, functions, SQS event source, archive schedule,  every code change
               schema migrations
Api            HTTP API, JWT authorizer, stage                         routes or auth change
Edge           (enterprise) CloudFront + WAF web ACL (us-east-1,       WAF rules change
               made by a custom resource)
Monitoring     alarms, SNS topic, dashboard                            thresholds change
=============  =====================================================  ==========================

Why one top-level stack: ``cdk deploy --context tier=small`` must work as typed, and the CDK
CLI only picks a stack by itself when the app has exactly one. Nested stacks keep the split by
lifecycle: CloudFormation updates a nested stack only when its template or parameters change, so
a code deploy updates the parent and Compute only, and data never sits in a stack a code change
touches. Cross-nested-stack references become parameters and outputs of the parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import App, CfnOutput, Environment, NestedStack, Stack, Tags
from constructs import Construct

from querio.tiers import Tier
from stacks.api import HttpApi
from stacks.archive import ArchiveSchedule
from stacks.auth import UserPool
from stacks.cache import Cache
from stacks.compute import Functions, RuntimeResources
from stacks.database import Database
from stacks.delivery import PdfDelivery
from stacks.edge import WafFrontDoor
from stacks.ingest import IngestEvents
from stacks.migrations import SchemaMigrations
from stacks.monitoring import Monitoring
from stacks.network import Network
from stacks.replication import PdfReplication
from stacks.storage import DocumentBucket, IngestQueue, notify_ingest
from stacks.vectors import PineconeConfig

#: The top-level stack's name (``-c env=prod`` prefixes it: ``prod-Querio``).
STACK_NAME = "Querio"


@dataclass(frozen=True)
class AppOptions:
    """Everything ``app.py`` reads from ``-c`` context besides the tier."""

    stage: str = ""  # -c env=prod → stack named prod-Querio
    region: str | None = None
    account: str | None = None
    cors_origins: list[str] = field(default_factory=lambda: ["*"])
    alarm_email: str | None = None
    pinecone_index: str = "querio"
    bedrock_model_id: str | None = None
    replica_region: str | None = None  # enterprise; None = the default for the primary region


class NetworkStack(NestedStack):
    def __init__(self, scope: Construct, id: str, *, tier: Tier, **kwargs: object) -> None:
        super().__init__(scope, id, **kwargs)  # type: ignore[arg-type]
        self.network = Network(self, "Network", tier=tier)


class StatefulStack(NestedStack):
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
        # beside the bucket: OAC's bucket-policy statement names the distribution, so in another
        # nested stack the bucket and the distribution would reference each other (a cycle)
        self.delivery = (PdfDelivery(self, "PdfDelivery", tier=tier, documents=self.documents)
                         if tier.storage.cloudfront_downloads else None)
        self.replication = (PdfReplication(self, "Replication", documents=self.documents, stage=opts.stage,
                                           replica_region=opts.replica_region)
                            if tier.storage.replicate else None)


class ComputeStack(NestedStack):
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
            pdf_delivery=stateful.delivery.settings if stateful.delivery else None,
        )
        self.functions = Functions(self, "Functions", tier=tier, network=network, res=res)
        IngestEvents(self, "IngestEvents", tier=tier, function=self.functions.ingest, queue=res.queue)
        self.archive = ArchiveSchedule(self, "ArchiveSchedule", tier=tier, function=self.functions.archive)
        self.migrations = SchemaMigrations(self, "Migrations", function=self.functions.migrate)


class ApiStack(NestedStack):
    def __init__(self, scope: Construct, id: str, *, tier: Tier, compute: ComputeStack, stateful: StatefulStack,
                 opts: AppOptions, **kwargs: object) -> None:
        super().__init__(scope, id, **kwargs)  # type: ignore[arg-type]
        self.http = HttpApi(self, "Http", tier=tier, function=compute.functions.query,
                            user_pool=stateful.users.pool, client=stateful.users.client,
                            cors_origins=opts.cors_origins)


class EdgeStack(NestedStack):
    def __init__(self, scope: Construct, id: str, *, tier: Tier, api: ApiStack, **kwargs: object) -> None:
        super().__init__(scope, id, **kwargs)  # type: ignore[arg-type]
        self.front_door = WafFrontDoor(self, "FrontDoor", tier=tier, api_endpoint=api.http.url)


class MonitoringStack(NestedStack):
    def __init__(self, scope: Construct, id: str, *, tier: Tier, stateful: StatefulStack, compute: ComputeStack,
                 api: ApiStack, opts: AppOptions, **kwargs: object) -> None:
        super().__init__(scope, id, **kwargs)  # type: ignore[arg-type]
        f = compute.functions
        self.monitoring = Monitoring(
            self, "Monitoring", tier=tier,
            functions={"Ingest": f.ingest, "Query": f.query, "Archive": f.archive},
            dlqs={"Ingest": stateful.ingest_queue.dlq, "Archive": compute.archive.dlq},
            api=api.http.api, database=stateful.database.instance, alarm_email=opts.alarm_email)


class QuerioStack(Stack):
    """The tier's one top-level stack; its nested stacks are attributes (``edge`` only where WAF)."""

    def __init__(self, scope: Construct, id: str, *, tier: Tier, opts: AppOptions, **kwargs: object) -> None:
        super().__init__(scope, id, **kwargs)  # type: ignore[arg-type]
        self.network = NetworkStack(self, "Network", tier=tier, description=f"Querio network ({tier.name})")
        net = self.network.network
        self.stateful = StatefulStack(self, "Stateful", tier=tier, network=net, opts=opts,
                                      description=f"Querio data: S3, SQS, RDS, Redis, Cognito ({tier.name})")
        self.compute = ComputeStack(self, "Compute", tier=tier, network=net, stateful=self.stateful, opts=opts,
                                    description=f"Querio functions ({tier.name})")
        self.api = ApiStack(self, "Api", tier=tier, compute=self.compute, stateful=self.stateful, opts=opts,
                            description=f"Querio HTTP API ({tier.name})")
        self.monitoring = MonitoringStack(self, "Monitoring", tier=tier, stateful=self.stateful,
                                          compute=self.compute, api=self.api, opts=opts,
                                          description=f"Querio alarms and dashboard ({tier.name})")
        self.edge = (EdgeStack(self, "Edge", tier=tier, api=self.api,
                               description=f"Querio CloudFront + WAF in front of the API ({tier.name})")
                     if tier.api.waf else None)

        st = self.stateful
        CfnOutput(self, "ApiUrl", value=self.api.http.url)
        CfnOutput(self, "BucketName", value=st.documents.bucket.bucket_name)
        CfnOutput(self, "UserPoolId", value=st.users.pool.user_pool_id)
        CfnOutput(self, "UserPoolClientId", value=st.users.client.user_pool_client_id)
        if st.pinecone:
            CfnOutput(self, "PineconeSecretArn", value=st.pinecone.secret.secret_arn,
                      description="put the Pinecone API key here (README: Deploy)")
        if st.delivery:
            CfnOutput(self, "PdfDomain", value=st.delivery.distribution.distribution_domain_name,
                      description="CloudFront domain that serves signed PDF download URLs")
        if st.replication:
            CfnOutput(self, "ReplicaBucket", value=st.replication.replica_bucket_name,
                      description="the PDF bucket's replica (README: reading from the replica)")
            CfnOutput(self, "ReplicaRegion", value=st.replication.replica_region)
        if self.edge:
            CfnOutput(self, "Url", value=f"https://{self.edge.front_door.distribution.distribution_domain_name}",
                      description="the API through CloudFront + WAF")

    @property
    def nested_stacks(self) -> dict[str, NestedStack]:
        """The nested stacks by short name (Network, Stateful, Compute, Api, Monitoring[, Edge])."""
        return {c.node.id: c for c in self.node.children if isinstance(c, NestedStack)}


def build(app: App, tier: Tier, opts: AppOptions) -> QuerioStack:
    """Add the tier's one stack to ``app``. Region: ``-c region``, else the CLI's default; an
    env-agnostic stack deploys to whatever region the credentials name (nothing here needs a
    concrete region at synth: the WAF and the replica are placed by custom resources)."""
    env = Environment(account=opts.account, region=opts.region) if (opts.region or opts.account) else None
    name = f"{opts.stage}-{STACK_NAME}" if opts.stage else STACK_NAME
    stack = QuerioStack(app, name, tier=tier, opts=opts, env=env,
                        description=f"Querio PDF retrieval backend ({tier.name} tier)",
                        termination_protection=tier.database.deletion_protection)
    Tags.of(stack).add("app", "querio")
    Tags.of(stack).add("tier", tier.name)
    if opts.stage:
        Tags.of(stack).add("stage", opts.stage)
    return stack
