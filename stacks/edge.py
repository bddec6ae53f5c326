"""Enterprise: CloudFront in front of the HTTP API, with an AWS WAF web ACL.

API Gateway HTTP APIs cannot be associated with WAF (only REST APIs, ALBs, AppSync, Cognito
and CloudFront can), so the supported way is a CloudFront distribution whose origin is the
HTTP API, with the web ACL on the distribution. Nothing is cached (``CACHING_DISABLED``): every
request reaches the API with its ``Authorization`` header, and the JWT authorizer still checks it.

CLOUDFRONT-scope web ACLs exist only in us-east-1, while the tier's one stack may live in any
region. A second top-level stack in us-east-1 (with cross-region references) is what broke
``cdk deploy --context tier=enterprise``; so the ACL is made by a custom resource
(``Custom::QuerioWebAcl``, ``stacks/handlers/regional.py``) that calls WAF's API in us-east-1
from this stack's region. The distribution itself is global and lives in this stack. The cost:
the ACL is not a CloudFormation resource (no drift detection; its rules change through this
stack only), and the handler needs ``wafv2`` permissions on Querio's ACLs in us-east-1.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Aws, CustomResource, Fn
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_iam as iam
from constructs import Construct

from querio.tiers import Tier
from stacks.custom_resources import provider, regional_function
from stacks.handlers.regional import WAF_REGION
from stacks.nag import acknowledge

MANAGED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
                       "AWSManagedRulesAmazonIpReputationList")


def _visibility(metric: str) -> dict[str, Any]:
    return {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": metric}


def web_acl_rules(tier: Tier) -> list[dict[str, Any]]:
    """The ACL's rules in WAF's API form: a rate limit per IP, then AWS's managed rule groups."""
    rate = {"Name": "RatePerIp", "Priority": 0, "Action": {"Block": {}},
            "Statement": {"RateBasedStatement": {"Limit": tier.api.waf_ip_limit_per_5_minutes,
                                                 "AggregateKeyType": "IP"}},
            "VisibilityConfig": _visibility("RatePerIp")}
    managed = [{"Name": name, "Priority": i, "OverrideAction": {"None": {}},
                "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": name}},
                "VisibilityConfig": _visibility(name)} for i, name in enumerate(MANAGED_RULE_GROUPS, start=1)]
    return [rate, *managed]


class WafFrontDoor(Construct):
    """``web_acl`` and ``distribution`` (origin: the API's execute-api domain)."""

    def __init__(self, scope: Construct, id: str, *, tier: Tier, api_endpoint: str) -> None:
        super().__init__(scope, id)
        rules = json.dumps(web_acl_rules(tier), sort_keys=True)
        # WAF names are unique per account and scope: the (nested) stack's name and region keep
        # two deployments (stages, regions) apart
        name = Fn.join("-", ["querio", Aws.STACK_NAME, Aws.REGION])
        fn = regional_function(self, "ManageWebAcl", description="Deploy time: the API's CloudFront WAF web ACL "
                               "in us-east-1")
        acl_arn = f"arn:{Aws.PARTITION}:wafv2:{WAF_REGION}:{Aws.ACCOUNT_ID}:global/webacl/querio-*"
        fn.add_to_role_policy(iam.PolicyStatement(
            actions=["wafv2:CreateWebACL", "wafv2:UpdateWebACL", "wafv2:GetWebACL", "wafv2:DeleteWebACL"],
            resources=[acl_arn, f"arn:{Aws.PARTITION}:wafv2:{WAF_REGION}:{Aws.ACCOUNT_ID}:global/managedruleset/*"]))
        acknowledge(fn.role.node.find_child("DefaultPolicy"),  # type: ignore[union-attr]
                    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:wafv2:us-east-1:<AWS::AccountId>:global/"
                    "webacl/querio-*]",
                    "The ACL's id is assigned by WAF at creation, so only its name prefix is known; the handler "
                    "manages Querio's own ACLs (querio-*) in us-east-1 and nothing else.")
        acknowledge(fn.role.node.find_child("DefaultPolicy"),  # type: ignore[union-attr]
                    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:wafv2:us-east-1:<AWS::AccountId>:global/"
                    "managedruleset/*]",
                    "Creating an ACL that uses AWS managed rule groups needs access to those groups, whose ARNs "
                    "AWS owns; the statement allows only Create/Update/Get/Delete of ACLs.")
        self.web_acl = CustomResource(
            self, "WebAcl", resource_type="Custom::QuerioWebAcl",
            service_token=provider(self, "Provider", on_event=fn).service_token,
            properties={"Name": name, "Rules": rules})
        domain = Fn.select(2, Fn.split("/", api_endpoint))  # https://{id}.execute-api.{region}.amazonaws.com
        self.distribution = cloudfront.Distribution(
            self, "Distribution", comment=f"Querio API ({tier.name}) behind AWS WAF",
            web_acl_id=self.web_acl.get_att_string("Arn"), http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.HttpOrigin(domain, protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
                                          origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2]),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER),
        )
        acknowledge(self.distribution, "AwsSolutions-CFR1",
                    "Querio serves authenticated tenants worldwide; geo restriction is a per-customer policy "
                    "to add in the web ACL, not a default.")
        acknowledge(self.distribution, "AwsSolutions-CFR3",
                    "API requests are logged by the HTTP API's access log and WAF's sampled requests; "
                    "CloudFront standard logs would duplicate them into an ACL-enabled bucket.")
        acknowledge(self.distribution, "AwsSolutions-CFR4",
                    "The distribution uses the default *.cloudfront.net certificate, whose TLS policy AWS fixes; "
                    "pinning TLSv1.2_2021 needs your own domain and ACM certificate (README: Deploy).")
