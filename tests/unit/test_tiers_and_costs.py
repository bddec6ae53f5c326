"""The tier table (pure data) and ``querio cost``: sources, units, validation and arithmetic."""

from __future__ import annotations

import dataclasses
import json

import pytest

from querio.cli import main
from querio.costs import WORKLOADS, estimate
from querio.tiers import TIERS, UnknownTier, get_tier

ALL = list(TIERS)


@pytest.mark.parametrize("name", ALL)
def test_every_number_and_choice_names_its_source(name: str) -> None:
    tier = get_tier(name)
    missing = [p for p in tier.field_paths() if p not in tier.sources and p != "name"]
    assert missing == []
    assert all(len(src) > 10 for src in tier.sources.values())


def test_tiers_are_frozen_and_read_only() -> None:
    tier = get_tier("small")
    with pytest.raises(dataclasses.FrozenInstanceError):
        tier.database.multi_az = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        TIERS["small"] = tier  # type: ignore[index]
    with pytest.raises(TypeError):
        tier.sources["x"] = "y"  # type: ignore[index]


@pytest.mark.parametrize("bad", ["medium", "Large", "prod", "small;drop"])
def test_unknown_tier_lists_the_valid_ones(bad: str) -> None:
    with pytest.raises(UnknownTier, match=r"valid tiers: small, mid, enterprise"):
        get_tier(bad)


def test_default_and_case_insensitive_names() -> None:
    assert get_tier(None).name == "small" and get_tier(" MID ").name == "mid"


def test_seed_advice_is_encoded() -> None:
    small, mid, ent = (get_tier(n) for n in ALL)
    assert (small.vector_backend, mid.vector_backend, ent.vector_backend) == ("pgvector", "pinecone", "pinecone")
    assert [t.database.instance_class for t in (small, mid)] == ["db.t3.micro", "db.t3.small"]
    assert [t.database.multi_az for t in (small, mid, ent)] == [False, False, True]
    assert small.cache.node_type == "cache.t3.micro" and mid.cache.replicas_per_shard >= 1
    assert ent.cache.cluster_mode and not mid.cache.cluster_mode
    assert all(t.storage.infrequent_access_after_days == 90 and t.storage.glacier_after_days == 365
               for t in (small, mid, ent))
    assert all(t.archive.archive_after_days == 365 for t in (small, mid, ent))
    assert [t.api.waf for t in (small, mid, ent)] == [False, False, True]
    assert small.nat_gateways == 0
    assert all(t.query_function.timeout_s < 30 for t in (small, mid, ent))


@pytest.mark.parametrize("name", ALL)
def test_cost_estimate_lines_add_up_and_follow_the_tier(name: str) -> None:
    tier = get_tier(name)
    est = estimate(tier)
    items = [line.item for line in est.lines]
    assert est.total_usd == pytest.approx(sum(line.usd for line in est.lines), abs=0.01)
    assert any("Pinecone" in i for i in items) == (tier.vector_backend == "pinecone")
    assert any("NAT" in i for i in items) == (tier.nat_gateways > 0)
    assert any("WAF" in i for i in items) == tier.api.waf
    assert any(tier.database.instance_class in i for i in items)
    assert any(f"{WORKLOADS[name].documents:,} documents" in a for a in est.assumptions)
    assert all(line.source for line in est.lines)


def test_costs_grow_with_the_tier() -> None:
    totals = [estimate(get_tier(n)).total_usd for n in ALL]
    assert totals == sorted(totals) and totals[0] > 0


def test_cost_command_prints_the_seed_layout_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--tier", "mid"]) == 0
    out = capsys.readouterr().out
    assert "PostgreSQL RDS (db.t3.small):" in out and "Total:" in out and "Assumptions:" in out
    assert main(["cost", "--tier", "enterprise", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tier"] == "enterprise" and data["total_usd"] > 0 and data["lines"]


def test_cost_command_rejects_an_unknown_tier_with_usage_exit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--tier", "galactic"]) == 2
    assert "valid tiers: small, mid, enterprise" in capsys.readouterr().err


@pytest.mark.parametrize("name", ALL)
def test_queue_visibility_timeout_is_derived_from_the_ingest_timeout(name: str) -> None:
    # AWS (Lambda with SQS): visibility >= 6x the function timeout + the batching window. It is
    # derived, never a second literal, so a longer ingest timeout cannot leave the queue behind.
    tier = get_tier(name)
    assert tier.queue_visibility_timeout_s == 6 * tier.ingest_function.timeout_s + tier.queue.max_batching_window_s
    longer = dataclasses.replace(
        tier, ingest_function=dataclasses.replace(tier.ingest_function, timeout_s=1200),
        queue=dataclasses.replace(tier.queue, max_batching_window_s=20))
    assert longer.queue_visibility_timeout_s == 6 * 1200 + 20
    assert not any("visibility" in path for path in tier.field_paths())  # no separate literal to drift
    too_long = dataclasses.replace(tier, ingest_function=dataclasses.replace(tier.ingest_function, timeout_s=7300))
    with pytest.raises(ValueError, match="at most 43200"):
        _ = too_long.queue_visibility_timeout_s
