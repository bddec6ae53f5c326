"""The enterprise OpenSearch domain (full text, issue 15) and its absence where PostgreSQL keeps full text."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from querio.config import env_name
from querio.tiers import TIERS, get_tier

pytestmark = pytest.mark.infrastructure

ALL = list(TIERS)


def resources(template: dict, type_: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def functions(synthesized, tier: str) -> dict[str, dict]:
    return {k: v for k, v in resources(synthesized[tier].templates["Compute"], "AWS::Lambda::Function").items()
            if k.startswith("Functions")}


@pytest.mark.parametrize("tier", ALL)
def test_a_domain_only_where_the_tier_keeps_full_text_in_opensearch(synthesized, tier: str) -> None:
    domains = [d for tpl in synthesized[tier].templates.values()
               for d in resources(tpl, "AWS::OpenSearchService::Domain").values()]
    assert len(domains) == (1 if get_tier(tier).fulltext_backend == "opensearch" else 0)
    assert (tier == "enterprise") == bool(domains)


def test_enterprise_domain_is_zone_aware_encrypted_https_only_fine_grained_and_logged(synthesized) -> None:
    spec = get_tier("enterprise").opensearch
    assert spec is not None
    t = synthesized["enterprise"].template("Stateful")
    t.has_resource_properties("AWS::OpenSearchService::Domain", {
        "EngineVersion": f"OpenSearch_{spec.engine_version}",
        "ClusterConfig": Match.object_like({
            "InstanceCount": spec.data_nodes, "InstanceType": spec.data_instance_type,
            "DedicatedMasterEnabled": True, "DedicatedMasterCount": 3, "DedicatedMasterType": spec.master_instance_type,
            "ZoneAwarenessEnabled": True,
            "ZoneAwarenessConfig": {"AvailabilityZoneCount": get_tier("enterprise").availability_zones}}),
        "EBSOptions": {"EBSEnabled": True, "VolumeSize": spec.ebs_gib_per_node, "VolumeType": "gp3"},
        "EncryptionAtRestOptions": {"Enabled": True},
        "NodeToNodeEncryptionOptions": {"Enabled": True},
        "DomainEndpointOptions": Match.object_like({"EnforceHTTPS": True,
                                                    "TLSSecurityPolicy": "Policy-Min-TLS-1-2-2019-07"}),
        "AdvancedSecurityOptions": Match.object_like({
            "Enabled": True, "InternalUserDatabaseEnabled": False,
            "MasterUserOptions": {"MasterUserARN": {"Fn::GetAtt": [Match.string_like_regexp("MasterRole"), "Arn"]}}}),
        "LogPublishingOptions": {key: Match.object_like({"Enabled": True})
                                 for key in ("SEARCH_SLOW_LOGS", "INDEX_SLOW_LOGS", "ES_APPLICATION_LOGS")},
        "VPCOptions": Match.object_like({"SubnetIds": Match.any_value()}),
    })
    (domain,) = resources(synthesized["enterprise"].templates["Stateful"], "AWS::OpenSearchService::Domain").values()
    # one subnet per AZ (zone awareness needs exactly as many subnets as AZs)
    assert len(domain["Properties"]["VPCOptions"]["SubnetIds"]) == get_tier("enterprise").availability_zones
    # the access policy admits this account's principals, never '*'
    statements = domain["Properties"]["AccessPolicies"]["Statement"]
    assert all(s["Principal"] != "*" and s["Principal"].get("AWS") != "*" for s in statements)
    # logs reach CloudWatch through a resource policy of our own: no aws-cdk-lib custom resource
    policy = next(iter(resources(synthesized["enterprise"].templates["Stateful"], "AWS::Logs::ResourcePolicy")
                       .values()))
    text = json.dumps(policy["Properties"]["PolicyDocument"])
    assert "es.amazonaws.com" in text and "logs:PutLogEvents" in text
    assert not resources(synthesized["enterprise"].templates["Stateful"], "Custom::OpenSearchAccessPolicy")


def test_the_domain_admits_https_from_the_functions_and_the_role_mapping_only(synthesized) -> None:
    t = synthesized["enterprise"].template("Stateful")
    t.has_resource_properties("AWS::EC2::SecurityGroup", {
        "GroupDescription": Match.string_like_regexp("OpenSearch"),
        "SecurityGroupEgress": Match.any_value(),  # allow_all_outbound=False leaves a deny-all placeholder
    })
    ingress = [r["Properties"] for r in resources(synthesized["enterprise"].templates["Stateful"],
                                                  "AWS::EC2::SecurityGroupIngress").values()
               if r["Properties"].get("FromPort") == 443 and "OpenSearch" in r["Properties"].get("Description", "")]
    assert len(ingress) == 2 and all("SourceSecurityGroupId" in i for i in ingress)
    # the functions' group (a parameter from the network stack) and the deploy-time role-mapping function's
    sources = sorted(json.dumps(i["SourceSecurityGroupId"]) for i in ingress)
    assert "Ref" in sources[1] and "RoleMappingSg" in sources[0]


@pytest.mark.parametrize("tier", ALL)
def test_functions_get_the_full_text_settings_and_es_http_on_the_domain(synthesized, tier: str) -> None:
    backend = get_tier(tier).fulltext_backend
    fns = functions(synthesized, tier)
    assert fns
    for name, fn in fns.items():
        env = fn["Properties"]["Environment"]["Variables"]
        assert env[env_name("fulltext_backend")] == backend
        assert (env_name("opensearch_url") in env) == (backend == "opensearch"), name
        if backend == "opensearch":
            assert env[env_name("opensearch_index_prefix")]
            assert "https://" in json.dumps(env[env_name("opensearch_url")])
    policies = json.dumps(resources(synthesized[tier].templates["Compute"], "AWS::IAM::Policy"))
    assert ("es:ESHttpPost" in policies) == (backend == "opensearch")
    assert "es:*" not in policies and "es:ESHttp*" not in policies  # the roles get the named HTTP verbs only


@pytest.mark.parametrize("tier", ALL)
def test_opensearch_alarms_on_red_yellow_storage_and_jvm_pressure(synthesized, tier: str) -> None:
    alarms = {v["Properties"]["MetricName"]: v["Properties"]
              for v in resources(synthesized[tier].templates["Monitoring"], "AWS::CloudWatch::Alarm").values()
              if v["Properties"].get("Namespace") == "AWS/ES"}
    if tier != "enterprise":
        assert alarms == {}
        return
    assert set(alarms) == {"ClusterStatus.red", "ClusterStatus.yellow", "FreeStorageSpace", "JVMMemoryPressure"}
    assert alarms["FreeStorageSpace"]["ComparisonOperator"] == "LessThanOrEqualToThreshold"
    spec = get_tier("enterprise").opensearch
    assert spec is not None and alarms["FreeStorageSpace"]["Threshold"] == spec.ebs_gib_per_node * 1024 * 0.25
    assert alarms["JVMMemoryPressure"]["Threshold"] == 95
    assert all(a["AlarmActions"] for a in alarms.values())


# --- fine-grained access control: the functions' roles mapped at deploy time -------------------------
def role_mappings(synthesized, tier: str) -> dict[str, dict]:
    return {k: v for t in synthesized[tier].templates.values()
            for k, v in resources(t, "Custom::QuerioOpenSearchRoleMapping").items()}


@pytest.mark.parametrize("tier", ALL)
def test_a_role_mapping_only_where_there_is_a_domain(synthesized, tier: str) -> None:
    assert len(role_mappings(synthesized, tier)) == (1 if get_tier(tier).fulltext_backend == "opensearch" else 0)
    handlers = [r for t in synthesized[tier].templates.values() for r in resources(t, "AWS::Lambda::Function").values()
                if r["Properties"].get("Handler") == "opensearch_security.on_event"]
    assert len(handlers) == (1 if tier == "enterprise" else 0)


def test_the_mapping_names_every_role_granted_es_access_and_the_index_pattern(synthesized) -> None:
    from querio.adapters.opensearch import index_name
    from stacks.fulltext import CLUSTER_PERMISSIONS, FUNCTIONS_ROLE, INDEX_ACTIONS

    compute = synthesized["enterprise"].templates["Compute"]
    (mapping_id, mapping), = resources(compute, "Custom::QuerioOpenSearchRoleMapping").items()
    props = mapping["Properties"]
    # the roles whose policies carry es:ESHttp* on the domain are exactly the mapped ones
    granted = sorted(role["Ref"] for p in resources(compute, "AWS::IAM::Policy").values()
                     if "es:ESHttpPost" in json.dumps(p["Properties"]["PolicyDocument"])
                     for role in p["Properties"]["Roles"])
    mapped = sorted(arn["Fn::GetAtt"][0] for arn in props["BackendRoles"])
    assert mapped == granted and len(mapped) == 3
    assert all(any(f in m for m in mapped) for f in ("Ingest", "Query", "Archive"))
    assert not any("Migrate" in m for m in mapped)  # the migrate function never touches OpenSearch
    assert props["RoleName"] == FUNCTIONS_ROLE and props["ClusterPermissions"] == list(CLUSTER_PERMISSIONS)
    assert props["IndexActions"] == list(INDEX_ACTIONS) and "manage" not in props["IndexActions"]
    (pattern,) = props["IndexPatterns"]
    env = next(iter(functions(synthesized, "enterprise").values()))["Properties"]["Environment"]["Variables"]
    from fnmatch import fnmatchcase

    assert fnmatchcase(index_name(env[env_name("opensearch_index_prefix")]), pattern)
    assert not fnmatchcase("other-index", pattern)
    # the provider's token and the domain come from the stateful stack as parameters (no cycle)
    assert "Ref" in props["ServiceToken"] and "Ref" in props["Endpoint"] and "Ref" in props["MasterRoleArn"]
    # the functions that search wait for their mapping: no first-deploy window of 403s
    for fid, fn in functions(synthesized, "enterprise").items():
        if "Migrate" not in fid:
            assert mapping_id in fn.get("DependsOn", []), fid


def test_the_mapping_function_runs_in_the_app_subnets_and_reaches_the_domain_on_443(synthesized) -> None:
    stateful = synthesized["enterprise"].templates["Stateful"]
    (fn,) = [r for r in resources(stateful, "AWS::Lambda::Function").values()
             if r["Properties"]["Handler"] == "opensearch_security.on_event"]
    vpc = fn["Properties"]["VpcConfig"]
    assert len(vpc["SubnetIds"]) == get_tier("enterprise").availability_zones
    assert all("app" in json.dumps(s) for s in vpc["SubnetIds"])
    (sg,) = vpc["SecurityGroupIds"]
    sg_id = sg["Fn::GetAtt"][0]
    group = stateful["Resources"][sg_id]["Properties"]
    assert [(e["IpProtocol"], e["FromPort"], e["ToPort"]) for e in group["SecurityGroupEgress"]] == [("tcp", 443, 443)]
    assert not group.get("SecurityGroupIngress")
    ingress = [r["Properties"] for r in resources(stateful, "AWS::EC2::SecurityGroupIngress").values()
               if r["Properties"].get("SourceSecurityGroupId") == {"Fn::GetAtt": [sg_id, "GroupId"]}]
    assert len(ingress) == 1 and ingress[0]["FromPort"] == ingress[0]["ToPort"] == 443
    assert fn["Properties"]["Timeout"] == 600


def test_master_role_trusts_the_mapping_function_which_may_only_assume_it(synthesized) -> None:
    stateful = synthesized["enterprise"].templates["Stateful"]
    (fn,) = [r for r in resources(stateful, "AWS::Lambda::Function").values()
             if r["Properties"]["Handler"] == "opensearch_security.on_event"]
    fn_role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    (master_id, master), = [(k, r) for k, r in resources(stateful, "AWS::IAM::Role").items() if "MasterRole" in k]
    trust = master["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    aws = [s["Principal"]["AWS"] for s in trust if s["Action"] == "sts:AssumeRole"]
    principals = [p for a in aws for p in (a if isinstance(a, list) else [a])]
    assert {"Fn::GetAtt": [fn_role, "Arn"]} in principals
    policies = {k: p["Properties"] for k, p in resources(stateful, "AWS::IAM::Policy").items()}
    (fn_policy,) = [p for p in policies.values() if {"Ref": fn_role} in p["Roles"]]
    assert fn_policy["PolicyDocument"]["Statement"] == [{
        "Action": "sts:AssumeRole", "Effect": "Allow", "Resource": {"Fn::GetAtt": [master_id, "Arn"]}}]
    # MasterRole itself may PUT the two security API paths the handler calls, nothing else
    (master_policy,) = [p for p in policies.values() if {"Ref": master_id} in p["Roles"]]
    (statement,) = master_policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "es:ESHttpPut"
    paths = json.dumps(statement["Resource"])
    assert "/_plugins/_security/api/roles/querio_functions" in paths
    assert "/_plugins/_security/api/rolesmapping/querio_functions" in paths and "*" not in paths


def _domain(tier):  # one FulltextDomain in a bare stack (no synth): for the construct's own guards
    from aws_cdk import App, Stack

    from stacks.fulltext import FulltextDomain
    from stacks.network import Network

    stack = Stack(App(), "T")
    return stack, FulltextDomain(stack, "Fulltext", tier=tier, network=Network(stack, "Net", tier=tier),
                                 domain_name="querio")


def test_a_role_granted_after_the_mapping_is_refused_and_an_empty_mapping_too() -> None:
    from aws_cdk import aws_iam as iam

    stack, domain = _domain(get_tier("enterprise"))
    with pytest.raises(ValueError, match="nothing to map"):
        domain.map_granted_roles(stack, index_prefix="querio-chunks")
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    domain.grant(role, stack)
    domain.map_granted_roles(stack, index_prefix="querio-chunks")
    late = iam.Role(stack, "Late", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    with pytest.raises(RuntimeError, match="grant every role before map_granted_roles"):
        domain.grant(late, stack)


def test_a_domain_needs_nat_so_the_role_mapping_reaches_sts() -> None:
    import dataclasses

    with pytest.raises(ValueError, match="no NAT gateway"):
        _domain(dataclasses.replace(get_tier("enterprise"), nat_gateways=0))
