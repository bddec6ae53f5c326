"""Querio's CDK app: stacks split by lifecycle, one construct per concern. CDK only.

``network`` (VPC, endpoints) → ``stateful`` (bucket, queues, RDS, Redis, Cognito, secrets) →
``compute`` (layers, functions, event sources, schedule, migrations) → ``api`` (HTTP API, JWT)
→ ``edge`` (enterprise: CloudFront + WAF) → ``monitoring`` (alarms, dashboard).
"""
