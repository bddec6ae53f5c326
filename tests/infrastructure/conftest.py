"""Synthesize every tier once per session (bundling skipped: templates only), with cdk-nag on.

Each tier is one top-level stack (``Querio``) of nested stacks; ``Synth.templates`` holds the
top-level template as ``"Root"`` and each nested stack's under its short name (``Network``,
``Stateful``, ``Compute``, ``Api``, ``Monitoring``, and ``Edge`` for enterprise).

``aws:cdk:bundling-stacks = []`` makes CDK skip pip and the model export; asset hashes are
still computed from their inputs, so templates are the ones ``cdk synth`` produces.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_DEPRECATED", "quiet")

TIERS = ("small", "mid", "enterprise")


@dataclass
class Synth:
    tier: str
    outdir: Path
    stacks: dict[str, object]  # top-level stack name -> its cloud-assembly artifact
    templates: dict[str, dict]  # "Root" and the nested stacks' short names (Network, ...) -> template JSON

    def template(self, short: str):  # -> aws_cdk.assertions.Template
        from aws_cdk.assertions import Template

        return Template.from_json(self.templates[short])

    def validation_report(self) -> dict:
        path = self.outdir / "validation-report.json"
        return json.loads(path.read_text()) if path.exists() else {"pluginReports": []}


CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"


def synth_tier(tier: str, outdir: Path, **context: object) -> Synth:
    """Synthesize ``tier`` as ``cdk synth`` would (cdk.json's feature flags included), minus bundling."""
    from app import create_app
    from stacks.querio_app import QuerioStack

    flags = json.loads(CDK_JSON.read_text())["context"]
    app = create_app(context={**flags, "tier": tier, "aws:cdk:bundling-stacks": [], **context}, outdir=str(outdir))
    assembly = app.synth()  # raises when cdk-nag reports an unacknowledged finding
    (root,) = [c for c in app.node.children if isinstance(c, QuerioStack)]
    templates = {"Root": assembly.get_stack_by_name(root.stack_name).template}
    for short, nested in root.nested_stacks.items():
        templates[short] = json.loads((outdir / nested.template_file).read_text())
    return Synth(tier=tier, outdir=outdir, stacks={s.stack_name: s for s in assembly.stacks}, templates=templates)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synth]:
    return {tier: synth_tier(tier, tmp_path_factory.mktemp(f"cdk-{tier}")) for tier in TIERS}
