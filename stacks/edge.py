"""Enterprise: CloudFront in front of the HTTP API, with an AWS WAF web ACL.

API Gateway HTTP APIs cannot be associated with WAF (only REST APIs, ALBs, AppSync, Cognito
and CloudFront can), so the supported way is a CloudFront distribution whose origin is the
HTTP API, with the web ACL on the distribution. CLOUDFRONT-scope web ACLs must live in
us-east-1, so this stack is pinned there and reads the API's domain through a CDK
cross-region reference. Nothing is cached (``CACHING_DISABLED``): every request reaches the
API with its ``Authorization`` header, and the JWT authorizer still checks it.
"""

from __future__ import annotations

from aws_cdk import Fn
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from querio.tiers import Tier
from stacks.nag import acknowledge


def _managed_rule(name: str, priority: int) -> wafv2.CfnWebACL.RuleProperty:
    return wafv2.CfnWebACL.RuleProperty(
        name=name, priority=priority, override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(managed_rule_group_statement=(
            wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(vendor_name="AWS", name=name))),
        visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
            cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True))


class WafFrontDoor(Construct):
    """``web_acl`` and ``distribution`` (origin: the API's execute-api domain)."""

    def __init__(self, scope: Construct, id: str, *, tier: Tier, api_endpoint: str) -> None:
        super().__init__(scope, id)
        rate_rule = wafv2.CfnWebACL.RuleProperty(
            name="RatePerIp", priority=0, action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            statement=wafv2.CfnWebACL.StatementProperty(rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                limit=tier.api.waf_ip_limit_per_5_minutes, aggregate_key_type="IP")),
            visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name="RatePerIp", sampled_requests_enabled=True))
        self.web_acl = wafv2.CfnWebACL(
            self, "WebAcl", scope="CLOUDFRONT", default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name="QuerioWebAcl", sampled_requests_enabled=True),
            rules=[rate_rule, _managed_rule("AWSManagedRulesCommonRuleSet", 1),
                   _managed_rule("AWSManagedRulesKnownBadInputsRuleSet", 2),
                   _managed_rule("AWSManagedRulesAmazonIpReputationList", 3)],
        )
        domain = Fn.select(2, Fn.split("/", api_endpoint))  # https://{id}.execute-api.{region}.amazonaws.com
        self.distribution = cloudfront.Distribution(
            self, "Distribution", comment=f"Querio API ({tier.name}) behind AWS WAF",
            web_acl_id=self.web_acl.attr_arn, http_version=cloudfront.HttpVersion.HTTP2_AND_3,
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
