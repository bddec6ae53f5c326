"""Identity comes only from verified JWT authorizer claims (no database needed)."""

from __future__ import annotations

from typing import Any

import pytest

from querio.api.identity import principal_from_event
from querio.errors import Unauthorized
from querio.models import Principal


def event(claims: Any, *, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"headers": headers or {},
            "requestContext": {"authorizer": {"jwt": {"claims": claims, "scopes": None}}}}


def test_sub_is_the_user_and_tenant_claim_is_the_tenant() -> None:
    assert principal_from_event(event({"sub": "u-1", "tenant_id": "acme"})) == Principal(
        tenant_id="acme", user_id="u-1")


def test_cognito_custom_tenant_claim_wins_over_plain_tenant_id() -> None:
    p = principal_from_event(event({"sub": "u-1", "custom:tenant_id": "cognito-t", "tenant_id": "plain"}))
    assert p.tenant_id == "cognito-t"


@pytest.mark.parametrize("claims", [{"sub": "u-1"}, {"sub": "u-1", "tenant_id": ""},
                                    {"sub": "u-1", "custom:tenant_id": None}])
def test_tenant_defaults_to_sub(claims: dict[str, Any]) -> None:
    assert principal_from_event(event(claims)) == Principal(tenant_id="u-1", user_id="u-1")


@pytest.mark.parametrize("evt", [
    {},
    {"requestContext": {}},
    {"requestContext": {"authorizer": {}}},
    {"requestContext": {"authorizer": {"jwt": {}}}},
    {"requestContext": {"authorizer": {"jwt": {"claims": "sub=u-1"}}}},
    {"requestContext": {"authorizer": {"lambda": {"sub": "u-1"}}}},  # only the JWT authorizer counts
], ids=["no-context", "no-authorizer", "empty-authorizer", "no-claims", "claims-not-a-map", "lambda-auth"])
def test_missing_claims_are_unauthorized(evt: dict[str, Any]) -> None:
    with pytest.raises(Unauthorized):
        principal_from_event(evt)


@pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"sub": "   "}, {"sub": 42}, {"tenant_id": "acme"},
                                    {"sub": "x" * 257}])
def test_bad_sub_is_unauthorized(claims: dict[str, Any]) -> None:
    with pytest.raises(Unauthorized):
        principal_from_event(event(claims))


@pytest.mark.parametrize("tenant", ["../etc", "a/b", "-leading-dash", "x" * 129, "has space", "é"])
def test_tenant_outside_the_pattern_is_unauthorized(tenant: str) -> None:
    with pytest.raises(Unauthorized):
        principal_from_event(event({"sub": "u-1", "tenant_id": tenant}))


def test_sub_that_is_not_a_valid_tenant_needs_a_tenant_claim() -> None:
    with pytest.raises(Unauthorized):
        principal_from_event(event({"sub": "user with spaces"}))
    assert principal_from_event(event({"sub": "user with spaces", "tenant_id": "t1"})).tenant_id == "t1"


def test_headers_never_set_identity() -> None:
    with pytest.raises(Unauthorized):
        principal_from_event({"headers": {"x-tenant-id": "acme", "authorization": "Bearer abc"},
                              "requestContext": {}})
