"""The VPC: private subnets only (plus public ones for NAT where a tier needs one), VPC
endpoints for every AWS service the functions call, and flow logs.

Why no NAT in the small tier: S3 has a free gateway endpoint, and SQS and Secrets Manager
have interface endpoints (~$7.30 per AZ-month each). Everything the functions reach is
covered, so a NAT gateway (~$33/month plus $0.045/GB, the fixed cost users complain about
most) buys nothing. Mid and enterprise add NAT only because Pinecone's API is on the public
internet (one NAT for mid; one per AZ for enterprise, so losing an AZ keeps vector search up).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from querio.tiers import Tier


class Network(Construct):
    """``vpc``, ``app_subnets`` (functions), ``data_subnets`` (RDS, Redis), ``functions_sg``."""

    def __init__(self, scope: Construct, id: str, *, tier: Tier) -> None:
        super().__init__(scope, id)
        egress = tier.nat_gateways > 0
        subnets = [
            ec2.SubnetConfiguration(name="app", cidr_mask=22, subnet_type=(
                ec2.SubnetType.PRIVATE_WITH_EGRESS if egress else ec2.SubnetType.PRIVATE_ISOLATED)),
            ec2.SubnetConfiguration(name="data", cidr_mask=24, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        ]
        if egress:
            subnets.insert(0, ec2.SubnetConfiguration(name="public", cidr_mask=26, subnet_type=ec2.SubnetType.PUBLIC,
                                                      map_public_ip_on_launch=False))
        flow_log_group = logs.LogGroup(self, "FlowLogs", retention=logs.RetentionDays.ONE_MONTH,
                                       removal_policy=RemovalPolicy.DESTROY)
        self.vpc = ec2.Vpc(
            self, "Vpc", ip_addresses=ec2.IpAddresses.cidr("10.40.0.0/16"), max_azs=tier.availability_zones,
            nat_gateways=tier.nat_gateways, subnet_configuration=subnets, restrict_default_security_group=True,
            flow_logs={"all": ec2.FlowLogOptions(
                destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
                traffic_type=ec2.FlowLogTrafficType.REJECT)},
        )
        self.app_subnets = ec2.SubnetSelection(subnet_group_name="app")
        self.data_subnets = ec2.SubnetSelection(subnet_group_name="data")
        self.functions_sg = ec2.SecurityGroup(self, "FunctionsSg", vpc=self.vpc, allow_all_outbound=True,
                                              description="Querio Lambda functions")
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3,
                                      subnets=[self.app_subnets])
        endpoint_sg = ec2.SecurityGroup(self, "EndpointsSg", vpc=self.vpc, allow_all_outbound=False,
                                        description="Interface endpoints: HTTPS from the functions only")
        endpoint_sg.add_ingress_rule(self.functions_sg, ec2.Port.tcp(443), "functions to AWS APIs")
        for name, service in (("Sqs", ec2.InterfaceVpcEndpointAwsService.SQS),
                              ("SecretsManager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER)):
            self.vpc.add_interface_endpoint(name, service=service, subnets=self.app_subnets,
                                            security_groups=[endpoint_sg], private_dns_enabled=True, open=False)
        self.region = Stack.of(self).region
