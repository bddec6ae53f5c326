"""Template properties per tier (aws_cdk.assertions), checked against the tier table."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from querio.config import env_name
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
def test_waf_only_in_enterprise_made_in_us_east_1_by_a_custom_resource(synthesized, tier: str) -> None:
    s = synthesized[tier]
    if get_tier(tier).api.waf:
        edge = s.template("Edge")
        # no AWS::WAFv2 resource: CloudFormation would put it in the stack's region, not us-east-1
        assert not edge.find_resources("AWS::WAFv2::WebACL")
        (acl_id,) = edge.find_resources("Custom::QuerioWebAcl")
        (acl,) = edge.find_resources("Custom::QuerioWebAcl").values()
        rules = json.loads(acl["Properties"]["Rules"])
        assert [r["Name"] for r in rules] == ["RatePerIp", "AWSManagedRulesCommonRuleSet",
                                              "AWSManagedRulesKnownBadInputsRuleSet",
                                              "AWSManagedRulesAmazonIpReputationList"]
        assert rules[0]["Statement"]["RateBasedStatement"]["Limit"] == get_tier(tier).api.waf_ip_limit_per_5_minutes
        edge.has_resource_properties("AWS::CloudFront::Distribution", {
            "DistributionConfig": Match.object_like({"WebACLId": {"Fn::GetAtt": [acl_id, "Arn"]}})})
        from stacks.handlers.regional import WAF_REGION

        assert WAF_REGION == "us-east-1"
    else:
        assert "Edge" not in s.templates
        assert all("WAF" not in r["Type"] and "WebAcl" not in r["Type"]
                   for t in s.templates.values() for r in t["Resources"].values())


def test_one_top_level_stack_per_tier_with_the_lifecycle_split_nested(synthesized) -> None:
    for tier, s in synthesized.items():
        assert list(s.stacks) == ["Querio"], tier  # what `cdk deploy --context tier=X` selects by itself
        nested = {k for k, r in s.templates["Root"]["Resources"].items() if r["Type"] == "AWS::CloudFormation::Stack"}
        expected = {"Network", "Stateful", "Compute", "Api", "Monitoring"}
        expected |= {"Edge"} if tier == "enterprise" else set()
        assert set(s.templates) - {"Root"} == expected
        assert len(nested) == len(expected)
        # nothing but nested stacks (and CDK's metadata) at the top: every resource has a lifecycle home
        assert {r["Type"] for r in s.templates["Root"]["Resources"].values()} <= {
            "AWS::CloudFormation::Stack", "AWS::CDK::Metadata"}
        # data never sits in the stack a code change updates
        compute = {r["Type"] for r in s.templates["Compute"]["Resources"].values()}
        assert not compute & {"AWS::S3::Bucket", "AWS::RDS::DBInstance", "AWS::ElastiCache::ReplicationGroup",
                              "AWS::Cognito::UserPool", "AWS::SecretsManager::Secret"}


def test_a_code_only_change_updates_only_the_compute_nested_stack(synthesized, tmp_path, monkeypatch) -> None:
    """Edit the query handler (its asset hash changes): only Compute's template, and the parent's
    pointer to it, change; CloudFormation skips nested stacks whose template and parameters are equal."""
    from stacks import bundling
    from tests.infrastructure.conftest import synth_tier

    real = bundling.hash_files

    def edited(*parts):
        digest = real(*parts)
        return real(digest, "edited") if parts and parts[0] == bundling.FUNCTIONS / "query" else digest

    monkeypatch.setattr(bundling, "hash_files", edited)
    after = synth_tier("small", tmp_path)
    before = synthesized["small"]
    changed = sorted(k for k in before.templates if before.templates[k] != after.templates[k])
    assert changed == ["Compute", "Root"]
    root_changes = [k for k, r in before.templates["Root"]["Resources"].items()
                    if r != after.templates["Root"]["Resources"][k]]
    assert len(root_changes) == 1 and root_changes[0].startswith("Compute")
    # ... and within the parent only the nested stack's template URL, not its parameters
    b, a = (t["Root"]["Resources"][root_changes[0]]["Properties"] for t in (before.templates, after.templates))
    assert b.get("Parameters") == a.get("Parameters") and b["TemplateURL"] != a["TemplateURL"]


@pytest.mark.parametrize("tier", ALL)
def test_pdf_downloads_go_through_cloudfront_signed_urls_at_mid_and_enterprise(synthesized, tier: str) -> None:
    s = synthesized[tier]
    stateful = s.templates["Stateful"]
    query_env = next(r["Properties"]["Environment"]["Variables"]
                     for r in resources(s.templates["Compute"], "AWS::Lambda::Function").values()
                     if r["Properties"].get("Description", "").startswith("HTTP API"))
    if not get_tier(tier).storage.cloudfront_downloads:
        assert tier == "small"
        assert query_env["QUERIO_DOWNLOAD_URLS"] == "s3"
        assert not any(r["Type"].startswith("AWS::CloudFront") for t in s.templates.values()
                       for r in t["Resources"].values())
        return
    t = s.template("Stateful")
    # the bucket stays private: CloudFront reads it through origin access control (SigV4) ...
    t.has_resource_properties("AWS::CloudFront::OriginAccessControl", {"OriginAccessControlConfig": Match.object_like(
        {"OriginAccessControlOriginType": "s3", "SigningBehavior": "always", "SigningProtocol": "sigv4"})})
    (dist_id, dist), = resources(stateful, "AWS::CloudFront::Distribution").items()
    config = dist["Properties"]["DistributionConfig"]
    (origin,) = config["Origins"]
    assert "OriginAccessControlId" in origin and origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    (key_group_id,) = resources(stateful, "AWS::CloudFront::KeyGroup")
    behavior = config["DefaultCacheBehavior"]
    assert behavior["TrustedKeyGroups"] == [{"Ref": key_group_id}]  # only signed URLs are served
    assert behavior["ViewerProtocolPolicy"] == "https-only"
    assert behavior["AllowedMethods"] == ["GET", "HEAD"]
    # ... and the bucket policy lets only this distribution read (no public access)
    pdf_policy = [p for p in resources(stateful, "AWS::S3::BucketPolicy").values()
                  if any(st.get("Principal") == {"Service": "cloudfront.amazonaws.com"}
                         for st in p["Properties"]["PolicyDocument"]["Statement"])]
    (policy,) = pdf_policy
    (grant,) = [st for st in policy["Properties"]["PolicyDocument"]["Statement"] if st["Effect"] == "Allow"]
    assert grant["Action"] == "s3:GetObject"
    assert dist_id in json.dumps(grant["Condition"]["StringEquals"]["AWS:SourceArn"])
    # the public key comes from the deploy-time key pair; the private key only ever reaches the secret
    (key,) = resources(stateful, "AWS::CloudFront::PublicKey").values()
    (pair_id, pair), = resources(stateful, "Custom::QuerioSigningKeyPair").items()
    assert key["Properties"]["PublicKeyConfig"]["EncodedKey"] == {"Fn::GetAtt": [pair_id, "PublicKey"]}
    (secret_id,) = [k for k in resources(stateful, "AWS::SecretsManager::Secret") if k.startswith("PdfDelivery")]
    assert pair["Properties"]["SecretArn"] == {"Ref": secret_id}
    assert "PRIVATE KEY" not in json.dumps(s.templates)
    # the query function signs: settings by name, the secret's ARN (never the key) in its environment
    assert query_env["QUERIO_DOWNLOAD_URLS"] == "cloudfront"
    assert {"QUERIO_CLOUDFRONT_DOMAIN", "QUERIO_CLOUDFRONT_KEY_PAIR_ID",
            "QUERIO_CLOUDFRONT_PRIVATE_KEY_SECRET_ARN"} <= set(query_env)


@pytest.mark.parametrize("tier", ALL)
def test_enterprise_replicates_the_pdf_bucket_to_a_versioned_encrypted_replica(synthesized, tier: str) -> None:
    stateful = synthesized[tier].templates["Stateful"]
    (pdfs,) = [b for b in resources(stateful, "AWS::S3::Bucket").values() if "pdfs" in json.dumps(
        b["Properties"].get("BucketName", ""))]
    replicas = resources(stateful, "Custom::QuerioReplicaBucket")
    if not get_tier(tier).storage.replicate:
        assert "ReplicationConfiguration" not in pdfs["Properties"] and not replicas
        return
    (replica_id, replica), = replicas.items()
    (rule,) = pdfs["Properties"]["ReplicationConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["Filter"] == {"Prefix": "tenants/"}
    assert rule["DeleteMarkerReplication"] == {"Status": "Enabled"}
    assert rule["Destination"]["Bucket"] == {"Fn::GetAtt": [replica_id, "Arn"]}
    assert pdfs["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}  # replication needs it
    # the replica's region: the deploy region's documented default, from a mapping
    from stacks.replication import REPLICA_REGIONS

    mapping_id, *lookup = replica["Properties"]["Region"]["Fn::FindInMap"]
    assert lookup == [{"Ref": "AWS::Region"}, "replica"]
    mapping = stateful["Mappings"][mapping_id]
    assert {k: v["replica"] for k, v in mapping.items()} == REPLICA_REGIONS
    assert all(primary != replica_region for primary, replica_region in REPLICA_REGIONS.items())


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
    assert env[env_name("max_request_file_bytes")] == str(LAMBDA_REQUEST_FILE_BYTES)
    assert env[env_name("tenant_claim")] == "custom:tenant_id"
    assert 4_000_000 < LAMBDA_REQUEST_FILE_BYTES < 6 * 1024 * 1024 * 3 // 4
    (ingest,) = [p for d, p in by_desc.items() if d.startswith("S3 notifications")]
    assert env_name("max_request_file_bytes") not in ingest["Environment"]["Variables"]
