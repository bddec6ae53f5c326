"""Who is calling: a :class:`~querio.models.Principal` from the API Gateway JWT authorizer.

Identity comes ONLY from ``requestContext.authorizer.jwt.claims`` of an HTTP API (payload
v2) event: API Gateway has verified the token's signature, issuer, audience and expiry before
the event exists. Nothing the client controls directly (headers, query, body) is trusted.

- ``sub`` (required, non-empty, ≤ 256 characters) is the user id.
- The tenant is the first non-empty claim of :data:`TENANT_CLAIMS` (``custom:tenant_id``,
  Cognito's custom attribute, wins over a plain ``tenant_id``), else ``sub`` itself, so a
  user without a tenant claim gets a private tenant.
- A tenant id must match :data:`querio.models.TENANT_PATTERN` (it is embedded in blob and
  cache keys). A token whose tenant cannot be used is answered 401, like a missing claim:
  the token does not identify a usable principal, and there is nothing it *is* allowed.

Every failure raises :class:`querio.errors.Unauthorized` (HTTP 401).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from querio.errors import Unauthorized
from querio.models import TENANT_PATTERN, Principal

#: Claims that may carry the tenant, in order of preference.
TENANT_CLAIMS: tuple[str, ...] = ("custom:tenant_id", "tenant_id")
MAX_USER_ID = 256
_TENANT = re.compile(TENANT_PATTERN)


def claims_from_event(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """``requestContext.authorizer.jwt.claims`` of a v2 event; ``Unauthorized`` if absent."""
    node: Any = event
    for key in ("requestContext", "authorizer", "jwt", "claims"):
        node = node.get(key) if isinstance(node, Mapping) else None
        if node is None:
            raise Unauthorized("no verified identity: the request carries no JWT authorizer claims")
    if not isinstance(node, Mapping):
        raise Unauthorized("no verified identity: the JWT authorizer claims are malformed")
    return node


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """Build the principal from verified claims (see the module docstring for the rules)."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip():
        raise Unauthorized("the token has no 'sub' claim")
    if len(sub) > MAX_USER_ID:
        raise Unauthorized(f"the token's 'sub' claim is longer than {MAX_USER_ID} characters")
    tenant: Any = sub
    for name in TENANT_CLAIMS:
        value = claims.get(name)
        if value not in (None, ""):
            tenant = value
            break
    if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
        raise Unauthorized("the token's tenant is not a valid tenant id")
    return Principal(tenant_id=tenant, user_id=sub)


def principal_from_event(event: Mapping[str, Any]) -> Principal:
    """The caller of an API Gateway HTTP API (v2) event.

    Shape read: ``{"requestContext": {"authorizer": {"jwt": {"claims": {"sub": ..., ...}}}}}``.
    Raises :class:`~querio.errors.Unauthorized` when the claims are missing or unusable.
    """
    return principal_from_claims(claims_from_event(event))
