"""Deploy-time custom resources that put something in *another* region than the stack's.

One top-level stack per tier (issue 14) cannot hold resources of two regions, and a second
top-level stack would break ``cdk deploy --context tier=X``; so these two are made by API calls
from a Lambda function in the stack's region (runtime: boto3 from the Lambda Python runtime):

* ``Custom::QuerioWebAcl``: the enterprise API's CLOUDFRONT-scope WAF web ACL, which AWS only
  accepts in us-east-1. Create; update with a fresh lock token; delete (retried while CloudFront
  still lists the ACL on a distribution being removed).
* ``Custom::QuerioReplicaBucket``: the enterprise PDF bucket's replica in ``Region``: versioned,
  SSE-S3 with a bucket key, Block Public Access, bucket owner enforced, TLS-only policy. Delete
  keeps it (the primary bucket is retained too: replicas exist to survive mistakes).

Handler contract: the aws-cdk-lib custom-resource provider framework (return ``PhysicalResourceId``
and ``Data``; raise to fail the deployment).
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
from botocore.exceptions import ClientError

WAF_REGION = "us-east-1"  # CLOUDFRONT-scope web ACLs live there only


def on_event(event: dict[str, Any], _context: object = None) -> dict[str, Any]:
    kind = event["ResourceType"]
    if kind == "Custom::QuerioWebAcl":
        return web_acl(event)
    if kind == "Custom::QuerioReplicaBucket":
        return replica_bucket(event)
    raise ValueError(f"unknown resource type {kind}")


# --- WAF ------------------------------------------------------------------------------------------
def _acl_spec(props: dict[str, Any]) -> dict[str, Any]:
    return {"DefaultAction": {"Allow": {}}, "Rules": json.loads(props["Rules"]),
            "VisibilityConfig": {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True,
                                 "MetricName": props["Name"]}}


def web_acl(event: dict[str, Any], *, client: Any = None, delete_attempts: int = 20, pause_s: float = 15) -> dict:
    waf = client or boto3.client("wafv2", region_name=WAF_REGION)
    props = event["ResourceProperties"]
    name = props["Name"]
    request = event["RequestType"]
    if request == "Create" or (request == "Update" and event["OldResourceProperties"]["Name"] != name):
        # a new name is a new ACL; CloudFormation then deletes the old one (physical id changed)
        summary = waf.create_web_acl(Name=name, Scope="CLOUDFRONT", **_acl_spec(props))["Summary"]
        return {"PhysicalResourceId": summary["ARN"], "Data": {"Arn": summary["ARN"], "Id": summary["Id"]}}
    arn = event["PhysicalResourceId"]
    acl_id, acl_name = arn.rsplit("/", 2)[-1], arn.rsplit("/", 2)[-2]
    if request == "Update":
        token = waf.get_web_acl(Name=acl_name, Scope="CLOUDFRONT", Id=acl_id)["LockToken"]
        waf.update_web_acl(Name=acl_name, Scope="CLOUDFRONT", Id=acl_id, LockToken=token, **_acl_spec(props))
        return {"PhysicalResourceId": arn, "Data": {"Arn": arn, "Id": acl_id}}
    for attempt in range(delete_attempts):  # Delete
        try:
            token = waf.get_web_acl(Name=acl_name, Scope="CLOUDFRONT", Id=acl_id)["LockToken"]
            waf.delete_web_acl(Name=acl_name, Scope="CLOUDFRONT", Id=acl_id, LockToken=token)
            break
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "WAFNonexistentItemException":
                break
            # the distribution's disassociation propagates for a while after it is deleted
            if code not in ("WAFAssociatedItemException", "WAFOptimisticLockException") or \
                    attempt == delete_attempts - 1:
                raise
            time.sleep(pause_s)
    return {"PhysicalResourceId": arn}


# --- S3 replica -------------------------------------------------------------------------------------
def replica_bucket(event: dict[str, Any], *, client: Any = None) -> dict[str, Any]:
    props = event["ResourceProperties"]
    name, region = props["BucketName"], props["Region"]
    physical = f"{region}/{name}"
    if event["RequestType"] == "Delete":
        return {"PhysicalResourceId": event["PhysicalResourceId"]}  # retained, like the primary bucket
    s3 = client or boto3.client("s3", region_name=region)
    try:
        create: dict[str, Any] = {"Bucket": name, "ObjectOwnership": "BucketOwnerEnforced"}
        if region != "us-east-1":  # us-east-1 refuses an explicit LocationConstraint
            create["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**create)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]})
    arn = f"arn:{props.get('Partition', 'aws')}:s3:::{name}"
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
    return {"PhysicalResourceId": physical, "Data": {"Arn": arn, "BucketName": name, "Region": region}}
