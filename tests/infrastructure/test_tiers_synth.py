"""Template properties per tier (aws_cdk.assertions), checked against the tier table."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from querio.config import env_var
from querio.tiers import LAMBDA_PYTHON_VERSION, LAMBDA_REQUEST_FILE_BYTES, TIERS, get_tier

pytestmark = pytest.mark.infrastructure

ALL = list(TIERS)


def resources(template: dict, type_: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


@pytest.mark.parametrize("tier", ALL)
def test_pdf_bucket_is_encrypted_versioned_private_tls_only_and_logged(synthesized, tier: str) -> None:
    t = synthesized[tier].template("Stateful")
    t.has_resource_properties("AWS::S3::Bucket", {
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            Match.object_like({"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}})]},
        "VersioningConfiguration": {"Status": "Enabled"},
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "LoggingConfiguration": Match.object_like({"LogFilePrefix": "pdfs/"}),
        "CorsConfiguration": {"CorsRules": [Match.object_like({"AllowedMethods": ["PUT", "GET"]})]},
    })
    # every bucket denies plain HTTP
    policies = resources(synthesized[tier].templates["Stateful"], "AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in statements)


@pytest.mark.parametrize("tier", ALL)
def test_lifecycle_follows_the_seed(synthesized, tier: str) -> None:
    st = get_tier(tier).storage
    t = synthesized[tier].template("Stateful")
    t.has_resource_properties("AWS::S3::Bucket", {"LifecycleConfiguration": {"Rules": Match.array_with([
        Match.object_like({"Id": "ArchiveOldDocuments", "Prefix": "tenants/", "Status": "Enabled", "Transitions": [
            {"StorageClass": "STANDARD_IA", "TransitionInDays": st.infrequent_access_after_days},
            {"StorageClass": "GLACIER", "TransitionInDays": st.glacier_after_days}]}),
        Match.object_like({"Id": "ExpireNoncurrentVersions",
                           "NoncurrentVersionExpiration": {"NoncurrentDays": st.noncurrent_versions_expire_days}}),
    ])}})


@pytest.mark.parametrize("tier", ALL)
def test_created_and_removed_under_tenants_notify_the_ingest_queue(synthesized, tier: str) -> None:
    tpl = synthesized[tier].templates["Stateful"]
    (notif,) = resources(tpl, "Custom::S3BucketNotifications").values()
    configs = notif["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert sorted(c["Events"][0] for c in configs) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    queue_ids = {k for k, v in resources(tpl, "AWS::SQS::Queue").items() if "RedrivePolicy" in v["Properties"]}
    for c in configs:
        assert c["Filter"] == {"Key": {"FilterRules": [{"Name": "prefix", "Value": "tenants/"}]}}
        assert c["QueueArn"]["Fn::GetAtt"][0] in queue_ids


@pytest.mark.parametrize("tier", ALL)
def test_ingest_queue_has_an_encrypted_tls_only_dlq_with_the_tiers_max_receive_count(synthesized, tier: str) -> None:
    q = get_tier(tier).queue
    tpl = synthesized[tier].templates["Stateful"]
    queues = resources(tpl, "AWS::SQS::Queue")
    (main_id,) = [k for k, v in queues.items() if "RedrivePolicy" in v["Properties"]]
    main = queues[main_id]["Properties"]
    assert main["RedrivePolicy"]["maxReceiveCount"] == q.max_receive_count
    dlq_id = main["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert main["VisibilityTimeout"] == get_tier(tier).queue_visibility_timeout_s
    assert queues[dlq_id]["Properties"]["MessageRetentionPeriod"] == q.dlq_retention_days * 86400
    for props in (main, queues[dlq_id]["Properties"]):
        assert props["SqsManagedSseEnabled"] is True
    tls = [s for p in resources(tpl, "AWS::SQS::QueuePolicy").values()
           for s in p["Properties"]["PolicyDocument"]["Statement"]
           if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}]
    assert len(tls) == 2  # queue and DLQ


@pytest.mark.parametrize("tier", ALL)
def test_event_source_mapping_reports_batch_item_failures_with_tier_batch_and_concurrency(synthesized, tier: str
                                                                                         ) -> None:
    q = get_tier(tier).queue
    synthesized[tier].template("Compute").has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "BatchSize": q.batch_size, "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": q.max_concurrency},
    })


@pytest.mark.parametrize("tier", ALL)
def test_rds_multi_az_and_deletion_protection_only_in_enterprise(synthesized, tier: str) -> None:
    db = get_tier(tier).database
    enterprise = tier == "enterprise"
    assert db.multi_az is enterprise
    synthesized[tier].template("Stateful").has_resource_properties("AWS::RDS::DBInstance", {
        "Engine": "postgres", "EngineVersion": Match.string_like_regexp(r"^16\."),
        "DBInstanceClass": db.instance_class, "MultiAZ": db.multi_az, "StorageEncrypted": True,
        "PubliclyAccessible": False, "BackupRetentionPeriod": db.backup_retention_days,
        "DeletionProtection": db.deletion_protection,
    })
    if enterprise:
        assert db.deletion_protection
    synthesized[tier].template("Stateful").has_resource_properties("AWS::RDS::DBParameterGroup", {
        "Parameters": Match.object_like({"rds.force_ssl": "1"})})
    synthesized[tier].template("Stateful").resource_count_is("AWS::SecretsManager::RotationSchedule", 1)


@pytest.mark.parametrize("tier", ALL)
def test_redis_requires_tls_and_auth_and_follows_the_tier_shape(synthesized, tier: str) -> None:
    c = get_tier(tier).cache
    expected: dict = {"TransitEncryptionEnabled": True, "TransitEncryptionMode": "required",
                      "AtRestEncryptionEnabled": True, "CacheNodeType": c.node_type,
                      "AuthToken": Match.string_like_regexp(r"resolve:secretsmanager")}
    if c.cluster_mode:
        expected.update(NumNodeGroups=c.shards, ReplicasPerNodeGroup=c.replicas_per_shard,
                        CacheParameterGroupName="default.redis7.cluster.on")
    else:
        expected.update(NumCacheClusters=1 + c.replicas_per_shard)
    tpl = synthesized[tier].template("Stateful")
    (group,) = tpl.find_resources("AWS::ElastiCache::ReplicationGroup").values()
    props = group["Properties"]
    token = json.dumps(props.pop("AuthToken"))
    assert "resolve:secretsmanager" in token
    expected.pop("AuthToken")
    for key, value in expected.items():
        assert props[key] == value, key


@pytest.mark.parametrize("tier", ALL)
def test_archive_runs_daily_from_the_tier_schedule(synthesized, tier: str) -> None:
    synthesized[tier].template("Compute").has_resource_properties("AWS::Events::Rule", {
        "ScheduleExpression": get_tier(tier).archive.schedule_expression, "State": "ENABLED",
        "Targets": [Match.object_like({"RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 21600},
                                       "DeadLetterConfig": Match.any_value()})],
    })


@pytest.mark.parametrize("tier", ALL)
def test_every_route_needs_the_cognito_jwt(synthesized, tier: str) -> None:
    tpl = synthesized[tier].templates["Api"]
    routes = resources(tpl, "AWS::ApiGatewayV2::Route")
    assert len(routes) >= 3
    for route in routes.values():
        assert route["Properties"]["AuthorizationType"] == "JWT", route["Properties"]["RouteKey"]
        assert "AuthorizerId" in route["Properties"]
    (auth,) = resources(tpl, "AWS::ApiGatewayV2::Authorizer").values()
    assert auth["Properties"]["AuthorizerType"] == "JWT"
    api = get_tier(tier).api
    synthesized[tier].template("Api").has_resource_properties("AWS::ApiGatewayV2::Stage", {
        "DefaultRouteSettings": Match.object_like({"ThrottlingRateLimit": api.throttle_rate_per_s,
                                                   "ThrottlingBurstLimit": api.throttle_burst}),
        "AccessLogSettings": Match.object_like({"Format": Match.string_like_regexp("requestId")}),
    })


@pytest.mark.parametrize("tier", ALL)
def test_waf_only_in_enterprise(synthesized, tier: str) -> None:
    s = synthesized[tier]
    if get_tier(tier).api.waf:
        edge = s.template("Edge")
        edge.resource_count_is("AWS::WAFv2::WebACL", 1)
        edge.has_resource_properties("AWS::WAFv2::WebACL", {"Scope": "CLOUDFRONT"})
        edge.has_resource_properties("AWS::CloudFront::Distribution", {
            "DistributionConfig": Match.object_like({"WebACLId": Match.any_value()})})
    else:
        assert "Edge" not in s.templates
        assert all("AWS::WAFv2" not in r["Type"] for t in s.templates.values() for r in t["Resources"].values())


@pytest.mark.parametrize("tier", ALL)
def test_functions_use_the_tier_memory_and_the_lambda_python(synthesized, tier: str) -> None:
    t = get_tier(tier)
    fns = resources(synthesized[tier].templates["Compute"], "AWS::Lambda::Function")
    by_desc = {v["Properties"].get("Description", ""): v["Properties"] for v in fns.values()}
    sizes = {"S3 notifications": t.ingest_function, "HTTP API": t.query_function, "Daily": t.archive_function}
    for prefix, size in sizes.items():
        (props,) = [p for d, p in by_desc.items() if d.startswith(prefix)]
        assert props["Runtime"] == f"python{LAMBDA_PYTHON_VERSION}"
        assert props["MemorySize"] == size.memory_mb
        assert props["Timeout"] == size.timeout_s
        assert props.get("ReservedConcurrentExecutions") == size.reserved_concurrency
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert len(props["Layers"]) == 3
        assert "VpcConfig" in props
        env = props["Environment"]["Variables"]
        assert env["QUERIO_TIER"] == tier and env["QUERIO_VECTOR_BACKEND"] == t.vector_backend
        assert env["QUERIO_RATE_LIMIT_PER_MINUTE"] == str(t.api.rate_limit_per_minute)


@pytest.mark.parametrize("tier", ALL)
def test_no_iam_statement_grants_a_wildcard_action(synthesized, tier: str) -> None:
    for name, tpl in synthesized[tier].templates.items():
        for policy in resources(tpl, "AWS::IAM::Policy").values():
            for st in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                assert not any(a == "*" or a.endswith(":*") for a in actions), (name, actions)


@pytest.mark.parametrize("tier", ALL)
def test_network_needs_nat_only_for_pinecone(synthesized, tier: str) -> None:
    t = get_tier(tier)
    tpl = synthesized[tier].template("Network")
    tpl.resource_count_is("AWS::EC2::NatGateway", t.nat_gateways)
    assert (t.nat_gateways > 0) == (t.vector_backend == "pinecone")
    tpl.resource_count_is("AWS::EC2::VPCEndpoint", 3)  # S3 gateway, SQS and Secrets Manager interfaces


@pytest.mark.parametrize("tier", ALL)
def test_pinecone_key_secret_only_with_the_pinecone_backend(synthesized, tier: str) -> None:
    t = get_tier(tier)
    stateful = synthesized[tier].templates["Stateful"]
    pinecone = [k for k in resources(stateful, "AWS::SecretsManager::Secret") if k.startswith("Pinecone")]
    assert len(pinecone) == (1 if t.vector_backend == "pinecone" else 0)


@pytest.mark.parametrize("tier", ALL)
def test_monitoring_alarms_cover_dlq_errors_throttles_api_and_rds(synthesized, tier: str) -> None:
    alarms = resources(synthesized[tier].templates["Monitoring"], "AWS::CloudWatch::Alarm")
    metrics = {(a["Properties"].get("Namespace"), a["Properties"].get("MetricName")) for a in alarms.values()}
    for expected in [("AWS/SQS", "ApproximateNumberOfMessagesVisible"), ("AWS/Lambda", "Errors"),
                     ("AWS/Lambda", "Throttles"), ("AWS/ApiGateway", "5xx"), ("AWS/ApiGateway", "Latency"),
                     ("AWS/RDS", "CPUUtilization"), ("AWS/RDS", "FreeStorageSpace"),
                     ("Querio", "IngestFailures"), ("Querio", "CacheErrors")]:
        assert expected in metrics, expected
    dlq = [a for a in alarms.values() if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"]
    assert all(a["Properties"]["Threshold"] == 0 and
               a["Properties"]["ComparisonOperator"] == "GreaterThanThreshold" for a in dlq)
    synthesized[tier].template("Monitoring").resource_count_is("AWS::CloudWatch::Dashboard", 1)


def test_synth_is_deterministic(synthesized, tmp_path) -> None:
    """Same inputs, same templates (asset hashes included): no clocks, randomness or git in synth."""
    from tests.infrastructure.conftest import synth_tier

    again = synth_tier("small", tmp_path)
    assert again.templates == synthesized["small"].templates


@pytest.mark.parametrize("tier", ALL)
def test_the_query_function_gets_the_tenant_claim_and_lambdas_request_file_limit(synthesized, tier: str) -> None:
    # issue 11: uploads over Lambda's 6 MB invoke payload (base64 bodies) are a 413 from the
    # router, not an opaque Lambda error; the claim name is the user pool's attribute.
    fns = [p["Properties"] for tpl in synthesized[tier].templates.values()
           for p in resources(tpl, "AWS::Lambda::Function").values()]
    by_desc = {p.get("Description", ""): p for p in fns}
    (query,) = [p for d, p in by_desc.items() if d.startswith("HTTP API")]
    env = query["Environment"]["Variables"]
    assert env[env_var("max_request_file_bytes")] == str(LAMBDA_REQUEST_FILE_BYTES)
    assert env[env_var("tenant_claim")] == "custom:tenant_id"
    assert 4_000_000 < LAMBDA_REQUEST_FILE_BYTES < 6 * 1024 * 1024 * 3 // 4
    (ingest,) = [p for d, p in by_desc.items() if d.startswith("S3 notifications")]
    assert env_var("max_request_file_bytes") not in ingest["Environment"]["Variables"]
