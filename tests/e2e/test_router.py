"""Every route through ``router.app.resolve`` with API Gateway v2 events, on a real service
(PostgreSQL + pgvector, filesystem blobs, the real embedding model): no mocks of our own."""

from __future__ import annotations

import json
import socketserver
import sys
import threading
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from querio.api import local_server
from querio.config import Settings
from querio.models import personal_namespace
from tests.fixtures.events import (
    OTHER_CLAIMS,
    TEST_MAX_FILE_BYTES,
    ApiClient,
    http_event,
    multipart_body,
    resolve,
)
from tests.fixtures.pdfs import make_text_pdf

pytestmark = pytest.mark.e2e

PAGES = [
    "Gardening basics. Tomatoes need full sun, regular watering and a sturdy stake to climb. "
    "Pinch out side shoots so the plant puts its energy into fruit.",
    "Bicycle maintenance. To fix a flat tyre, remove the wheel, lever the tyre off the rim, "
    "find the puncture in the inner tube and apply a rubber patch with glue.",
    "Baking bread. Knead the dough for ten minutes, let it rise until doubled in size, "
    "then bake at two hundred and twenty degrees Celsius for thirty minutes.",
]
PUNCTURE = "how do I repair a punctured inner tube?"

#: Every route that needs identity, with a request that would otherwise be valid.
SOME_ID = "00000000-0000-4000-8000-000000000000"
PROTECTED: list[tuple[str, str, Any]] = [
    ("GET", "/api/stats", None),
    ("GET", "/api/documents", None),
    ("GET", f"/api/documents/{SOME_ID}", None),
    ("DELETE", f"/api/documents/{SOME_ID}", None),
    ("POST", f"/api/documents/{SOME_ID}/reprocess", None),
    ("POST", "/api/search", {"query": "x"}),
    ("POST", "/api/query", {"query": "x"}),
    ("POST", "/api/chat", {"message": "x"}),
    ("GET", "/api/chat/sessions", None),
    ("GET", f"/api/chat/sessions/{SOME_ID}/history", None),
    ("DELETE", f"/api/chat/sessions/{SOME_ID}", None),
]


def assert_error(reply: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The one error shape, with the event's request id."""
    assert reply.status == status, reply.json
    err = reply.json["error"]
    assert set(err) == {"code", "message", "details", "request_id"}
    assert err["message"] and err["request_id"] == reply.headers["x-request-id"]
    if code:
        assert err["code"] == code, err
    return err


def uploaded(api: ApiClient, data: bytes | None = None, name: str = "handbook.pdf",
             **kw: Any) -> dict[str, Any]:
    reply = api.upload(make_text_pdf(PAGES, title="Handbook") if data is None else data, name, **kw)
    assert reply.status == 201, reply.json
    outcome: dict[str, Any] = reply.json["outcome"]
    assert outcome["status"] == "ingested"
    return outcome


def post_multipart(body: bytes, content_type: str, **kw: Any) -> Any:
    """``POST /api/documents`` with a hand-made multipart body."""
    return resolve(http_event("POST", "/api/documents", headers={"content-type": content_type},
                              raw_body_bytes=body, **kw))


# --- meta -----------------------------------------------------------------------------------------


def test_health_needs_no_identity(api: ApiClient) -> None:
    reply = resolve(http_event("GET", "/api/health", claims=None))
    assert reply.status == 200
    assert reply.json["status"] == "ok" and reply.json["database"] is True


def test_openapi_document_lists_every_route(api: ApiClient) -> None:
    reply = resolve(http_event("GET", "/api/openapi.json", claims=None))
    assert reply.status == 200
    doc = reply.json
    assert doc["openapi"].startswith("3.")
    routes = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    expected = {(m, p.replace(SOME_ID, "{document_id}" if "documents" in p else "{session_id}"))
                for m, p, _ in PROTECTED} | {("GET", "/api/health"), ("POST", "/api/documents")}
    assert expected <= routes
    upload = doc["paths"]["/api/documents"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert {"201", "200", "413", "422"} <= set(upload["responses"])
    schemas = doc["components"]["schemas"]
    assert {"SearchRequest", "SearchResponse", "ErrorBody", "UploadResponse", "Answer"} <= set(schemas)
    search_ok = doc["paths"]["/api/search"]["post"]["responses"]["200"]
    assert search_ok["content"]["application/json"]["schema"]["$ref"].endswith("/SearchResponse")


def test_swagger_ui_is_served(api: ApiClient) -> None:
    reply = resolve(http_event("GET", "/api/docs", claims=None))
    assert reply.status == 200 and "swagger" in str(reply.json).lower()


# --- the happy path -------------------------------------------------------------------------------


def test_upload_list_get_search_query_stats_reprocess_delete(api: ApiClient) -> None:
    outcome = uploaded(api, tags="Manuals, bikes")
    doc = outcome["document"]
    doc_id = doc["id"]
    assert outcome["pages"] == 3 and outcome["chunks"] >= 3
    assert doc["filename"] == "handbook.pdf" and doc["processing_status"] == "completed"
    assert doc["tags"] == ["manuals", "bikes"]

    again = api.upload(make_text_pdf(PAGES, title="Handbook"), "copy.pdf")
    assert again.status == 200 and again.json["outcome"]["status"] == "duplicate"
    assert again.json["outcome"]["document"]["id"] == doc_id

    listing = api.get("/api/documents", query={"status": "completed", "limit": 10})
    assert listing.status == 200
    assert listing.json["total"] == 1 and listing.json["limit"] == 10
    assert [d["id"] for d in listing.json["documents"]] == [doc_id]
    assert api.get("/api/documents", query={"status": "failed"}).json["total"] == 0

    got = api.get(f"/api/documents/{doc_id}")
    assert got.status == 200 and got.json["page_count"] == 3 and got.json["title"] == "Handbook"

    search = api.post("/api/search", {"query": PUNCTURE, "k": 3})
    assert search.status == 200
    top = search.json["results"][0]
    assert (top["filename"], top["page"], top["document_id"]) == ("handbook.pdf", 2, doc_id)
    assert "puncture" in top["snippet"]
    for mode in ("vector", "text"):
        hits = api.post("/api/search", {"query": "how long should bread dough be kneaded", "k": 1,
                                        "mode": mode}).json["results"]
        assert hits[0]["page"] == 3, mode

    answer = api.post("/api/query", {"query": PUNCTURE, "k": 3})
    assert answer.status == 200
    assert answer.json["mode"] == "extractive" and "[1]" in answer.json["answer"]
    assert answer.json["citations"][0] == {"document_id": doc_id, "filename": "handbook.pdf", "page": 2,
                                           "pages": [2], "chunk_id": answer.json["sources"][0]["chunk_id"]}

    stats = api.get("/api/stats")
    assert stats.status == 200 and stats.json["documents"] == 1 and stats.json["pages"] == 3

    again = api.post(f"/api/documents/{doc_id}/reprocess")
    assert again.status == 200 and again.json["outcome"]["status"] == "ingested"

    deleted = api.delete(f"/api/documents/{doc_id}")
    assert deleted.status == 200 and deleted.json["id"] == doc_id
    assert_error(api.get(f"/api/documents/{doc_id}"), 404, "not_found")
    after = api.post("/api/search", {"query": PUNCTURE, "k": 10})
    assert after.status == 200
    assert all(r["document_id"] != doc_id for r in after.json["results"])
    assert api.get("/api/documents").json["total"] == 0


def test_chat_session_lifecycle(api: ApiClient) -> None:
    uploaded(api)
    first = api.post("/api/chat", {"message": "How do I fix a flat tyre?"})
    assert first.status == 200, first.json
    session_id = first.json["session_id"]
    assert first.json["message"]["role"] == "assistant"
    assert first.json["answer"]["citations"][0]["page"] == 2

    follow = api.post("/api/chat", {"message": "And what glue do I need?", "session_id": session_id})
    assert follow.status == 200 and follow.json["session_id"] == session_id

    sessions = api.get("/api/chat/sessions")
    assert sessions.status == 200 and [s["id"] for s in sessions.json] == [session_id]
    history = api.get(f"/api/chat/sessions/{session_id}/history")
    assert history.status == 200
    assert [m["role"] for m in history.json] == ["user", "assistant", "user", "assistant"]

    # another tenant sees nothing of it
    other = api.as_caller(OTHER_CLAIMS)
    assert other.get("/api/chat/sessions").json == []
    assert_error(other.get(f"/api/chat/sessions/{session_id}/history"), 404, "not_found")
    assert_error(other.post("/api/chat", {"message": "hi", "session_id": session_id}), 404, "not_found")
    assert_error(other.delete(f"/api/chat/sessions/{session_id}"), 404, "not_found")

    gone = api.delete(f"/api/chat/sessions/{session_id}")
    assert gone.status == 204 and not gone.raw.get("body")
    assert_error(api.get(f"/api/chat/sessions/{session_id}/history"), 404, "not_found")


def test_an_eval_manual_is_searchable_by_page(api: ApiClient, eval_pdf_dir: Path) -> None:
    data = (eval_pdf_dir / "R-data.pdf").read_bytes()
    outcome = uploaded(api, data, "R-data.pdf")
    assert outcome["pages"] > 30
    q = "Some rows in a spreadsheet export are shorter because the empty cells at the end were left out. " \
        "How can I still import the file into R?"
    results = api.post("/api/search", {"query": q, "k": 10}).json["results"]
    assert results and all(r["filename"] == "R-data.pdf" for r in results)
    assert 13 in [r["page"] for r in results]


# --- uploads that fail ----------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "code"), [
    (b"", "empty_file"),
    (b"<!DOCTYPE html><html><body>404</body></html>", "not_a_pdf"),
])
def test_bad_upload_is_a_422_with_the_recorded_outcome(api: ApiClient, data: bytes, code: str) -> None:
    err = assert_error(api.upload(data, "report.pdf"), 422, code)
    outcome = err["details"]["outcome"]
    assert outcome["status"] == "failed" and outcome["error_code"] == code
    assert outcome["reason"] == err["message"]
    failed = api.get("/api/documents", query={"status": "failed"}).json
    assert failed["total"] == 1
    assert failed["documents"][0]["error_code"] == code


def test_upload_without_a_file_part_is_422(api: ApiClient) -> None:
    err = assert_error(post_multipart(*multipart_body(fields={"tags": "a"})), 422, "validation_error")
    assert {"loc": ["body", "file"], "type": "missing", "msg": "Field required"} in err["details"]


def test_multipart_without_boundary_is_422(api: ApiClient) -> None:
    body, _ = multipart_body({"file": ("a.pdf", b"%PDF-1.4", "application/pdf")})
    assert_error(post_multipart(body, "multipart/form-data"), 422, "validation_error")


def test_oversized_file_is_413(api: ApiClient) -> None:
    big = b"%PDF-1.4\n" + b"0" * TEST_MAX_FILE_BYTES
    err = assert_error(api.upload(big, "big.pdf"), 413, "payload_too_large")
    # the request limit is the file limit here: no other route would take it either
    assert err["details"] == {"limit_bytes": TEST_MAX_FILE_BYTES} and "upload-url" not in err["message"]
    assert api.get("/api/documents").json["total"] == 0  # nothing was recorded


def test_oversized_body_is_413_before_parsing(api: ApiClient) -> None:
    huge_json = json.dumps({"query": "x" * (2 * 1024 * 1024)})
    assert_error(api.post("/api/search", huge_json), 413, "payload_too_large")
    big = b"0" * (TEST_MAX_FILE_BYTES + 200_000)
    assert_error(post_multipart(*multipart_body({"file": ("big.pdf", big, "application/pdf")})), 413,
                 "payload_too_large")


# --- invalid requests -----------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "loc"), [
    ('{"query": "x", ', None),                              # malformed JSON
    ({"query": "x", "unexpected": 1}, ["body", "unexpected"]),  # extra field
    ({"query": "x", "k": 0}, ["body", "k"]),
    ({"query": "x", "k": 51}, ["body", "k"]),
    ({"query": ""}, ["body", "query"]),
    ({"k": 3}, ["body", "query"]),
    ({"query": "x", "mode": "fuzzy"}, ["body", "mode"]),
    ({"query": "x", "filters": {"page_from": 0}}, ["body", "filters", "page_from"]),
    ('"just a string"', None),
    ("", None),                                                # no body at all
])
def test_invalid_search_bodies_are_422(api: ApiClient, body: Any, loc: list[str] | None) -> None:
    err = assert_error(api.post("/api/search", body), 422, "validation_error")
    if loc:
        assert loc in [d["loc"] for d in err["details"]], err


def test_query_k_is_bounded_by_its_own_model(api: ApiClient) -> None:
    assert_error(api.post("/api/query", {"query": "x", "k": 21}), 422, "validation_error")


def test_body_that_is_not_utf8_is_422(api: ApiClient) -> None:
    reply = resolve(http_event("POST", "/api/search", headers={"content-type": "application/json"},
                               raw_body_bytes=b'{"query": "\xff\xfe"}'))
    assert_error(reply, 422, "validation_error")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_unsupported_content_type_is_415(api: ApiClient, content_type: str) -> None:
    # curl -d sends form-urlencoded by default: the JSON must not be read as form fields (a 422)
    assert_error(api.post("/api/search", '{"query": "x"}', headers={"content-type": content_type}), 415,
                 "unsupported_media_type")


@pytest.mark.parametrize(("query", "loc"), [
    ({"limit": 0}, ["query", "limit"]),
    ({"limit": 201}, ["query", "limit"]),
    ({"offset": -1}, ["query", "offset"]),
    ({"limit": "ten"}, ["query", "limit"]),
    ({"status": "archived"}, ["query", "status"]),
])
def test_list_query_parameters_are_bounded(api: ApiClient, query: dict[str, Any], loc: list[str]) -> None:
    err = assert_error(api.get("/api/documents", query=query), 422, "validation_error")
    assert loc in [d["loc"] for d in err["details"]]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/documents/not-a-uuid"),
    ("DELETE", "/api/documents/1234"),
    ("POST", "/api/documents/xyz/reprocess"),
    ("GET", "/api/chat/sessions/nope/history"),
    ("DELETE", "/api/chat/sessions/00000000-0000"),
])
def test_malformed_ids_are_422_not_500(api: ApiClient, method: str, path: str) -> None:
    assert_error(api.request(method, path), 422, "validation_error")


@pytest.mark.parametrize(("method", "path"), [
    ("GET", f"/api/documents/{uuid.uuid4()}"),
    ("DELETE", f"/api/documents/{uuid.uuid4()}"),
    ("POST", f"/api/documents/{uuid.uuid4()}/reprocess"),
    ("GET", f"/api/chat/sessions/{uuid.uuid4()}/history"),
    ("DELETE", f"/api/chat/sessions/{uuid.uuid4()}"),
])
def test_unknown_ids_are_404(api: ApiClient, method: str, path: str) -> None:
    assert_error(api.request(method, path), 404, "not_found")


def test_unknown_route_is_404_in_the_error_shape(api: ApiClient) -> None:
    assert_error(api.get("/api/nothing-here"), 404, "route_not_found")
    assert_error(api.request("HEAD", "/api/nothing-here"), 404, "route_not_found")


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PUT", "/api/documents", "GET, HEAD, POST"),
    ("PATCH", f"/api/documents/{SOME_ID}", "DELETE, GET, HEAD"),
    ("GET", "/api/search", "POST"),
    ("DELETE", "/api/health", "GET, HEAD"),
    ("POST", f"/api/chat/sessions/{SOME_ID}", "DELETE"),
    ("OPTIONS", "/api/query", "POST"),
])
def test_wrong_method_on_a_known_path_is_405_with_allow(api: ApiClient, method: str, path: str, allow: str) -> None:
    for claims in (api.claims, None):  # decided from the route table, before identity
        reply = api.as_caller(claims).request(method, path)
        assert_error(reply, 405, "method_not_allowed")
        assert reply.headers["allow"] == allow


def test_head_is_answered_like_get_without_a_body(api: ApiClient) -> None:
    head = resolve(http_event("HEAD", "/api/health", claims=None))
    assert head.status == 200 and head.json is None and head.headers["content-type"] == "application/json"
    assert api.request("HEAD", "/api/documents").status == 200
    assert_error(resolve(http_event("HEAD", "/api/documents", claims=None)), 401)  # GET's rules apply


def test_an_inverted_page_range_is_422(api: ApiClient) -> None:
    for route in ("/api/search", "/api/query"):
        err = assert_error(api.post(route, {"query": "x", "filters": {"page_from": 5, "page_to": 2}}), 422,
                           "validation_error")
        assert ["body", "filters"] in [d["loc"] for d in err["details"]], err
        assert "page_from" in str(err["details"])
    err = assert_error(api.post("/api/chat", {"message": "x", "filters": {"page_from": 3, "page_to": 1}}), 422)
    assert api.post("/api/search", {"query": "x", "filters": {"page_from": 2, "page_to": 2}}).status == 200


# --- identity and tenancy -------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_missing_claims_are_401(api: ApiClient, method: str, path: str, body: Any) -> None:
    reply = resolve(http_event(method, path, body=body, claims=None))
    assert_error(reply, 401, "unauthorized")


def test_identity_is_checked_before_the_body(api: ApiClient) -> None:
    reply = resolve(http_event("POST", "/api/search", body="{not json", claims=None))
    assert_error(reply, 401, "unauthorized")
    upload = multipart_body({"file": ("a.pdf", b"%PDF", "application/pdf")})
    assert_error(post_multipart(*upload, claims=None), 401, "unauthorized")


@pytest.mark.parametrize("claims", [{"sub": ""}, {"custom:tenant_id": "t"}])
def test_claims_without_a_user_are_401(api: ApiClient, claims: dict[str, str]) -> None:
    assert_error(api.as_caller(claims).get("/api/documents"), 401, "unauthorized")


@pytest.mark.parametrize("tenant", ["../escape", "", "[]", "[tenant-a tenant-b]", "[tenant-a"])
def test_unusable_tenant_claims_are_403(api: ApiClient, tenant: str) -> None:
    assert_error(api.as_caller({"sub": "tenant-a", "custom:tenant_id": tenant}).get("/api/documents"), 403,
                 "forbidden")


def test_other_tenants_documents_look_absent(api: ApiClient) -> None:
    doc_id = uploaded(api)["document"]["id"]
    other = api.as_caller(OTHER_CLAIMS)
    for method, path in (("GET", f"/api/documents/{doc_id}"), ("DELETE", f"/api/documents/{doc_id}"),
                         ("POST", f"/api/documents/{doc_id}/reprocess")):
        assert_error(other.request(method, path), 404, "not_found")
    assert other.get("/api/documents").json["total"] == 0
    assert other.post("/api/search", {"query": PUNCTURE}).json["results"] == []
    assert other.get("/api/stats").json["documents"] == 0
    # ... and the owner still has it
    assert api.get(f"/api/documents/{doc_id}").status == 200


def test_a_user_without_a_tenant_claim_works_in_a_personal_workspace(api: ApiClient) -> None:
    doc_id = uploaded(api)["document"]["id"]  # tenant-a's
    solo = api.as_caller({"sub": "tenant-a"})  # a sub equal to a tenant id
    assert solo.get(f"/api/documents/{doc_id}").status == 404
    assert solo.get("/api/documents").json["total"] == 0
    mine = uploaded(solo)["document"]
    assert mine["tenant_id"] == personal_namespace("tenant-a") != "tenant-a"
    assert_error(api.get(f"/api/documents/{mine['id']}"), 404)


def test_stage_prefix_is_stripped(api: ApiClient) -> None:
    reply = resolve(http_event("GET", "/api/documents", stage="prod"))
    assert reply.status == 200 and reply.json["total"] == 0


# --- the local server: HTTP in, the same resolver ------------------------------------------------


def test_local_server_serves_with_a_short_gil_switch_interval(api_settings: Settings,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # a long upload's pure-Python parsing must not hold health checks for 5 ms per wake-up
    seen: list[float] = []
    monkeypatch.setattr(socketserver.BaseServer, "serve_forever",
                        lambda self, poll_interval=0.5: seen.append(sys.getswitchinterval()))
    server = local_server.make_server("127.0.0.1", 0, settings=api_settings)
    before = sys.getswitchinterval()
    try:
        server.serve_forever()
    finally:
        server.server_close()
    assert seen == [local_server.SWITCH_INTERVAL_S] and before > local_server.SWITCH_INTERVAL_S
    assert sys.getswitchinterval() == before


def test_local_server_handles_concurrent_requests(api: ApiClient, api_settings: Settings) -> None:
    doc_id = uploaded(api)["document"]["id"]
    server = local_server.make_server("127.0.0.1", 0, settings=api_settings, tenant="tenant-a", user="user-9")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"

    def search(i: int) -> tuple[int, Any]:
        body = json.dumps({"query": PUNCTURE if i % 2 else "kneading bread dough", "k": 2}).encode()
        req = urllib.request.Request(f"{base}/api/search", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())

    try:
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(search, range(16)))
        assert all(status == 200 for status, _ in replies)
        for i, (_, body) in enumerate(replies):
            top = body["results"][0]
            assert top["document_id"] == doc_id and top["page"] == (2 if i % 2 else 3)
        # the local caller is the configured tenant: it sees tenant-a's document
        with urllib.request.urlopen(f"{base}/api/documents/{doc_id}", timeout=60) as r:
            assert json.loads(r.read())["id"] == doc_id
    finally:
        server.shutdown()
        server.server_close()


def test_local_server_answers_health_and_search_during_an_upload(api: ApiClient, api_settings: Settings,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """An upload in progress (held inside ``service.ingest`` until the other requests are done)
    does not hold up /api/health or a search: each request has its own thread and resolver
    state. (Before: one lock around every resolve, so health waited for the whole upload.)"""
    uploaded(api)
    started, release = threading.Event(), threading.Event()
    real_ingest = api.service.ingest

    def held_ingest(*args: Any, **kwargs: Any) -> Any:
        started.set()
        release.wait(60)
        return real_ingest(*args, **kwargs)

    monkeypatch.setattr(api.service, "ingest", held_ingest)
    server = local_server.make_server("127.0.0.1", 0, settings=api_settings, tenant="tenant-a", user="user-9")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    body, content_type = multipart_body({"file": ("second.pdf", make_text_pdf(["Another manual, page one."]),
                                                  "application/pdf")})
    upload_reply: dict[str, Any] = {}

    def upload() -> None:
        req = urllib.request.Request(f"{base}/api/documents", data=body, headers={"Content-Type": content_type})
        with urllib.request.urlopen(req, timeout=120) as r:
            upload_reply["status"], upload_reply["body"] = r.status, json.loads(r.read())

    uploader = threading.Thread(target=upload, daemon=True)
    try:
        uploader.start()
        assert started.wait(60)
        with urllib.request.urlopen(f"{base}/api/health", timeout=10) as r:
            assert r.status == 200 and json.loads(r.read())["status"] == "ok"
        req = urllib.request.Request(f"{base}/api/search", data=json.dumps({"query": PUNCTURE, "k": 1}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["results"][0]["page"] == 2
        assert uploader.is_alive() and not upload_reply  # still uploading
    finally:
        release.set()
        uploader.join(120)
        server.shutdown()
        server.server_close()
    assert upload_reply["status"] == 201 and upload_reply["body"]["outcome"]["status"] == "ingested"


def test_local_server_event_shape() -> None:
    headers = {"Content-Type": "application/json", "X-Multi": "1"}
    event = local_server.build_event("POST", "/api/search?a=1&a=2&b=", headers, b'{"q": 1}',
                                     source_ip="127.0.0.1", claims={"sub": "me", "custom:tenant_id": "t"})
    assert event["rawPath"] == "/api/search" and event["rawQueryString"] == "a=1&a=2&b="
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["headers"] == {"content-type": "application/json", "x-multi": "1"}
    assert event["isBase64Encoded"] is True and event["body"] == "eyJxIjogMX0="
    ctx = event["requestContext"]
    assert ctx["http"]["method"] == "POST" and ctx["http"]["sourceIp"] == "127.0.0.1"
    assert ctx["authorizer"]["jwt"]["claims"] == {"sub": "me", "custom:tenant_id": "t"}
    assert ctx["stage"] == "$default"
