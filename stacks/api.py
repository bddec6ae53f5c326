"""The HTTP API: API Gateway (payload v2) → the query function, behind a Cognito JWT
authorizer on every route, with stage throttling, CORS and JSON access logs.

Payloads over 10 MB cannot pass API Gateway: large PDFs go through
``POST /api/documents/upload-url`` (a presigned S3 PUT) and arrive via the S3 notification.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_logs as logs
from constructs import Construct

from querio.tiers import Tier
from stacks.compute import QuerioFunction

ACCESS_LOG_FORMAT = (
    '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","requestTime":"$context.requestTime",'
    '"method":"$context.httpMethod","path":"$context.path","status":"$context.status",'
    '"protocol":"$context.protocol","responseLength":"$context.responseLength",'
    '"latencyMs":"$context.responseLatency","integrationLatencyMs":"$context.integrationLatency",'
    '"integrationError":"$context.integrationErrorMessage","authorizerError":"$context.authorizer.error",'
    '"sub":"$context.authorizer.claims.sub"}'
)


class HttpApi(Construct):
    """``api`` and ``stage``; every route uses ``authorizer``."""

    def __init__(self, scope: Construct, id: str, *, tier: Tier, function: QuerioFunction,
                 user_pool: cognito.IUserPool, client: cognito.IUserPoolClient, cors_origins: list[str]) -> None:
        super().__init__(scope, id)
        self.authorizer = authorizers.HttpUserPoolAuthorizer("Jwt", user_pool, user_pool_clients=[client],
                                                             identity_source=["$request.header.Authorization"])
        self.api = apigw.HttpApi(
            self, "Api", description=f"Querio API ({tier.name})", default_authorizer=self.authorizer,
            create_default_stage=False,
            cors_preflight=apigw.CorsPreflightOptions(
                allow_origins=cors_origins, allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
                allow_methods=[apigw.CorsHttpMethod.GET, apigw.CorsHttpMethod.POST, apigw.CorsHttpMethod.DELETE,
                               apigw.CorsHttpMethod.OPTIONS],
                max_age=Duration.hours(1)),
        )
        integration = integrations.HttpLambdaIntegration("Query", function.function,
                                                         payload_format_version=apigw.PayloadFormatVersion.VERSION_2_0)
        for method in (apigw.HttpMethod.GET, apigw.HttpMethod.POST, apigw.HttpMethod.DELETE):
            self.api.add_routes(path="/api/{proxy+}", methods=[method], integration=integration,
                                authorizer=self.authorizer)
        self.access_logs = logs.LogGroup(self, "AccessLogs", retention=logs.RetentionDays.THREE_MONTHS,
                                         removal_policy=RemovalPolicy.DESTROY)
        self.stage = apigw.HttpStage(
            self, "Stage", http_api=self.api, stage_name="$default", auto_deploy=True,
            throttle=apigw.ThrottleSettings(rate_limit=tier.api.throttle_rate_per_s,
                                            burst_limit=tier.api.throttle_burst),
            detailed_metrics_enabled=True,
        )
        cfn_stage = self.stage.node.default_child
        assert isinstance(cfn_stage, apigw.CfnStage)
        cfn_stage.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
            destination_arn=self.access_logs.log_group_arn, format=ACCESS_LOG_FORMAT)
        self.url = self.api.api_endpoint
