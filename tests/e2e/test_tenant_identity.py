"""Identity never widens (issue 11, item 1): many tenants and users with randomized data, over
EVERY route of the router, with ``sub`` values equal to tenant ids, bracketed list claims and
hostile identities. The routes are enumerated from the resolver itself, so a route added later
without a case here fails :func:`test_every_route_has_an_isolation_case`.

Real router, real service (PostgreSQL + pgvector, filesystem blobs, the embedding model)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from querio.api import router
from querio.models import personal_namespace
from querio.wiring import build_service
from tests.fixtures.aws_events import TEST_BUCKET, aws, lambda_context, s3_notification, sqs_event  # noqa: F401
from tests.fixtures.events import ApiClient, Reply
from tests.fixtures.pdfs import make_text_pdf
from tests.fixtures.service import make_settings

pytestmark = pytest.mark.e2e
CLAIM = "custom:tenant_id"


def _word(rng: random.Random) -> str:
    return "".join(rng.choice("bcdfghjklmnpqrstvwxz") + rng.choice("aeiou") for _ in range(4))


@dataclass
class Owner:
    """A namespace with its own randomized document, chat session and query marker."""

    namespace: str
    client: ApiClient
    words: list[str]
    marker: str
    doc_id: str = ""
    session_id: str = ""
    uploads: list[str] = field(default_factory=list)


@dataclass
class World:
    owners: dict[str, Owner]  # namespace -> owner
    callers: list[tuple[ApiClient, str]]  # every legitimate identity and the namespace it must land in

    def others(self, ns: str) -> list[Owner]:
        return [o for n, o in self.owners.items() if n != ns]


def _build(api: ApiClient, rng: random.Random) -> World:
    tenants = [f"t-{_word(rng)}-{rng.randrange(10**4)}" for _ in range(3)]
    t1, t2, t3 = tenants
    personal_subs = [t2, t3, f"user-{uuid.uuid4().hex[:6]}"]  # two subs collide with tenant ids
    identities: list[tuple[dict[str, Any], str]] = [
        ({"sub": f"alice-{rng.randrange(10**6)}", CLAIM: t1}, t1),
        ({"sub": t2, CLAIM: f"[{t1}]"}, t1),          # sub = another tenant's id; bracketed list of one
        ({"sub": t1, CLAIM: t2}, t2),                 # sub = another tenant's id
        ({"sub": f"carol-{rng.randrange(10**6)}", CLAIM: f"[ {t3} ]"}, t3),
        *[({"sub": s}, personal_namespace(s)) for s in personal_subs],  # no claim: personal workspace
    ]
    owners: dict[str, Owner] = {}
    callers = []
    for claims, ns in identities:
        client = api.as_caller(claims)
        callers.append((client, ns))
        if ns not in owners:
            owners[ns] = Owner(ns, client, [_word(rng) for _ in range(5)], f"marker{rng.randrange(10**9)}")
    for owner in owners.values():
        text = f"Confidential notes of {owner.namespace[:2]}: " + " ".join(owner.words) + "."
        up = owner.client.upload(make_text_pdf([text]), f"{_word(rng)}.pdf")
        assert up.status == 201, up.json
        assert up.json["outcome"]["document"]["tenant_id"] == owner.namespace
        owner.doc_id = up.json["outcome"]["document"]["id"]
        chat = owner.client.post("/api/chat", {"message": " ".join(owner.words[:2])})
        assert chat.status == 200, chat.json
        owner.session_id = chat.json["session_id"]
        assert owner.client.post("/api/search", {"query": f"{owner.words[0]} {owner.marker}"}).status == 200
    return World(owners, callers)


# --- one isolation case per route: (caller, its namespace, the world) -> assertions ------------------

Case = Callable[[ApiClient, str, World], None]


def _absent(method: str, suffix: str = "", what: str = "doc_id") -> Case:
    """Every other namespace's resource is 404 (never 403: existence is not revealed)."""

    def check(c: ApiClient, ns: str, w: World) -> None:
        for other in w.others(ns):
            ident = getattr(other, what)
            base = "/api/chat/sessions" if what == "session_id" else "/api/documents"
            reply = c.request(method, f"{base}/{ident}{suffix}")
            assert reply.status == 404, (method, suffix, reply.json)
    return check


def _public(path: str) -> Case:
    def check(c: ApiClient, ns: str, w: World) -> None:
        reply = c.get(path)
        assert reply.status == 200
        text = str(reply.json)
        assert not any(o.doc_id in text or o.words[0] in text for o in w.owners.values())
    return check


def _stats(c: ApiClient, ns: str, w: World) -> None:
    stats = c.get("/api/stats").json
    assert stats["documents"] == 1 + len(w.owners[ns].uploads), stats
    popular = " ".join(q["query"] for q in stats["popular_queries"])
    assert not any(o.marker in popular for o in w.others(ns))  # only the marker's owner ever typed it


def _upload(c: ApiClient, ns: str, w: World) -> None:
    # a write lands in the caller's namespace only
    data = make_text_pdf([f"Upload by a caller of {ns[:2]}: {uuid.uuid4().hex} kestrels hover."])
    up = c.upload(data, "mine.pdf")
    assert up.status == 201, up.json
    doc = up.json["outcome"]["document"]
    assert doc["tenant_id"] == ns
    w.owners[ns].uploads.append(doc["id"])
    for other in w.others(ns):
        assert other.client.get(f"/api/documents/{doc['id']}").status == 404


def _upload_url(c: ApiClient, ns: str, w: World) -> None:
    # filesystem blobs have no presigned URLs; whatever the answer, it names no other namespace
    reply = c.post("/api/documents/upload-url", {"filename": "x.pdf", "content_length": 10})
    assert reply.status < 500
    assert not any(f"tenants/{o.namespace}/" in str(reply.json) for o in w.others(ns))


def _list(c: ApiClient, ns: str, w: World) -> None:
    ids = {d["id"] for d in c.get("/api/documents", query={"limit": 200}).json["documents"]}
    assert ids == {w.owners[ns].doc_id, *w.owners[ns].uploads}


def _search(c: ApiClient, ns: str, w: World) -> None:
    mine = {w.owners[ns].doc_id, *w.owners[ns].uploads}
    for other in w.others(ns):
        # hybrid runs both legs (vector and full text), each scoped inside
        reply = c.post("/api/search", {"query": " ".join(other.words), "k": 50})
        assert reply.status == 200
        assert {h["document_id"] for h in reply.json["results"]} <= mine
        assert not any(word in h["content"] for h in reply.json["results"] for word in other.words)
        pinned = c.post("/api/search", {"query": other.words[0], "filters": {"document_ids": [other.doc_id]}})
        assert pinned.status == 200 and pinned.json["results"] == []


def _query(c: ApiClient, ns: str, w: World) -> None:
    mine = {w.owners[ns].doc_id, *w.owners[ns].uploads}
    for other in w.others(ns):
        answer = c.post("/api/query", {"query": " ".join(other.words)}).json
        assert {s["document_id"] for s in answer["sources"]} <= mine
        assert not any(word in answer["answer"] for word in other.words)


def _chat(c: ApiClient, ns: str, w: World) -> None:
    for other in w.others(ns):
        hijack = c.post("/api/chat", {"message": " ".join(other.words), "session_id": other.session_id})
        assert hijack.status == 404, hijack.json
    other = w.others(ns)[0]
    reply = c.post("/api/chat", {"message": " ".join(other.words)})
    assert reply.status == 200
    answer = reply.json["answer"]
    assert {s["document_id"] for s in answer["sources"]} <= {w.owners[ns].doc_id, *w.owners[ns].uploads}
    assert not any(word in answer["answer"] for word in other.words)


def _sessions(c: ApiClient, ns: str, w: World) -> None:
    ids = {s["id"] for s in c.get("/api/chat/sessions", query={"limit": 200}).json}
    assert w.owners[ns].session_id in ids
    assert not ids & {o.session_id for o in w.others(ns)}


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/api/health"): _public("/api/health"),
    ("GET", "/api/openapi.json"): _public("/api/openapi.json"),
    ("GET", "/api/docs"): _public("/api/docs"),
    ("GET", "/api/stats"): _stats,
    ("POST", "/api/documents"): _upload,
    ("POST", "/api/documents/upload-url"): _upload_url,
    ("GET", "/api/documents"): _list,
    ("GET", "/api/documents/<document_id>"): _absent("GET"),
    ("DELETE", "/api/documents/<document_id>"): _absent("DELETE"),
    ("GET", "/api/documents/<document_id>/download-url"): _absent("GET", "/download-url"),
    ("POST", "/api/documents/<document_id>/restore"): _absent("POST", "/restore"),
    ("POST", "/api/documents/<document_id>/reprocess"): _absent("POST", "/reprocess"),
    ("POST", "/api/search"): _search,
    ("POST", "/api/query"): _query,
    ("POST", "/api/chat"): _chat,
    ("GET", "/api/chat/sessions"): _sessions,
    ("GET", "/api/chat/sessions/<session_id>/history"): _absent("GET", "/history", "session_id"),
    ("DELETE", "/api/chat/sessions/<session_id>"): _absent("DELETE", "", "session_id"),
}


def test_every_route_has_an_isolation_case() -> None:
    assert set(router.app.routes()) == set(CASES)


def _hostile(rng: random.Random, w: World) -> list[tuple[dict[str, Any], int]]:
    t1, t2 = [n for n in w.owners if not n.startswith("u~")][:2]
    personal = next(n for n in w.owners if n.startswith("u~"))
    return [
        ({"sub": t1, CLAIM: f"[{t1} {t2}]"}, 403),       # two tenants: which one? none
        ({"sub": t1, CLAIM: f"[{t2} {t2}]"}, 403),
        ({"sub": t1, CLAIM: ""}, 403),                   # empty never falls back to the sub
        ({"sub": t1, CLAIM: "[]"}, 403),
        ({"sub": t1, CLAIM: None}, 403),
        ({"sub": t1, CLAIM: f"[{t1}"}, 403),
        ({"sub": t1, CLAIM: f" {t1}"}, 403),
        ({"sub": t1, CLAIM: personal}, 403),             # a personal workspace is never a claimable tenant
        ({"sub": t1, CLAIM: f"../{t1}"}, 403),
        ({"sub": t1, CLAIM: "*"}, 403),
        ({"sub": "", CLAIM: t1}, 401),
        ({CLAIM: t1}, 401),
        ({"sub": " " * rng.randrange(1, 5), CLAIM: t1}, 401),
    ]


def _request_for(method: str, template: str, w: World) -> tuple[str, Any]:
    any_owner = next(iter(w.owners.values()))
    path = template.replace("<document_id>", any_owner.doc_id).replace("<session_id>", any_owner.session_id)
    body = {"/api/search": {"query": "x"}, "/api/query": {"query": "x"}, "/api/chat": {"message": "x"},
            "/api/documents/upload-url": {"filename": "x.pdf"}}.get(template) if method == "POST" else None
    return path, body


def test_no_identity_reads_writes_or_deletes_outside_its_namespace(api: ApiClient) -> None:
    rng = random.Random(uuid.uuid4().int)
    world = _build(api, rng)
    namespaces = {ns for _, ns in world.callers}
    assert len(namespaces) == 6 and sum(ns.startswith("u~") for ns in namespaces) == 3

    # hostile identities: refused on every protected route, before anything is touched
    for claims, status in _hostile(rng, world):
        hostile = api.as_caller(claims)
        for method, template in router.app.routes():
            if template in router.PUBLIC_PATHS:
                continue
            path, body = _request_for(method, template, world)
            if method == "POST" and template == "/api/documents":
                reply: Reply = hostile.upload(make_text_pdf(["hostile"]), "h.pdf")
            else:
                reply = hostile.request(method, path, body=body)
            assert reply.status == status, (claims, method, template, reply.json)

    # legitimate identities: every route, in random order, against every other namespace's things
    order = [(c, ns, key) for c, ns in world.callers for key in CASES]
    rng.shuffle(order)
    for client, ns, key in order:
        CASES[key](client, ns, world)

    # every namespace's things survived every attempt
    for owner in world.owners.values():
        assert owner.client.get(f"/api/documents/{owner.doc_id}").status == 200
        assert owner.client.get(f"/api/chat/sessions/{owner.session_id}/history").status == 200
        assert owner.client.get("/api/documents").json["total"] == 1 + len(owner.uploads)


# --- a personal workspace through the S3 path: upload-url → PUT → notification → ingest ----------------


@pytest.fixture
def s3_api(aws: Any, tmp_path: Any, pg_dsn: str) -> Iterator[tuple[ApiClient, Any]]:  # noqa: F811
    from functions.ingest import handler as ingest_handler

    settings = make_settings(tmp_path / "data", pg_dsn, blob_backend="s3", s3_bucket=TEST_BUCKET)
    service = build_service(settings)
    router.set_service_factory(lambda: service)
    ingest_handler.set_service_factory(lambda: service)
    try:
        yield ApiClient(service), ingest_handler
    finally:
        router.set_service_factory(None)
        ingest_handler.set_service_factory(None)
        service.documents.close()


@pytest.mark.parametrize("encode_tilde", [False, True], ids=["tilde", "percent-encoded"])
def test_a_personal_workspace_uploads_through_upload_url_and_ingests_from_s3(
        s3_api: tuple[ApiClient, Any], aws: Any, encode_tilde: bool) -> None:  # noqa: F811
    api, ingest = s3_api
    me = api.as_caller({"sub": "tenant-a"})  # no claim, and a sub equal to a tenant id
    tenant = api.as_caller({"sub": "someone", CLAIM: "tenant-a"})
    reply = me.post("/api/documents/upload-url", {"filename": "Field report.pdf"})
    assert reply.status == 200, reply.json
    key = reply.json["key"]
    assert key.startswith(f"tenants/{personal_namespace('tenant-a')}/uploads/")
    aws.put_object(Bucket=TEST_BUCKET, Key=key, Body=make_text_pdf(["Kittiwakes nest on narrow cliff ledges."]),
                   ContentType="application/pdf")
    event_key = key.replace("~", "%7E") if encode_tilde else key  # S3 may percent-encode it
    result = ingest.lambda_handler(sqs_event(s3_notification(TEST_BUCKET, event_key, encode=False)),
                                   lambda_context())
    assert result["batchItemFailures"] == []
    [doc] = me.get("/api/documents").json["documents"]
    assert doc["tenant_id"] == personal_namespace("tenant-a") and doc["processing_status"] == "completed"
    assert me.post("/api/search", {"query": "kittiwakes cliff ledges"}).json["results"]
    # the tenant whose id equals the sub sees none of it
    assert tenant.get("/api/documents").json["total"] == 0
    assert tenant.post("/api/search", {"query": "kittiwakes cliff ledges"}).json["results"] == []
