"""Who is calling: a :class:`~querio.models.Principal` from the API Gateway JWT authorizer.

Identity comes ONLY from ``requestContext.authorizer.jwt.claims`` of an HTTP API (payload
v2) event: API Gateway has verified the token's signature, issuer, audience and expiry before
the event exists. Nothing the client controls directly (headers, query, body) is trusted.

- ``sub`` (required, non-empty, ≤ 256 characters) is the user id. Otherwise: 401.
- The tenant is the ONE claim named by ``QUERIO_TENANT_CLAIM`` (default ``custom:tenant_id``).
  Payload v2 passes claims as strings and list claims as ``"[a b]"``: one tenant in brackets
  is that tenant; two or more, none, an empty or null value, or a value outside
  :data:`querio.models.TENANT_PATTERN` is 403 (:class:`~querio.errors.Forbidden`). A present
  but unusable claim never falls back to anything.
- Without the claim, the user works in a personal workspace,
  :func:`querio.models.personal_namespace` (``u~`` + a digest of ``sub``): a namespace no tenant
  id can equal, so a ``sub`` that happens to equal a tenant id (``t-east``) reads nothing of
  that tenant. With ``QUERIO_PERSONAL_WORKSPACES=false`` the claim is required (403).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from querio.config import Settings
from querio.errors import Forbidden, Unauthorized
from querio.models import TENANT_PATTERN, Principal, personal_namespace

DEFAULT_TENANT_CLAIM: str = Settings.model_fields["tenant_claim"].default
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


def tenant_from_claim(value: Any, claim: str) -> str:
    """The one tenant a present claim names; :class:`Forbidden` for anything else."""
    if isinstance(value, str):
        text = value
        # payload v2 renders a list claim as "[a b]"; a plain string is one value
        items: list[Any] = text[1:-1].split() if text.startswith("[") and text.endswith("]") else [text]
    elif isinstance(value, list | tuple):  # a JSON list (authorizers other than HTTP API's)
        items = list(value)
    else:
        raise Forbidden(f"the token's {claim!r} claim is not a tenant id")
    if not items:
        raise Forbidden(f"the token's {claim!r} claim names no tenant")
    if len(items) > 1:
        raise Forbidden(f"the token's {claim!r} claim names {len(items)} tenants; a request acts for exactly one")
    tenant = items[0]
    if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
        raise Forbidden(f"the token's {claim!r} claim is not a valid tenant id")
    return tenant


def principal_from_claims(claims: Mapping[str, Any], *, tenant_claim: str = DEFAULT_TENANT_CLAIM,
                          personal_workspaces: bool = True) -> Principal:
    """Build the principal from verified claims (see the module docstring for the rules)."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip():
        raise Unauthorized("the token has no 'sub' claim")
    if len(sub) > MAX_USER_ID:
        raise Unauthorized(f"the token's 'sub' claim is longer than {MAX_USER_ID} characters")
    if tenant_claim in claims:
        return Principal(tenant_id=tenant_from_claim(claims[tenant_claim], tenant_claim), user_id=sub)
    if not personal_workspaces:
        raise Forbidden(f"the token has no {tenant_claim!r} claim, and this deployment requires a tenant")
    return Principal(tenant_id=personal_namespace(sub), user_id=sub)


def principal_from_event(event: Mapping[str, Any], *, tenant_claim: str = DEFAULT_TENANT_CLAIM,
                         personal_workspaces: bool = True) -> Principal:
    """The caller of an API Gateway HTTP API (v2) event.

    Shape read: ``{"requestContext": {"authorizer": {"jwt": {"claims": {"sub": ..., ...}}}}}``.
    Raises :class:`~querio.errors.Unauthorized` when the claims or ``sub`` are missing, and
    :class:`~querio.errors.Forbidden` when the tenant claim is unusable.
    """
    return principal_from_claims(claims_from_event(event), tenant_claim=tenant_claim,
                                 personal_workspaces=personal_workspaces)
