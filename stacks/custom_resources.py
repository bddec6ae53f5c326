"""Deploy-time custom resources on aws-cdk-lib's provider framework, with their cdk-nag answers.

:func:`provider` wraps an ``on_event`` function in ``cr.Provider`` (its own log group) and
acknowledges the two findings the framework's function always raises, on that function's role.
:func:`handler_function` is one module of ``stacks/handlers/`` as a function (boto3 from the Lambda
runtime, no layers): ``regional.py`` (resources placed in another region: the enterprise WAF web
ACL and the PDF replica bucket) and ``opensearch_security.py`` (the enterprise OpenSearch role
mapping, in the VPC).
"""

from __future__ import annotations

from aws_cdk import AssetHashType, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks import bundling
from stacks.nag import acknowledge

HANDLERS = bundling.ROOT / "stacks" / "handlers"
BASIC_POLICY = "service-role/AWSLambdaBasicExecutionRole"
BASIC_POLICY_FINDING = f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{BASIC_POLICY}]"
VPC_POLICY = "service-role/AWSLambdaVPCAccessExecutionRole"


def provider(scope: Construct, id: str, *, on_event: lambda_.IFunction) -> cr.Provider:
    """A provider for ``on_event`` whose framework function's findings are acknowledged, each on its role."""
    p = cr.Provider(scope, id, on_event_handler=on_event,
                    log_group=logs.LogGroup(scope, f"{id}Logs", retention=logs.RetentionDays.ONE_MONTH,
                                            removal_policy=RemovalPolicy.DESTROY))
    role = p.node.find_child("framework-onEvent").node.find_child("ServiceRole")
    acknowledge(role, BASIC_POLICY_FINDING, "aws-cdk-lib's custom-resource framework function only writes its "
                "own logs.")
    fn_id = Stack.of(on_event).get_logical_id(on_event.node.default_child)  # type: ignore[arg-type]
    acknowledge(role.node.find_child("DefaultPolicy"), f"AwsSolutions-IAM5[Resource::<{fn_id}.Arn>:*]",
                "The framework invokes the handler function's versions/aliases; aws-cdk-lib scopes it so.")
    return p


def logging_role(scope: Construct, id: str, description: str, *, in_vpc: bool = False) -> iam.Role:
    """A Lambda role that can only write its logs (AWS's basic execution policy), plus the network
    interfaces a function in a VPC needs (AWS's VPC access policy) when ``in_vpc``."""
    policy = VPC_POLICY if in_vpc else BASIC_POLICY
    role = iam.Role(scope, id, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description,
                    managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(policy)])
    acknowledge(role, f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]",
                "A deploy-time custom-resource function: AWS's minimal policy for its own CloudWatch logs"
                + (" and its VPC network interfaces (those EC2 actions only work on Resource '*')" if in_vpc else "")
                + "; its API permissions are explicit statements beside it.")
    return role


def handler_function(scope: Construct, id: str, *, module: str, description: str,
                     vpc: ec2.IVpc | None = None, subnets: ec2.SubnetSelection | None = None,
                     security_groups: list[ec2.ISecurityGroup] | None = None) -> lambda_.Function:
    """``stacks/handlers/{module}.py`` with handler ``{module}.on_event`` (boto3 from the Lambda runtime;
    no layers), its asset hashed from that file alone; in ``vpc`` when one is given."""
    path = HANDLERS / f"{module}.py"
    return lambda_.Function(
        scope, id, runtime=bundling.RUNTIME, handler=f"{module}.on_event", description=description,
        code=lambda_.Code.from_asset(str(HANDLERS), asset_hash_type=AssetHashType.CUSTOM,
                                     asset_hash=bundling.hash_files(path), exclude=["*", f"!{module}.py"]),
        role=logging_role(scope, f"{id}Role", description, in_vpc=vpc is not None), timeout=Duration.minutes(10),
        vpc=vpc, vpc_subnets=subnets, security_groups=security_groups,
        log_group=logs.LogGroup(scope, f"{id}Logs", retention=logs.RetentionDays.ONE_MONTH,
                                removal_policy=RemovalPolicy.DESTROY))


def regional_function(scope: Construct, id: str, *, description: str) -> lambda_.Function:
    """``stacks/handlers/regional.py``: see :func:`handler_function`."""
    return handler_function(scope, id, module="regional", description=description)
