"""Identity comes only from verified JWT authorizer claims (no database needed)."""

from __future__ import annotations

from typing import Any

import pytest

from querio.api.identity import principal_from_event
from querio.errors import Forbidden, Unauthorized
from querio.ingest.events import parse_upload_key, upload_key
from querio.models import PERSONAL_PATTERN, Principal, personal_namespace

CLAIM = "custom:tenant_id"


def event(claims: Any, *, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"headers": headers or {},
            "requestContext": {"authorizer": {"jwt": {"claims": claims, "scopes": None}}}}


def test_sub_is_the_user_and_tenant_claim_is_the_tenant() -> None:
    assert principal_from_event(event({"sub": "u-1", CLAIM: "acme"})) == Principal(tenant_id="acme", user_id="u-1")


def test_the_tenant_claim_name_is_a_setting() -> None:
    claims = {"sub": "u-1", CLAIM: "cognito-t", "org": "other-pool-t"}
    assert principal_from_event(event(claims)).tenant_id == "cognito-t"
    assert principal_from_event(event(claims), tenant_claim="org").tenant_id == "other-pool-t"
    # a claim of another name is not a tenant: no guessing between claims
    assert principal_from_event(event({"sub": "u-1", "tenant_id": "acme"})).tenant_id == personal_namespace("u-1")


@pytest.mark.parametrize("sub", ["t-east", "acme", "u-1", "user with spaces", "é" * 10, "x" * 256])
def test_without_a_tenant_claim_the_user_gets_a_personal_workspace_no_tenant_can_equal(sub: str) -> None:
    p = principal_from_event(event({"sub": sub}))
    assert p.tenant_id == personal_namespace(sub) and p.user_id == sub
    assert p.tenant_id != sub and p.tenant_id.startswith("u~")
    # and no tenant claim can ever name it
    with pytest.raises(Forbidden):
        principal_from_event(event({"sub": "someone", CLAIM: p.tenant_id}))


def test_personal_workspaces_can_be_turned_off() -> None:
    with pytest.raises(Forbidden):
        principal_from_event(event({"sub": "t-east"}), personal_workspaces=False)
    assert principal_from_event(event({"sub": "u", CLAIM: "t-east"}), personal_workspaces=False).tenant_id == "t-east"


@pytest.mark.parametrize(("value", "tenant"), [("[t-east]", "t-east"), ("[ t-east ]", "t-east"), (["acme"], "acme")])
def test_a_bracketed_list_of_one_tenant_is_that_tenant(value: Any, tenant: str) -> None:
    assert principal_from_event(event({"sub": "u-1", CLAIM: value})).tenant_id == tenant


@pytest.mark.parametrize("value", [
    "[t-east t-west]", "[a b c]", ["a", "b"], "[t-east t-east]",   # two or more: which one? none
    "", "[]", "[ ]", None, [], 42, {"t": 1},                          # empty or not a string
    "[t-east", "t-east]", " t-east", "t-east ", "t east", "*", "../t-east", "u~" + "0" * 32,
])
def test_an_ambiguous_empty_or_malformed_tenant_claim_is_forbidden_never_a_fallback(value: Any) -> None:
    with pytest.raises(Forbidden):
        principal_from_event(event({"sub": "t-east", CLAIM: value}))


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


@pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"sub": "   "}, {"sub": 42}, {CLAIM: "acme"},
                                    {"sub": "x" * 257}])
def test_bad_sub_is_unauthorized(claims: dict[str, Any]) -> None:
    with pytest.raises(Unauthorized):
        principal_from_event(event(claims))


@pytest.mark.parametrize("tenant", ["../etc", "a/b", "-leading-dash", "x" * 129, "has space", "é"])
def test_tenant_outside_the_pattern_is_forbidden(tenant: str) -> None:
    with pytest.raises(Forbidden):
        principal_from_event(event({"sub": "u-1", CLAIM: tenant}))


def test_headers_never_set_identity() -> None:
    with pytest.raises(Unauthorized):
        principal_from_event({"headers": {"x-tenant-id": "acme", "authorization": "Bearer abc"},
                              "requestContext": {}})


def test_upload_keys_of_every_namespace_parse_back_to_it_and_nowhere_else() -> None:
    personal = personal_namespace("t-east")
    for ns in ("t-east", "acme.corp", personal):
        assert parse_upload_key(upload_key(ns, "0a.pdf")) == (ns, "0a.pdf")
    for bad in ("u~", "u~" + "0" * 31, personal + "0", personal.upper(), "u~t-east", "~t-east", "t~east"):
        assert isinstance(parse_upload_key(f"tenants/{bad}/uploads/x.pdf"), str), bad
    assert personal.replace("u~", "", 1) != "t-east"
    import re
    assert re.fullmatch(PERSONAL_PATTERN, personal)
