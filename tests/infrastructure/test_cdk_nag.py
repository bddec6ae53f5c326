"""cdk-nag (AwsSolutions) over every tier: zero unacknowledged findings, each acknowledgment specific."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from querio.tiers import TIERS, UnknownTier

pytestmark = pytest.mark.infrastructure


@pytest.mark.parametrize("tier", list(TIERS))
def test_no_unacknowledged_aws_solutions_findings(synthesized, tier: str) -> None:
    # synth itself raised if an error-level finding were open; warnings do not raise, so read the report
    report = synthesized[tier].validation_report()
    open_findings = [v for plugin in report.get("pluginReports", []) for v in plugin.get("violations", [])]
    assert open_findings == []


def acknowledgments(outdir: Path) -> list[tuple[str, str, str]]:
    """``(construct path, rule, reason)`` for every acknowledgment in the cloud assembly."""
    found = []
    for meta in outdir.glob("*.metadata.json"):
        for path, entries in json.loads(meta.read_text()).items():
            for entry in entries:
                if entry.get("type") == "aws:cdk:acknowledged-rules":
                    found += [(path, rule, reason) for rule, reason in entry["data"].items()]
    return found


@pytest.mark.parametrize("tier", list(TIERS))
def test_every_acknowledgment_sits_on_one_resource_with_a_specific_reason(synthesized, tier: str) -> None:
    acks = [a for a in acknowledgments(synthesized[tier].outdir) if "AwsSolutions-" in a[1]]
    assert len(acks) >= 10  # the report is read, not empty
    for path, rule, reason in acks:
        assert path.count("/") >= 3, f"{rule} acknowledged on a whole stack: {path}"
        assert len(reason) >= 40 and "TODO" not in reason, (path, rule, reason)
    # one rule is never acknowledged twice on the same construct
    assert len({(p, r) for p, r, _ in acks}) == len(acks)


def test_unknown_tier_fails_at_once_listing_the_valid_ones(tmp_path) -> None:
    from tests.infrastructure.conftest import synth_tier

    with pytest.raises(UnknownTier, match="valid tiers: small, mid, enterprise"):
        synth_tier("medium", tmp_path)


def test_nag_is_live_a_dropped_acknowledgment_fails_synth(tmp_path, monkeypatch) -> None:
    """Guards the tests above: with one acknowledgment withheld, synth must fail on that rule."""
    import stacks.database as database
    from stacks.nag import acknowledge as real

    def all_but_rds3(construct, rule: str, reason: str) -> None:
        if rule != "AwsSolutions-RDS3":
            real(construct, rule, reason)

    monkeypatch.setattr(database, "acknowledge", all_but_rds3)
    from tests.infrastructure.conftest import synth_tier

    with pytest.raises(Exception, match="ValidationFailed"):
        synth_tier("small", tmp_path)
    assert "AwsSolutions-RDS3" in (tmp_path / "validation-report.json").read_text()


def _open_findings(tier: str, outdir: Path, monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, str]]:
    """``(construct path, rule)`` cdk-nag reports with every acknowledgment withheld."""
    import stacks.nag as nag

    class _NoAcknowledgments:
        @staticmethod
        def of(_construct: object) -> object:
            return type("Ignore", (), {"acknowledge": lambda self, *rules: None})()

    monkeypatch.setattr(nag, "Validations", _NoAcknowledgments)
    from tests.infrastructure.conftest import synth_tier

    with pytest.raises(Exception, match="ValidationFailed"):
        synth_tier(tier, outdir)
    report = json.loads((outdir / "validation-report.json").read_text())
    return {(c["constructPath"], v["ruleName"]) for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"
            for v in p["violations"] for c in v["violatingConstructs"]}


@pytest.mark.parametrize("tier", list(TIERS))
def test_every_acknowledgment_answers_a_real_finding(synthesized, tier: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    findings = _open_findings(tier, tmp_path, monkeypatch)
    acks = {(path.lstrip("/"), rule.split("::", 1)[-1])
            for path, rule, _ in acknowledgments(synthesized[tier].outdir) if "AwsSolutions-" in rule}
    unneeded = [(path, rule) for path, rule in acks
                if not any(f_rule == rule and (f_path == path or f_path.startswith(path + "/"))
                           for f_path, f_rule in findings)]
    assert unneeded == []
    # and nothing is open once they are applied (the session synth passed), so acks == findings
    assert len(findings) == len(acks)
