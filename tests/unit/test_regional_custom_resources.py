"""The deploy-time handler that places the enterprise WAF web ACL in us-east-1 and the PDF replica
bucket in the replica region (``stacks/handlers/regional.py``), against moto's WAFv2 and S3."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from querio.tiers import ENTERPRISE
from stacks.edge import web_acl_rules
from stacks.handlers import regional


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def event(request: str, kind: str, props: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"RequestType": request, "ResourceType": kind, "ResourceProperties": props, **extra}


def test_web_acl_lives_in_us_east_1_is_updated_in_place_and_deleted(moto_aws: None) -> None:
    props = {"Name": "querio-Querio-Edge-eu-west-1", "Rules": json.dumps(web_acl_rules(ENTERPRISE))}
    created = regional.on_event(event("Create", "Custom::QuerioWebAcl", props))
    arn = created["PhysicalResourceId"]
    assert arn.startswith("arn:aws:wafv2:us-east-1:") and ":global/webacl/querio-Querio-Edge-eu-west-1/" in arn
    waf = boto3.client("wafv2", region_name="us-east-1")
    acl = waf.get_web_acl(Name=props["Name"], Scope="CLOUDFRONT", Id=created["Data"]["Id"])["WebACL"]
    assert [r["Name"] for r in acl["Rules"]] == [r["Name"] for r in web_acl_rules(ENTERPRISE)]

    fewer = dict(props, Rules=json.dumps(web_acl_rules(ENTERPRISE)[:1]))
    updated = regional.on_event(event("Update", "Custom::QuerioWebAcl", fewer, PhysicalResourceId=arn,
                                      OldResourceProperties=props))
    assert updated["PhysicalResourceId"] == arn  # same ACL, fresh lock token
    acl = waf.get_web_acl(Name=props["Name"], Scope="CLOUDFRONT", Id=created["Data"]["Id"])["WebACL"]
    assert [r["Name"] for r in acl["Rules"]] == ["RatePerIp"]

    regional.on_event(event("Delete", "Custom::QuerioWebAcl", fewer, PhysicalResourceId=arn))
    assert waf.list_web_acls(Scope="CLOUDFRONT")["WebACLs"] == []
    # a second delete (CloudFormation retries) is not an error
    regional.on_event(event("Delete", "Custom::QuerioWebAcl", fewer, PhysicalResourceId=arn))


@pytest.mark.parametrize("region", ["us-west-2", "us-east-1"])
def test_replica_bucket_is_created_private_versioned_and_encrypted_in_its_region(moto_aws: None,
                                                                                  region: str) -> None:
    props = {"BucketName": "querio-pdfs-replica-123456789012-eu-west-1", "Region": region, "Partition": "aws"}
    out = regional.on_event(event("Create", "Custom::QuerioReplicaBucket", props))
    assert out["Data"]["Arn"] == f"arn:aws:s3:::{props['BucketName']}"
    s3 = boto3.client("s3", region_name=region)
    name = props["BucketName"]
    assert (s3.get_bucket_location(Bucket=name)["LocationConstraint"] or "us-east-1") == region
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    (rule,) = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"].values())
    (deny,) = json.loads(s3.get_bucket_policy(Bucket=name)["Policy"])["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # re-running (an update, a retried create) keeps the bucket; delete retains it with its data
    physical = out["PhysicalResourceId"]
    regional.on_event(event("Update", "Custom::QuerioReplicaBucket", props, PhysicalResourceId=physical,
                            OldResourceProperties=props))
    regional.on_event(event("Delete", "Custom::QuerioReplicaBucket", props, PhysicalResourceId=physical))
    assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_unknown_resource_type_fails_the_deployment() -> None:
    with pytest.raises(ValueError, match="unknown resource type"):
        regional.on_event(event("Create", "Custom::Other", {}))
