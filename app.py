#!/usr/bin/env python3
"""CDK entry point: ``cdk deploy --context tier=small|mid|enterprise [-c env=STAGE]``.

The app has exactly one top-level stack (``Querio``, nested stacks inside), so the CLI needs no
stack name and no ``--all``. Context (all optional): ``tier`` (default small), ``env`` (stage
name, prefixes the stack name), ``region`` (else CDK_DEFAULT_REGION; any region, enterprise
included: its us-east-1 WAF is made by a custom resource), ``replica_region`` (enterprise; default
per primary region, ``stacks.replication.REPLICA_REGIONS``), ``cors_origins`` (comma-separated,
default ``*``), ``alarm_email``, ``pinecone_index`` (mid/enterprise, default ``querio``),
``bedrock_model_id`` (generative answers; extractive when unset).

``QUERIO_CDK_SKIP_BUNDLING=1`` makes any CLI command template-only (no pip, no model export):
for ``cdk ls``/``diff`` and the tests that run the real CLI; never for a real deploy.

Synth is offline and deterministic: no AWS calls, no git, no Docker (see stacks/bundling.py).
cdk-nag's AwsSolutions pack validates every stack; acknowledged findings are listed in
stacks/ next to their resources (``grep -rn acknowledge stacks``).
"""

from __future__ import annotations

import os
import sys

# jsii prints an 11-line "Node 20 is end-of-life" banner in every process; Node 20 still runs
# aws-cdk-lib, and the banner buries real synth output. Set before aws_cdk starts its runtime.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from querio.tiers import UnknownTier, get_tier
from stacks.querio_app import AppOptions, build


def _context(app: App, key: str) -> str | None:
    value = app.node.try_get_context(key)
    return str(value).strip() if value not in (None, "") else None


def create_app(context: dict[str, object] | None = None, outdir: str | None = None) -> App:
    """The app for ``cdk`` (context from ``-c``) or for tests (``context`` given here)."""
    # after the CLI's context, which asks to bundle every selected stack
    skip = os.environ.get("QUERIO_CDK_SKIP_BUNDLING") == "1"
    app = App(context=context, outdir=outdir, post_cli_context={"aws:cdk:bundling-stacks": []} if skip else None)
    tier = get_tier(_context(app, "tier"))  # UnknownTier names the valid tiers
    region = _context(app, "region") or os.environ.get("CDK_DEFAULT_REGION")
    opts = AppOptions(
        stage=_context(app, "env") or "",
        region=region,
        account=_context(app, "account") or os.environ.get("CDK_DEFAULT_ACCOUNT"),
        cors_origins=[o.strip() for o in (_context(app, "cors_origins") or "*").split(",") if o.strip()],
        alarm_email=_context(app, "alarm_email"),
        pinecone_index=_context(app, "pinecone_index") or "querio",
        bedrock_model_id=_context(app, "bedrock_model_id"),
        replica_region=_context(app, "replica_region"),
    )
    build(app, tier, opts)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


if __name__ == "__main__":
    try:
        cdk_app = create_app()
    except UnknownTier as exc:
        sys.exit(f"querio: {exc} (pass -c tier=small|mid|enterprise)")
    cdk_app.synth()
