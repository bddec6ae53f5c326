"""Enterprise: full text on an Amazon OpenSearch Service domain (the seed's Elasticsearch cluster).

In the VPC's data subnets, one per AZ with zone awareness over the tier's AZs, three dedicated
masters, encrypted at rest and node to node, HTTPS only with TLS 1.2, fine-grained access
control whose master user is an IAM role (``MasterRole``: administrators assume it to manage
indexes and role mappings). The functions sign requests (SigV4) with their own roles, which get
``es:ESHttp*`` on this domain only (:meth:`FulltextDomain.grant`). Slow-search, slow-index and
error logs go to CloudWatch Logs through a resource policy written here (not aws-cdk-lib's
custom resource). Sizes: :class:`querio.tiers.OpenSearchTier`, from ``querio capacity``.

IAM alone does not let the functions in: fine-grained access control also needs an OpenSearch
security role mapped to their IAM roles. :meth:`FulltextDomain.map_granted_roles` makes that at
deploy time, a ``Custom::QuerioOpenSearchRoleMapping`` (``stacks/handlers/opensearch_security.py``)
whose function runs in the VPC, assumes ``MasterRole`` and PUTs the role :data:`FUNCTIONS_ROLE`
(:data:`CLUSTER_PERMISSIONS`, :data:`INDEX_ACTIONS` on the Querio index pattern) and its mapping
to every role :meth:`~FulltextDomain.grant` was given. The function and its provider live here,
beside ``MasterRole`` (whose trust policy names the function's role); the custom resource itself
lives where the roles are granted (the compute stack), so references only run compute -> stateful.
"""

from __future__ import annotations

from aws_cdk import Aws, CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_opensearchservice as opensearch
from constructs import Construct

from querio.tiers import Tier
from stacks.bundling import hash_files
from stacks.custom_resources import HANDLERS, handler_function, provider
from stacks.nag import acknowledge
from stacks.network import Network

#: AWS recommended alarms: FreeStorageSpace at or below 25% of a node's storage (the metric is in MiB).
FREE_STORAGE_ALARM_SHARE = 0.25
#: AWS recommended alarms: JVMMemoryPressure at or above 95% for three minutes.
JVM_PRESSURE_ALARM_PERCENT = 95

#: The OpenSearch security role the functions' IAM roles are mapped to (fine-grained access control).
FUNCTIONS_ROLE = "querio_functions"
#: Cluster-level actions of the adapter (``querio.adapters.opensearch``): ``_bulk`` is a cluster-level
#: entry point, and ``_delete_by_query`` scrolls; ``cluster_composite_ops`` is the documented group for
#: bulk, multi-get/search and scroll, and grants nothing on an index by itself (each item of a bulk or a
#: scroll is checked against the index permissions below).
CLUSTER_PERMISSIONS = ("cluster_composite_ops",)
#: Index-level actions on the Querio index pattern only: ``crud`` (search, count, bulk index and delete,
#: delete by query), ``create_index`` (create with settings and mapping), ``indices:admin/get`` (the
#: HEAD /{index} existence check) and ``indices:admin/refresh*``. Not ``manage``: it would let the
#: functions delete or close the index and change its settings.
INDEX_ACTIONS = ("crud", "create_index", "indices:admin/get", "indices:admin/refresh*")


def index_pattern(prefix: str) -> str:
    """The index permission's pattern: ``querio.adapters.opensearch.index_name`` is ``{prefix}-v{N}``,
    and a mapping change backfills ``v{N+1}`` beside ``v{N}``, so every version matches."""
    return f"{prefix}-v*"


class FulltextDomain(Construct):
    """``domain``, ``url`` (https://...), ``master_role``, ``security_group``, ``log_groups``,
    ``role_mapping_provider`` (the deploy-time role mapping's, see :meth:`map_granted_roles`)."""

    def __init__(self, scope: Construct, id: str, *, tier: Tier, network: Network, domain_name: str) -> None:
        super().__init__(scope, id)
        spec = tier.opensearch
        if spec is None or tier.fulltext_backend != "opensearch":
            raise ValueError(f"the {tier.name} tier keeps full text in PostgreSQL: no OpenSearch domain")
        self.security_group = ec2.SecurityGroup(self, "Sg", vpc=network.vpc, allow_all_outbound=False,
                                                description="Querio OpenSearch: functions only (HTTPS)")
        self.security_group.add_ingress_rule(network.functions_sg, ec2.Port.tcp(443), "functions to OpenSearch")
        if tier.nat_gateways == 0:  # the role-mapping function calls STS from the app subnets
            raise ValueError(f"the {tier.name} tier has no NAT gateway: the OpenSearch role mapping cannot reach STS")
        self.master_role = iam.Role(self, "MasterRole", assumed_by=iam.AccountRootPrincipal(),
                                    description="Querio OpenSearch fine-grained access master (administrators)")
        retention = logs.RetentionDays.ONE_YEAR if tier.log_retention_days >= 365 else logs.RetentionDays.THREE_MONTHS
        self.log_groups = {
            name: logs.LogGroup(self, f"{name}Logs", retention=retention, removal_policy=RemovalPolicy.RETAIN)
            for name in ("SlowSearch", "SlowIndex", "Error")
        }
        # One resource policy for the three groups, so aws-cdk-lib does not add its custom resource.
        document = iam.PolicyDocument(statements=[iam.PolicyStatement(
            principals=[iam.ServicePrincipal("es.amazonaws.com")],
            actions=["logs:PutLogEvents", "logs:CreateLogStream"],
            resources=[g.log_group_arn for g in self.log_groups.values()])])
        policy = logs.CfnResourcePolicy(self, "LogsPolicy", policy_name=f"querio-opensearch-{Aws.STACK_NAME}",
                                        policy_document=Stack.of(self).to_json_string(document.to_json()))
        self.domain_name = domain_name
        #: Built from the name, not the domain's attribute: the domain's own policy and the function roles in
        #: the compute stack name it without a reference (no cycle, one nag finding text everywhere).
        self.arn = f"arn:{Aws.PARTITION}:es:{Aws.REGION}:{Aws.ACCOUNT_ID}:domain/{domain_name}"
        self.domain = opensearch.Domain(
            self, "Domain", domain_name=domain_name, version=opensearch.EngineVersion.open_search(spec.engine_version),
            vpc=network.vpc, vpc_subnets=[ec2.SubnetSelection(subnet_group_name="data", one_per_az=True)],
            security_groups=[self.security_group],
            capacity=opensearch.CapacityConfig(
                data_nodes=spec.data_nodes, data_node_instance_type=spec.data_instance_type,
                master_nodes=spec.master_nodes, master_node_instance_type=spec.master_instance_type,
                multi_az_with_standby_enabled=False),
            zone_awareness=opensearch.ZoneAwarenessConfig(enabled=True,
                                                          availability_zone_count=tier.availability_zones),
            ebs=opensearch.EbsOptions(enabled=True, volume_size=spec.ebs_gib_per_node,
                                      volume_type=ec2.EbsDeviceVolumeType.GP3),
            encryption_at_rest=opensearch.EncryptionAtRestOptions(enabled=True),
            node_to_node_encryption=True, enforce_https=True,
            tls_security_policy=opensearch.TLSSecurityPolicy.TLS_1_2,
            fine_grained_access_control=opensearch.AdvancedSecurityOptions(
                master_user_arn=self.master_role.role_arn),
            logging=opensearch.LoggingOptions(
                slow_search_log_enabled=True, slow_search_log_group=self.log_groups["SlowSearch"],
                slow_index_log_enabled=True, slow_index_log_group=self.log_groups["SlowIndex"],
                app_log_enabled=True, app_log_group=self.log_groups["Error"]),
            suppress_logs_resource_policy=True,
            removal_policy=RemovalPolicy.RETAIN if tier.database.deletion_protection else RemovalPolicy.DESTROY,
        )
        self.domain.node.add_dependency(policy)
        # The domain's resource policy admits this account's IAM principals only; each role's own policy
        # (grant) and fine-grained access control's role mapping decide the rest. Set on the L1 resource:
        # aws-cdk-lib's add_access_policies would add a custom resource (a Lambda function) to do it.
        cfn = self.domain.node.default_child
        assert isinstance(cfn, opensearch.CfnDomain)
        cfn.access_policies = iam.PolicyDocument(statements=[iam.PolicyStatement(
            principals=[iam.AccountRootPrincipal()], actions=["es:ESHttp*"], resources=[f"{self.arn}/*"])]
        ).to_json()
        self.url = f"https://{self.domain.domain_endpoint}"
        acknowledge(self.domain, "AwsSolutions-OS3",
                    "The domain is in the VPC's isolated data subnets behind a security group that admits the "
                    "functions and the deploy-time role mapping only; an IP allowlist does not apply to a VPC "
                    "domain.")
        self._granted: list[iam.IRole] = []
        self._mapping: CustomResource | None = None
        self._role_mapping_provider(network)

    def _role_mapping_provider(self, network: Network) -> None:
        """The role-mapping function (app subnets, its own security group, HTTPS out only) and its provider;
        ``MasterRole`` trusts the function's role and may PUT the two security API paths it calls."""
        sg = ec2.SecurityGroup(self, "RoleMappingSg", vpc=network.vpc, allow_all_outbound=False,
                               description="Querio OpenSearch role mapping (deploy time): HTTPS out only")
        # HTTPS out only: the domain (in the VPC) and STS (through the tier's NAT gateways)
        sg.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to the domain and to STS")
        # (the domain group's description says "functions only": changing it would replace the group)
        self.security_group.add_ingress_rule(sg, ec2.Port.tcp(443), "role mapping to OpenSearch (deploy time)")
        fn = handler_function(self, "RoleMapping", module="opensearch_security",
                              description="Deploy time: map the functions' roles in OpenSearch fine-grained "
                                          "access control", vpc=network.vpc, subnets=network.app_subnets,
                              security_groups=[sg])
        assert fn.role is not None
        self.master_role.assume_role_policy.add_statements(  # type: ignore[union-attr]
            iam.PolicyStatement(actions=["sts:AssumeRole"], principals=[iam.ArnPrincipal(fn.role.role_arn)]))
        fn.add_to_role_policy(iam.PolicyStatement(actions=["sts:AssumeRole"],
                                                  resources=[self.master_role.role_arn]))
        # the domain's access policy defers to the caller's IAM policy: name the two paths, nothing else
        self.master_role.add_to_principal_policy(iam.PolicyStatement(
            actions=["es:ESHttpPut"],
            resources=[f"{self.arn}/_plugins/_security/api/{api}/{FUNCTIONS_ROLE}" for api in ("roles",
                                                                                              "rolesmapping")]))
        self.role_mapping_provider = provider(self, "RoleMappingProvider", on_event=fn)

    def grant(self, role: iam.Role, policy: Construct) -> None:
        """``es:ESHttp*`` on this domain for ``role`` (SigV4 with the function's role); ``policy`` is the
        role's default policy, where the one wildcard finding is acknowledged. :meth:`map_granted_roles`
        then maps ``role`` in fine-grained access control."""
        if self._mapping is not None:
            raise RuntimeError("grant every role before map_granted_roles: a later one would get 403")
        self._granted.append(role)
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut", "es:ESHttpDelete"],
            resources=[self.arn, f"{self.arn}/*"]))
        acknowledge(policy, f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:es:<AWS::Region>:<AWS::AccountId>:"
                            f"domain/{self.domain_name}/*]",
                    "HTTP paths under this one domain: per-tenant indexes are created at run time and _bulk and "
                    "_search are domain-level paths; fine-grained access control's role mapping narrows the "
                    "function roles to the index prefix.")

    def map_granted_roles(self, scope: Construct, *, index_prefix: str) -> CustomResource:
        """The ``Custom::QuerioOpenSearchRoleMapping`` in ``scope`` (where the roles live): the security role
        :data:`FUNCTIONS_ROLE` on ``{index_prefix}-v*`` mapped to every role granted so far. Re-run by
        CloudFormation whenever the roles, the permissions or the handler's code change."""
        if not self._granted:
            raise ValueError("no role was granted access to the domain: nothing to map")
        if self._mapping is not None:
            raise RuntimeError("the granted roles are mapped already (one mapping per domain)")
        self._mapping = CustomResource(
            scope, "OpenSearchRoleMapping", resource_type="Custom::QuerioOpenSearchRoleMapping",
            service_token=self.role_mapping_provider.service_token,
            properties={
                "Endpoint": self.domain.domain_endpoint, "Region": Aws.REGION,
                "MasterRoleArn": self.master_role.role_arn, "RoleName": FUNCTIONS_ROLE,
                "ClusterPermissions": list(CLUSTER_PERMISSIONS), "IndexActions": list(INDEX_ACTIONS),
                "IndexPatterns": [index_pattern(index_prefix)],
                "BackendRoles": [r.role_arn for r in self._granted],
                "HandlerHash": hash_files(HANDLERS / "opensearch_security.py"),
            })
        return self._mapping

    def alarm_metrics(self, tier: Tier) -> list[tuple[str, cw.Metric, float, str, cw.ComparisonOperator]]:
        """(name, metric, threshold, description, comparison) for the monitoring construct's alarms."""
        spec = tier.opensearch
        assert spec is not None
        minute = Duration.minutes(1)
        ge = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        return [
            ("OpenSearchClusterRed", self.domain.metric_cluster_status_red(period=minute, statistic="Maximum"), 1,
             "a primary shard is unassigned: some full text is not searchable", ge),
            ("OpenSearchClusterYellow",
             self.domain.metric_cluster_status_yellow(period=minute, statistic="Maximum"), 1,
             "a replica shard is unassigned: one more node loss would lose full text", ge),
            ("OpenSearchFreeStorage", self.domain.metric_free_storage_space(period=minute, statistic="Minimum"),
             spec.ebs_gib_per_node * 1024 * FREE_STORAGE_ALARM_SHARE,
             f"a data node has <= {FREE_STORAGE_ALARM_SHARE:.0%} of its storage free (MiB)",
             cw.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD),
            ("OpenSearchJvmPressure",
             self.domain.metric_jvm_memory_pressure(period=minute, statistic="Maximum"),
             JVM_PRESSURE_ALARM_PERCENT, "JVM memory pressure: the domain is near out-of-memory", ge),
        ]
