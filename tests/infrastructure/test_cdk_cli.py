"""The design card's command, typed as written, through the pinned CDK CLI (package.json).

``npx cdk ls --context tier=X`` must list exactly one stack, and ``npx cdk deploy --context
tier=X`` / ``npx cdk destroy --context tier=X`` must get past stack selection: with several
top-level stacks the CLI stops at once ("specify which stacks to use ... or specify `--all`").
There is no AWS account here, so after selecting the stack the CLI must fail for one reason only:
no credentials. The environment makes that failure fast and offline: no credential files, the
EC2 metadata lookup off, an empty HOME, telemetry and notices off, and a subprocess timeout.
``QUERIO_CDK_SKIP_BUNDLING=1`` keeps the synth template-only (``make synth`` builds the assets).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from querio.tiers import TIERS

pytestmark = [pytest.mark.infrastructure, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "node_modules" / ".bin" / "cdk"
TIMEOUT_S = 240  # one synth with cdk-nag; the CLI itself must not wait on the network
SELECTION_REFUSED = "specify which stacks to use"
#: What the CLI says once it needs the account (env-agnostic stack) and finds no credentials
NO_CREDENTIALS = "Unable to resolve AWS account to use"


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if not CLI.exists():
        if shutil.which("npm") is None:
            if os.environ.get("CI") == "true":
                pytest.fail("npm is needed to install the pinned CDK CLI")
            pytest.skip("npm not installed")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True, capture_output=True,
                       timeout=600)
    home = tmp_path_factory.mktemp("home")
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "VIRTUAL_ENV")}
    return keep | {
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1",
        "CDK_DISABLE_CLI_TELEMETRY": "true", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "HF_HUB_OFFLINE": "1", "QUERIO_CDK_SKIP_BUNDLING": "1", "CI": "true",
    }


def cdk(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["npx", "--no-install", "cdk", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S, check=False)


@pytest.mark.parametrize("tier", list(TIERS))
def test_cdk_ls_lists_exactly_one_stack(cli_env: dict[str, str], tier: str) -> None:
    proc = cdk(cli_env, "ls", "--context", f"tier={tier}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["Querio"]


@pytest.mark.parametrize("tier", list(TIERS))
def test_the_design_cards_deploy_command_selects_the_tiers_stack(cli_env: dict[str, str], tier: str) -> None:
    proc = cdk(cli_env, "deploy", "--context", f"tier={tier}")
    out = proc.stdout + proc.stderr
    assert SELECTION_REFUSED not in out and "--all" not in out
    # the stack was selected and synthesized; only the missing account stops the deploy
    assert proc.returncode != 0
    assert NO_CREDENTIALS in out, out[-3000:]


def test_destroy_selects_the_one_stack_the_same_way(cli_env: dict[str, str]) -> None:
    proc = cdk(cli_env, "destroy", "--context", "tier=small", "--force")
    out = proc.stdout + proc.stderr
    assert SELECTION_REFUSED not in out
    assert proc.returncode != 0
    assert NO_CREDENTIALS in out or "no credentials have been configured" in out, out[-3000:]
