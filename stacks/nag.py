"""cdk-nag acknowledgements: one finding on one construct, each with its reason.

Every exception in the app goes through :func:`acknowledge`, so ``grep acknowledge stacks/``
lists them all (the README's security section does too).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge cdk-nag ``rule`` (e.g. ``"AwsSolutions-IAM5[Resource::*]"``) on ``construct`` only."""
    if len(reason) < 20:
        raise ValueError(f"acknowledging {rule} needs a specific reason, got {reason!r}")
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))
