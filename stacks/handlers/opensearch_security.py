"""Deploy-time custom resource ``Custom::QuerioOpenSearchRoleMapping`` (enterprise, issue 15).

Fine-grained access control admits only its master user (``MasterRole``) until other IAM roles
are mapped to an OpenSearch security role; until then the functions' signed requests get 403
even though their IAM policies allow ``es:ESHttp*``. This handler closes that gap on every
deploy: it assumes ``MasterRole`` (STS), then, signed with SigV4 (service ``es``) as that role,

* ``PUT _plugins/_security/api/roles/{RoleName}``: ``cluster_permissions`` and one
  ``index_permissions`` entry (``index_patterns`` + ``allowed_actions``), as the stack passes them;
* ``PUT _plugins/_security/api/rolesmapping/{RoleName}``: ``backend_roles`` = the function role
  ARNs (an IAM role is a backend role under FGAC on Amazon OpenSearch Service).

Both PUTs create or replace, so Create and Update are the same idempotent call. The endpoint
is in the VPC, so the function runs in the app subnets (STS through the NAT gateways).

Delete is a no-op: the security index belongs to the domain and goes with it; a retained domain
keeps a mapping whose roles were deleted with the stack, and a deleted role's ARN authenticates
no one, so there is nothing to revoke. A delete that had to reach the domain could also fail the
stack's tear-down once the VPC path (ENIs, security group) is being removed.

Handler contract: aws-cdk-lib's provider framework (return ``PhysicalResourceId``; raise to fail
the deployment: the exception text, with the HTTP status and body, becomes CloudFormation's reason).
Runtime: boto3/botocore from the Lambda Python runtime and the standard library; nothing else.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

RESOURCE_TYPE = "Custom::QuerioOpenSearchRoleMapping"
ROLES_PATH = "_plugins/_security/api/roles/"
MAPPINGS_PATH = "_plugins/_security/api/rolesmapping/"
SERVICE = "es"  # SigV4 service name of Amazon OpenSearch Service domains
#: Tries per request; the pauses double from BACKOFF_S up to BACKOFF_CAP_S (5+10+20+40+60+60+60 s),
#: and with REQUEST_TIMEOUT_S per try the worst case stays under the function's 10-minute timeout.
ATTEMPTS = 8
BACKOFF_S = 5.0
BACKOFF_CAP_S = 60.0
REQUEST_TIMEOUT_S = 20.0
#: CloudFormation's reason field is short (the whole response must stay under 4 KB)
BODY_IN_ERROR = 1000

#: ``(method, url, body, headers, timeout) -> (status, response body)``; raises OSError when no
#: HTTP response came back (connection refused or reset, DNS, timeout).
Transport = Callable[[str, str, bytes, dict[str, str], float], tuple[int, str]]


class RoleMappingFailed(RuntimeError):
    """The domain refused a request or never answered: the deployment fails with this text."""


def on_event(event: dict[str, Any], _context: object = None, *, sts: Any = None,
             transport: Transport | None = None, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    if event["ResourceType"] != RESOURCE_TYPE:
        raise ValueError(f"unknown resource type {event['ResourceType']}")
    props = event["ResourceProperties"]
    if event["RequestType"] == "Delete":
        return {"PhysicalResourceId": event["PhysicalResourceId"]}  # see the module docstring
    name, region = props["RoleName"], props["Region"]
    credentials = master_credentials(props["MasterRoleArn"], region, sts=sts, sleep=sleep)
    base = f"https://{props['Endpoint']}/"
    for path, body in ((ROLES_PATH + name, role_body(props)), (MAPPINGS_PATH + name, mapping_body(props))):
        put_json(base + path, body, credentials, region, transport=transport or urllib_transport, sleep=sleep)
    backend_roles = mapping_body(props)["backend_roles"]
    return {"PhysicalResourceId": f"{props['Endpoint']}/{name}",
            "Data": {"RoleName": name, "MappedRoles": len(backend_roles)}}


def role_body(props: dict[str, Any]) -> dict[str, Any]:
    """The Create-or-Replace Role body: cluster permissions and one index-permission entry."""
    return {"cluster_permissions": list(props["ClusterPermissions"]),
            "index_permissions": [{"index_patterns": list(props["IndexPatterns"]),
                                   "allowed_actions": list(props["IndexActions"])}]}


def mapping_body(props: dict[str, Any]) -> dict[str, Any]:
    """The Create-or-Replace Role Mapping body: the function roles as backend roles (sorted, once each)."""
    roles = sorted(set(props["BackendRoles"]))
    if not roles:
        raise ValueError("no backend roles to map: an empty mapping would admit no function")
    return {"backend_roles": roles}


def master_credentials(role_arn: str, region: str, *, sts: Any = None, sleep: Callable[[float], None] = time.sleep,
                       attempts: int = ATTEMPTS) -> Credentials:
    """Temporary credentials of ``MasterRole``. AccessDenied is retried for a while: the trust
    policy and this function's role policy were just written, and IAM changes take seconds to
    reach STS."""
    client = sts or boto3.client("sts", region_name=region)
    for attempt in range(attempts):
        try:
            c = client.assume_role(RoleArn=role_arn, RoleSessionName="querio-opensearch-role-mapping",
                                   DurationSeconds=900)["Credentials"]
            return Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "AccessDenied" or attempt == attempts - 1:
                raise
            sleep(_pause(attempt))
    raise AssertionError("unreachable")


def sign(method: str, url: str, body: bytes, credentials: Credentials, region: str) -> dict[str, str]:
    """The request's headers with SigV4 (``es``) added: Authorization, X-Amz-Date, X-Amz-Security-Token."""
    request = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials, SERVICE, region).add_auth(request)
    return dict(request.headers.items())


def put_json(url: str, body: dict[str, Any], credentials: Credentials, region: str, *, transport: Transport,
             sleep: Callable[[float], None] = time.sleep, attempts: int = ATTEMPTS) -> str:
    """PUT ``body`` to ``url``, retrying 429, 5xx and no-response (a domain that was just created
    or is applying a change answers so for a while); raise :class:`RoleMappingFailed` with the
    status and body on any other error or when the tries run out. Returns the response body."""
    data = json.dumps(body).encode()
    path = url.split("/", 3)[-1]
    last = ""
    for attempt in range(attempts):
        headers = sign("PUT", url, data, credentials, region)  # per try: a signature is valid for 5 minutes
        try:
            status, text = transport("PUT", url, data, headers, REQUEST_TIMEOUT_S)
        except OSError as exc:
            last = f"no response ({type(exc).__name__}: {exc})"
        else:
            if 200 <= status < 300:
                return text
            last = f"HTTP {status}: {text[:BODY_IN_ERROR]}"
            if status != 429 and status < 500:  # refused for good: retrying cannot help
                raise RoleMappingFailed(f"PUT /{path} failed, {last}")
        if attempt < attempts - 1:
            sleep(_pause(attempt))
    raise RoleMappingFailed(f"PUT /{path} failed after {attempts} tries, last {last}")


def _pause(attempt: int) -> float:
    return min(BACKOFF_CAP_S, BACKOFF_S * 2 ** attempt)


def urllib_transport(method: str, url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    """One HTTP(S) request with the standard library; an HTTP error status is returned, not raised."""
    if not url.startswith(("https://", "http://")):  # never file: or another scheme urllib would open
        raise ValueError(f"not an HTTP(S) URL: {url}")
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310 (checked above)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (checked above)
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode("utf-8", "replace")
