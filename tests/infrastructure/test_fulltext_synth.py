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


def test_the_domain_admits_https_from_the_functions_only(synthesized) -> None:
    t = synthesized["enterprise"].template("Stateful")
    t.has_resource_properties("AWS::EC2::SecurityGroup", {
        "GroupDescription": Match.string_like_regexp("OpenSearch"),
        "SecurityGroupEgress": Match.any_value(),  # allow_all_outbound=False leaves a deny-all placeholder
    })
    ingress = [r["Properties"] for r in resources(synthesized["enterprise"].templates["Stateful"],
                                                  "AWS::EC2::SecurityGroupIngress").values()
               if r["Properties"].get("FromPort") == 443 and "OpenSearch" in r["Properties"].get("Description", "")]
    assert len(ingress) == 1 and "SourceSecurityGroupId" in ingress[0]


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
