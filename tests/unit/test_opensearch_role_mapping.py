"""The deploy-time handler that maps the functions' IAM roles in OpenSearch fine-grained access control
(``stacks/handlers/opensearch_security.py``, ``Custom::QuerioOpenSearchRoleMapping``).

STS is moto's; the domain is a recorder of the requests the handler makes (through the handler's real
SigV4 signing), or a loopback HTTP server for the standard-library transport. Paths and bodies are
pinned to the OpenSearch Security plugin's REST API: "Create role" is ``PUT
_plugins/_security/api/roles/<role>`` with ``cluster_permissions`` and ``index_permissions``
(``index_patterns``, ``allowed_actions``); "Create role mapping" is ``PUT
_plugins/_security/api/rolesmapping/<role>`` with ``backend_roles`` (under FGAC on Amazon
OpenSearch Service, IAM role ARNs).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import boto3
import pytest

from stacks.handlers import opensearch_security as handler

ENDPOINT = "vpc-querio-abc123.eu-west-1.es.amazonaws.com"
ACCOUNT = "123456789012"
MASTER = f"arn:aws:iam::{ACCOUNT}:role/Querio-Stateful-MasterRole"
FUNCTION_ROLES = [f"arn:aws:iam::{ACCOUNT}:role/Querio-Compute-{n}Role" for n in ("Query", "Ingest", "Archive")]
PROPS: dict[str, Any] = {
    "Endpoint": ENDPOINT, "Region": "eu-west-1", "MasterRoleArn": MASTER, "RoleName": "querio_functions",
    "ClusterPermissions": ["cluster_composite_ops"],
    "IndexPatterns": ["querio-chunks-v*"],
    "IndexActions": ["crud", "create_index", "indices:admin/get", "indices:admin/refresh*"],
    "BackendRoles": FUNCTION_ROLES,
    "HandlerHash": "abc",
}


@pytest.fixture
def sts(aws: Any) -> Any:
    """moto's STS (the ``aws`` fixture: mock_aws and fake credentials) with MasterRole in it."""
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}
    boto3.client("iam").create_role(RoleName="Querio-Stateful-MasterRole", AssumeRolePolicyDocument=json.dumps(trust))
    return boto3.client("sts", region_name="eu-west-1")


class Domain:
    """Answers each request with the next scripted (status, body) or an OSError; records what came."""

    def __init__(self, *answers: tuple[int, str] | OSError) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []

    def __call__(self, method: str, url: str, body: bytes, headers: dict[str, str],
                 timeout: float) -> tuple[int, str]:
        self.requests.append({"method": method, "url": url, "body": json.loads(body), "headers": headers})
        answer = self.answers.pop(0) if self.answers else (200, '{"status":"OK","message":"updated"}')
        if isinstance(answer, OSError):
            raise answer
        return answer


def event(request: str, **extra: Any) -> dict[str, Any]:
    return {"RequestType": request, "ResourceType": handler.RESOURCE_TYPE, "ResourceProperties": PROPS, **extra}


def test_create_puts_the_role_then_its_mapping_signed_as_the_master_role(sts: Any) -> None:
    domain = Domain((201, '{"status":"CREATED"}'), (201, '{"status":"CREATED"}'))
    out = handler.on_event(event("Create"), sts=sts, transport=domain, sleep=lambda s: None)

    assert [(r["method"], r["url"]) for r in domain.requests] == [
        ("PUT", f"https://{ENDPOINT}/_plugins/_security/api/roles/querio_functions"),
        ("PUT", f"https://{ENDPOINT}/_plugins/_security/api/rolesmapping/querio_functions"),
    ]
    role, mapping = (r["body"] for r in domain.requests)
    assert role == {"cluster_permissions": ["cluster_composite_ops"],
                    "index_permissions": [{"index_patterns": ["querio-chunks-v*"],
                                           "allowed_actions": ["crud", "create_index", "indices:admin/get",
                                                               "indices:admin/refresh*"]}]}
    assert mapping == {"backend_roles": sorted(FUNCTION_ROLES)}
    assert out == {"PhysicalResourceId": f"{ENDPOINT}/querio_functions",
                   "Data": {"RoleName": "querio_functions", "MappedRoles": 3}}
    for r in domain.requests:
        h = {k.lower(): v for k, v in r["headers"].items()}
        # SigV4 for the "es" service in the domain's region, with the assumed role's session token
        assert h["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
        scope = h["authorization"].split("Credential=")[1].split(",")[0].split("/")
        assert scope[2:] == ["eu-west-1", "es", "aws4_request"]
        assert scope[0] != "testing"  # the master role's temporary key, not the caller's
        assert "host" in h["authorization"] and "x-amz-date" in h["authorization"]
        assert h["x-amz-security-token"] and h["content-type"] == "application/json"


def test_update_is_the_same_idempotent_pair_of_puts(sts: Any) -> None:
    domain = Domain()
    first = handler.on_event(event("Create"), sts=sts, transport=domain, sleep=lambda s: None)
    again = handler.on_event(event("Update", PhysicalResourceId=first["PhysicalResourceId"], OldResourceProperties={
        **PROPS, "BackendRoles": FUNCTION_ROLES[:1]}), sts=sts, transport=domain, sleep=lambda s: None)
    assert again == first
    assert [r["body"] for r in domain.requests[:2]] == [r["body"] for r in domain.requests[2:]]


def test_delete_is_a_no_op_that_never_reaches_the_domain() -> None:
    def unreachable(*args: Any) -> tuple[int, str]:
        raise AssertionError("Delete must not call the domain")

    out = handler.on_event(event("Delete", PhysicalResourceId=f"{ENDPOINT}/querio_functions"),
                           sts=object(), transport=unreachable)
    assert out == {"PhysicalResourceId": f"{ENDPOINT}/querio_functions"}


def test_5xx_429_and_no_response_are_retried_with_growing_pauses(sts: Any) -> None:
    domain = Domain((503, "domain processing"), ConnectionRefusedError("refused"), (429, "slow down"),
                    (200, "{}"), (200, "{}"))
    pauses: list[float] = []
    handler.on_event(event("Create"), sts=sts, transport=domain, sleep=pauses.append)
    assert len(domain.requests) == 5
    assert pauses == [5.0, 10.0, 20.0]
    # each try is signed anew (a signature expires after 5 minutes of retrying)
    assert all("authorization" in {k.lower() for k in r["headers"]} for r in domain.requests)


def test_a_4xx_fails_at_once_with_the_status_and_body_for_cloudformation(sts: Any) -> None:
    body = '{"status":"FORBIDDEN","message":"No permission to access REST API: User [arn] with backend roles"}'
    domain = Domain((403, body))
    with pytest.raises(handler.RoleMappingFailed) as failed:
        handler.on_event(event("Create"), sts=sts, transport=domain, sleep=lambda s: None)
    assert len(domain.requests) == 1
    assert str(failed.value) == f"PUT /_plugins/_security/api/roles/querio_functions failed, HTTP 403: {body}"


def test_retries_run_out_with_the_last_answer_and_a_bounded_message(sts: Any) -> None:
    domain = Domain(*[(500, "x" * 5000)] * handler.ATTEMPTS)
    pauses: list[float] = []
    with pytest.raises(handler.RoleMappingFailed, match=r"failed after 8 tries, last HTTP 500: x+$") as failed:
        handler.on_event(event("Create"), sts=sts, transport=domain, sleep=pauses.append)
    assert len(domain.requests) == handler.ATTEMPTS
    assert len(str(failed.value)) < 1200  # CloudFormation's reason must stay small
    # the pauses stay within the function's 10-minute timeout even if every try waits its full timeout
    assert pauses == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0, 60.0]
    assert sum(pauses) + handler.ATTEMPTS * handler.REQUEST_TIMEOUT_S * 2 < 600


def test_an_empty_mapping_is_refused_before_any_request(sts: Any) -> None:
    domain = Domain()
    with pytest.raises(ValueError, match="no backend roles"):
        handler.on_event({**event("Create"), "ResourceProperties": {**PROPS, "BackendRoles": []}}, sts=sts,
                         transport=domain, sleep=lambda s: None)
    assert domain.requests == []


def test_assume_role_access_denied_is_retried_while_iam_propagates() -> None:
    from botocore.stub import Stubber

    client = boto3.client("sts", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
    stub = Stubber(client)
    expected = {"RoleArn": MASTER, "RoleSessionName": "querio-opensearch-role-mapping", "DurationSeconds": 900}
    stub.add_client_error("assume_role", "AccessDenied", "not authorized to perform sts:AssumeRole",
                          expected_params=expected)
    stub.add_response("assume_role", {"Credentials": {
        "AccessKeyId": "ASIAMASTER0000000000", "SecretAccessKey": "s" * 40, "SessionToken": "token",
        "Expiration": "2030-01-01T00:00:00Z"}}, expected_params=expected)
    pauses: list[float] = []
    with stub:
        creds = handler.master_credentials(MASTER, "eu-west-1", sts=client, sleep=pauses.append)
    assert (creds.access_key, creds.token) == ("ASIAMASTER0000000000", "token") and pauses == [5.0]
    stub.assert_no_pending_responses()


def test_assume_role_other_errors_fail_at_once() -> None:
    from botocore.exceptions import ClientError
    from botocore.stub import Stubber

    client = boto3.client("sts", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
    stub = Stubber(client)
    stub.add_client_error("assume_role", "MalformedPolicyDocument", "bad")
    with stub, pytest.raises(ClientError, match="MalformedPolicyDocument"):
        handler.master_credentials(MASTER, "eu-west-1", sts=client, sleep=lambda s: None)


def test_unknown_resource_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown resource type"):
        handler.on_event({**event("Create"), "ResourceType": "Custom::Other"})


# --- the standard-library transport, against a loopback server -----------------------------------
@pytest.fixture
def loopback() -> Iterator[tuple[str, list[dict[str, Any]], list[tuple[int, str]]]]:
    seen: list[dict[str, Any]] = []
    script: list[tuple[int, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers["Content-Length"])
            seen.append({"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)})
            status, text = script.pop(0) if script else (200, "{}")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen, script
    finally:
        server.shutdown()
        server.server_close()


def test_urllib_transport_returns_error_statuses_and_sends_the_signed_headers(loopback: Any) -> None:
    from botocore.credentials import Credentials

    base, seen, script = loopback
    script += [(502, "bad gateway"), (400, '{"status":"BAD_REQUEST","message":"Invalid configuration"}')]
    creds = Credentials("ASIAKEY", "secret", "session")
    pauses: list[float] = []
    with pytest.raises(handler.RoleMappingFailed, match=r"HTTP 400: .*Invalid configuration"):
        handler.put_json(f"{base}/_plugins/_security/api/roles/r", {"cluster_permissions": []}, creds,
                         "eu-west-1", transport=handler.urllib_transport, sleep=pauses.append)
    assert pauses == [5.0] and len(seen) == 2
    assert seen[0]["path"] == "/_plugins/_security/api/roles/r"
    assert json.loads(seen[0]["body"]) == {"cluster_permissions": []}
    assert seen[0]["headers"]["X-Amz-Security-Token"] == "session"
    assert seen[0]["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=ASIAKEY/")


def test_urllib_transport_opens_http_urls_only() -> None:
    with pytest.raises(ValueError, match="not an HTTP"):
        handler.urllib_transport("PUT", "file:///etc/passwd", b"{}", {}, 2.0)


def test_urllib_transport_raises_oserror_when_nothing_answers() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OSError):
        handler.urllib_transport("PUT", f"http://127.0.0.1:{port}/x", b"{}", {}, 2.0)
