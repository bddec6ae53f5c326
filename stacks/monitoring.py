"""Alarms and a dashboard: AWS metrics plus the Powertools (EMF) metrics the functions emit.

Alarms (all to one SNS topic; subscribe an address with ``-c alarm_email=...``):
DLQ depth > 0 (ingest and archive), errors and throttles per function, API 5xx and p99
latency, RDS CPU and free storage, and from Powertools: ``IngestFailures``,
``CacheErrors`` (Redis down or slow) and ``ArchiveErrors``. Powertools metrics live in
namespace ``Querio`` with the dimension ``service`` (``POWERTOOLS_SERVICE_NAME=querio``).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from querio.tiers import Tier
from stacks.compute import QuerioFunction
from stacks.fulltext import FulltextDomain

NAMESPACE = "Querio"
SERVICE = "querio"


def powertools_metric(name: str, statistic: str = "Sum", period_min: int = 5) -> cw.Metric:
    return cw.Metric(namespace=NAMESPACE, metric_name=name, dimensions_map={"service": SERVICE},
                     statistic=statistic, period=Duration.minutes(period_min))


class Monitoring(Construct):
    """``topic``, ``alarms`` (by name) and ``dashboard``."""

    def __init__(self, scope: Construct, id: str, *, tier: Tier, functions: dict[str, QuerioFunction],
                 dlqs: dict[str, sqs.IQueue], api: apigw.HttpApi, database: rds.DatabaseInstance,
                 alarm_email: str | None, fulltext: FulltextDomain | None = None) -> None:
        super().__init__(scope, id)
        self.topic = sns.Topic(self, "Alarms", display_name=f"Querio alarms ({tier.name})", enforce_ssl=True,
                               master_key=None)
        if alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(alarm_email))
        action = cw_actions.SnsAction(self.topic)
        self.alarms: dict[str, cw.Alarm] = {}

        def alarm(name: str, metric: cw.Metric, threshold: float, description: str,
                  comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                  periods: int = 1) -> None:
            a = metric.create_alarm(self, name, threshold=threshold, evaluation_periods=periods,
                                    comparison_operator=comparison, alarm_description=description,
                                    treat_missing_data=cw.TreatMissingData.NOT_BREACHING)
            a.add_alarm_action(action)
            self.alarms[name] = a

        for name, queue in dlqs.items():
            alarm(f"{name}DlqDepth", queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"), 0,
                f"Messages in the {name} dead-letter queue: inspect, fix, then redrive")
        for name, f in functions.items():
            alarm(f"{name}Errors", f.function.metric_errors(period=Duration.minutes(5)), 0,
                  f"The {name} function raised (the message or request will be retried or was lost)")
            alarm(f"{name}Throttles", f.function.metric_throttles(period=Duration.minutes(5)), 0,
                  f"The {name} function was throttled (reserved or account concurrency)")
        alarm("Api5xx", api.metric_server_error(period=Duration.minutes(5)), 5, "API 5xx responses")
        alarm("ApiLatencyP99", api.metric_latency(period=Duration.minutes(5), statistic="p99"), 3000,
              "API p99 latency above 3 s for 3 periods", periods=3)
        if fulltext is not None:
            for name, metric, threshold, description, comparison in fulltext.alarm_metrics(tier):
                alarm(name, metric, threshold, description, comparison)
        alarm("DatabaseCpu", database.metric_cpu_utilization(period=Duration.minutes(5)), 80,
              "RDS CPU above 80% for 15 minutes", periods=3)
        alarm("DatabaseFreeStorage", database.metric_free_storage_space(period=Duration.minutes(5)),
              2 * 1024**3, "RDS free storage under 2 GiB (autoscaling may be at its ceiling)",
              comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD)
        alarm("IngestFailuresMetric", powertools_metric("IngestFailures"), 0,
              "Documents failed to ingest (Powertools metric; the reason is a dimension in the logs)")
        alarm("CacheErrors", powertools_metric("CacheErrors"), 50,
              "Redis unavailable or slow: answers continue without the cache")
        alarm("ArchiveRunErrors", powertools_metric("ArchiveErrors", period_min=60), 0, "The archive run had errors")

        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=None)
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Query latency (ms, Powertools)", left=[
                powertools_metric("QueryLatency", "p50", 1), powertools_metric("QueryLatency", "p99", 1)]),
            cw.GraphWidget(title="Cache", left=[powertools_metric("CacheHits"), powertools_metric("CacheMisses"),
                                                powertools_metric("CacheErrors")]),
            cw.GraphWidget(title="Ingest", left=[powertools_metric("DocumentsIngested"),
                                                 powertools_metric("PagesIngested"),
                                                 powertools_metric("ChunksIngested"),
                                                 powertools_metric("IngestFailures")]),
            cw.GraphWidget(title="Ingest failures by reason", left=[cw.MathExpression(
                expression=f"SEARCH('{{{NAMESPACE},reason,service}} MetricName=\"IngestFailuresByReason\"', "
                           "'Sum', 300)", label="", period=Duration.minutes(5))]),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="API", left=[api.metric_count(), api.metric_server_error(),
                                              api.metric_client_error()],
                           right=[api.metric_latency(statistic="p99")]),
            cw.GraphWidget(title="Functions: errors and throttles",
                           left=[f.function.metric_errors() for f in functions.values()]
                           + [f.function.metric_throttles() for f in functions.values()]),
            cw.GraphWidget(title="Queues", left=[q.metric_approximate_number_of_messages_visible()
                                                 for q in dlqs.values()]),
            cw.GraphWidget(title="RDS", left=[database.metric_cpu_utilization()],
                           right=[database.metric_free_storage_space()]),
        )
