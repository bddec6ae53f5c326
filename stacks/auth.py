"""Cognito: the user pool behind the HTTP API's JWT authorizer.

Identity reaches the runtime as JWT claims (``querio.api.identity``): ``sub`` is the user and
the immutable custom attribute ``tenant_id`` (claim ``custom:tenant_id``) the tenant. Only
administrators create users and set ``tenant_id``; the app client cannot write it, so a user
can never move themselves into another tenant.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from querio.tiers import Tier
from stacks.nag import acknowledge

#: The pool's immutable custom attribute naming the user's tenant, and the claim it becomes.
TENANT_ATTRIBUTE = "tenant_id"
TENANT_CLAIM = f"custom:{TENANT_ATTRIBUTE}"


class UserPool(Construct):
    """``pool`` and ``client`` (public SPA/CLI client: SRP auth, no secret)."""

    def __init__(self, scope: Construct, id: str, *, tier: Tier) -> None:
        super().__init__(scope, id)
        enterprise = tier.api.waf
        self.pool = cognito.UserPool(
            self, "Users", self_sign_up_enabled=False, sign_in_aliases=cognito.SignInAliases(email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            custom_attributes={TENANT_ATTRIBUTE: cognito.StringAttribute(min_len=1, max_len=128, mutable=False)},
            password_policy=cognito.PasswordPolicy(min_length=12, require_digits=True, require_lowercase=True,
                                                   require_uppercase=True, require_symbols=True,
                                                   temp_password_validity=Duration.days(3)),
            mfa=cognito.Mfa.REQUIRED if enterprise else cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.PLUS if enterprise else cognito.FeaturePlan.ESSENTIALS,
            standard_threat_protection_mode=(cognito.StandardThreatProtectionMode.FULL_FUNCTION if enterprise
                                             else None),
            deletion_protection=tier.database.deletion_protection,
            removal_policy=RemovalPolicy.RETAIN,
        )
        readable = cognito.ClientAttributes().with_standard_attributes(email=True, email_verified=True) \
            .with_custom_attributes(TENANT_ATTRIBUTE)
        writable = cognito.ClientAttributes().with_standard_attributes(email=True)  # never tenant_id
        self.client = self.pool.add_client(
            "Api", generate_secret=False, auth_flows=cognito.AuthFlow(user_srp=True),
            read_attributes=readable, write_attributes=writable, prevent_user_existence_errors=True,
            id_token_validity=Duration.hours(1), access_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(30), enable_token_revocation=True,
        )
        if not enterprise:
            acknowledge(self.pool, "AwsSolutions-COG2",
                        f"MFA is optional in the {tier.name} tier (TOTP offered to every user); the enterprise "
                        "tier requires it.")
            acknowledge(self.pool, "AwsSolutions-COG8",
                        f"The {tier.name} tier uses Cognito Essentials; Plus (threat protection, priced per MAU) "
                        "is the enterprise tier's.")
