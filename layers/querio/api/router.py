"""The HTTP API: ONE Powertools resolver for API Gateway (HTTP API, payload v2) and ``querio serve``.

The query Lambda handler and the local server both call ``app.resolve(event, context)``.
Routes are thin: validate (Powertools + the pydantic models of :mod:`querio.models`), call
:class:`~querio.service.QuerioService`, return its model. Errors are mapped in
:mod:`querio.api.errors` only.

Service injection
    Each request gets the service from :func:`current_service`: by default the process-wide
    ``querio.wiring.get_service()`` (built on first use, never at import time). Tests and the
    local server substitute their own with :func:`set_service_factory` (``None`` restores the
    default). Routes receive it through Powertools ``Depends`` (``ServiceDep``).

Methods
    A known path asked with a method it does not serve is 405 with ``Allow`` (not 404);
    ``HEAD`` is answered by the path's ``GET`` route without a body. Both are decided before
    identity: they reveal nothing but the route table.

Identity
    Before dispatch, :meth:`QuerioResolver.resolve` authenticates every path except
    :data:`PUBLIC_PATHS` from the JWT authorizer claims (:mod:`querio.api.identity`, with the
    ``QUERIO_TENANT_CLAIM`` and ``QUERIO_PERSONAL_WORKSPACES`` settings), so a request without
    identity gets 401 (an unusable tenant claim 403) before its body is even parsed. Routes
    receive the :class:`~querio.models.Principal` through ``PrincipalDep``.

Rate limits (→ 429 with ``Retry-After``)
    Every authenticated request counts against its user's per-minute budget
    (``QUERIO_RATE_LIMIT_PER_MINUTE``, keyed by tenant and user) right after identity and
    before the body is read; see ``QuerioService.admit``. A cache that is down admits.

Body limits (checked before parsing, → 413)
    multipart uploads: ``settings.request_file_limit`` + :data:`MULTIPART_OVERHEAD`, and the
    file part itself ≤ ``settings.request_file_limit``; any other body: :data:`MAX_JSON_BODY`.
    ``request_file_limit`` is ``QUERIO_MAX_REQUEST_FILE_BYTES`` when set (the CDK app sets the
    query function's from Lambda's 6 MB invoke payload, see
    :data:`querio.tiers.LAMBDA_REQUEST_FILE_BYTES`), else ``QUERIO_MAX_FILE_BYTES``; when it is
    the smaller, the 413 points to ``POST /api/documents/upload-url``, which takes files up to
    ``QUERIO_MAX_FILE_BYTES`` straight to S3.

Upload and reprocess statuses
    ``ingested`` → 201 (reprocess: 200), ``duplicate`` / ``in_progress`` → 200, all with body
    ``UploadResponse``; ``failed`` (empty, not a PDF, corrupt, encrypted, scanned, too big) →
    422 in the error shape with ``code`` = the file's error code, ``message`` = the reason and
    ``details.outcome`` = the full ``IngestOutcome`` (the failed document is recorded).
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Depends, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import File, Form, Path, Query, UploadFile
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from querio import __version__
from querio.api.errors import IngestRejected, MethodNotAllowed, register_error_handlers, to_response
from querio.api.identity import principal_from_event
from querio.config import Settings
from querio.errors import PayloadTooLarge, Unauthorized, UnsupportedMediaType, ValidationFailed
from querio.models import (
    Answer,
    ChatMessage,
    ChatReply,
    ChatRequest,
    ChatSession,
    Document,
    DocumentList,
    DocumentStatus,
    ErrorBody,
    IngestOutcome,
    Principal,
    QueryRequest,
    SearchRequest,
    SearchResponse,
    TenantStats,
    UploadResponse,
)
from querio.observability import MetricUnit, emit
from querio.service import QuerioService
from querio.tiers import MULTIPART_FRAMING_BYTES

log = logging.getLogger(__name__)

#: Paths answered without identity (liveness probes and API documentation).
PUBLIC_PATHS = frozenset({"/api/health", "/api/openapi.json", "/api/docs"})
#: Room for multipart framing (boundaries, part headers, the ``tags`` field) around the file.
MULTIPART_OVERHEAD = MULTIPART_FRAMING_BYTES
#: Where a file too large for the request body goes instead.
UPLOAD_URL_ROUTE = "POST /api/documents/upload-url"
#: Largest non-multipart body (queries are ≤ 2000 characters; filters ≤ 100 ids).
MAX_JSON_BODY = 1024 * 1024
#: HTTP status of a successful upload / reprocess, by outcome.
UPLOAD_STATUS = {"ingested": 201, "duplicate": 200, "in_progress": 200}
REPROCESS_STATUS = {"ingested": 200, "duplicate": 200, "in_progress": 200}

_PRINCIPAL_KEY = "querio_principal"

# --- service injection ------------------------------------------------------------------------

ServiceFactory = Callable[[], QuerioService]
_service_factory: ServiceFactory | None = None


def set_service_factory(factory: ServiceFactory | None) -> None:
    """Serve every later request with ``factory()`` (called per request; cache inside it).

    ``None`` restores the default, ``querio.wiring.get_service``.
    """
    global _service_factory
    _service_factory = factory


def current_service() -> QuerioService:
    """The service for this request (see :func:`set_service_factory`)."""
    if _service_factory is not None:
        return _service_factory()
    from querio.wiring import get_service

    return get_service()


def max_body_bytes(settings: Settings) -> int:
    """Largest request body any route accepts (a multipart upload of the largest file)."""
    return settings.request_file_limit + MULTIPART_OVERHEAD


def file_too_large(size: int, limit: int, settings: Settings, what: str = "the file") -> PayloadTooLarge:
    """413 for an upload request over ``limit``; names the upload-url route when it takes more."""
    message = f"{what} is about {size:,} bytes; this request takes at most {limit:,}"
    details: dict[str, object] = {"limit_bytes": limit}
    if settings.request_file_limit < settings.max_file_bytes:
        message += (f"; upload files up to {settings.max_file_bytes:,} bytes with {UPLOAD_URL_ROUTE}"
                    " (a presigned S3 upload)")
        details["use"] = UPLOAD_URL_ROUTE
    return PayloadTooLarge(message, details=details)


# --- the resolver ----------------------------------------------------------------------------


class _RequestState(threading.local):
    """What Powertools keeps per request on the app (and on ``BaseRouter``, a class attribute)."""

    def __init__(self) -> None:
        self.event: Any = None
        self.lambda_context: Any = None
        self.context: dict[str, Any] = {}
        self.frames: list[str] = []


def _per_thread(name: str) -> property:
    return property(lambda self: getattr(self._state, name), lambda self, value: setattr(self._state, name, value))


class QuerioResolver(APIGatewayHttpResolver):
    """``APIGatewayHttpResolver`` plus a pre-dispatch guard (identity, body size and encoding).

    Powertools validates the body before any middleware runs, so checks that must precede
    parsing (401 before 422; 413 before decoding a huge body) run in :meth:`resolve`.

    The request state Powertools keeps on the app (the event, the Lambda context, the routing
    context, the middleware frames) is per thread here, so ``querio serve`` resolves requests
    concurrently (a Lambda container handles one at a time anyway).
    """

    current_event = _per_thread("event")
    lambda_context = _per_thread("lambda_context")
    context = _per_thread("context")
    processed_stack_frames = _per_thread("frames")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._state = _RequestState()
        super().__init__(*args, **kwargs)

    def resolve(self, event: Mapping[str, Any], context: LambdaContext | Any) -> dict[str, Any]:
        head = False
        try:
            proxy = APIGatewayProxyEventV2(dict(event))
            path = self._remove_prefix(proxy.path)
            method = proxy.http_method.upper()
            allowed = self.allowed_methods(path)
            if method == "HEAD" and "GET" in allowed:
                event, head = _as_get(event), True  # HEAD is GET without the body (RFC 9110 9.3.2)
            elif allowed and method not in allowed:
                raise MethodNotAllowed(method, allowed)
            principal = self._guard(event, path)
        except Exception as exc:
            rid = (event.get("requestContext") or {}).get("requestId")
            builder: ResponseBuilder[Any] = ResponseBuilder(to_response(exc, str(rid) if rid else None),
                                                            serializer=self._serializer)
            return builder.build(APIGatewayProxyEventV2(dict(event)))
        # this thread's view; Powertools also sets BaseRouter's class attributes, which we never read
        self.current_event = self._to_proxy_event(dict(event))
        self.lambda_context = context
        if principal is not None:
            self.append_context(**{_PRINCIPAL_KEY: principal})
        result = super().resolve(event, context)
        if head:
            result = {**result, "body": "", "isBase64Encoded": False}
        return result

    def routes(self) -> list[tuple[str, str]]:
        """Every registered ``(method, path template)``, e.g. ``("GET", "/api/documents/<document_id>")``."""
        return [(r.method, r.path) for r in self._static_routes + self._dynamic_routes]

    def allowed_methods(self, path: str) -> list[str]:
        """The methods registered for ``path`` (empty for an unknown path)."""
        found = {r.method for r in self._static_routes + self._dynamic_routes if r.rule.match(path)}
        if "GET" in found:
            found.add("HEAD")
        return sorted(found)

    def _guard(self, event: Mapping[str, Any], path: str) -> Principal | None:
        principal = None
        if path not in PUBLIC_PATHS:
            settings = current_service().settings
            principal = principal_from_event(event, tenant_claim=settings.tenant_claim,
                                             personal_workspaces=settings.personal_workspaces)
            current_service().admit(principal)  # rate limit (429) and daily active users
        _check_body(APIGatewayProxyEventV2(dict(event)))
        return principal


def _as_get(event: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a v2 event with the method set to GET."""
    context = dict(event.get("requestContext") or {})
    context["http"] = {**(context.get("http") or {}), "method": "GET"}
    return {**event, "requestContext": context}


def _check_body(event: APIGatewayProxyEventV2) -> None:
    """Reject oversized or undecodable bodies before Powertools parses them."""
    body = event.body
    if not body:
        return
    content_type = (event.headers.get("content-type") or "").strip().lower()
    multipart = content_type.startswith("multipart/form-data")
    size = len(body) * 3 // 4 if event.is_base64_encoded else len(body.encode())
    if multipart:
        settings = current_service().settings
        if size > max_body_bytes(settings):
            raise file_too_large(size, max_body_bytes(settings), settings, "the request body")
    elif size > MAX_JSON_BODY:
        raise PayloadTooLarge(f"the request body is about {size:,} bytes; the limit is {MAX_JSON_BODY:,}",
                              details={"limit_bytes": MAX_JSON_BODY})
    if multipart:
        if "boundary=" not in content_type:
            raise ValidationFailed("multipart/form-data needs a boundary parameter")
        return
    if content_type.startswith("application/x-www-form-urlencoded"):
        # Powertools would parse it as form fields and report the JSON keys as "extra" fields
        # (curl -d sends this type by default): say what is wrong instead.
        raise UnsupportedMediaType("send JSON bodies with Content-Type: application/json",
                                   details={"content_type": content_type.split(";")[0]})
    raw = body.encode()
    try:
        if event.is_base64_encoded:
            raw = base64.b64decode(raw, validate=True)
        raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationFailed("the request body is not valid UTF-8 text") from exc


app = QuerioResolver(enable_validation=True)
register_error_handlers(app)
app.enable_swagger(path="/api/docs", title="Querio", version=__version__)


def _service() -> QuerioService:
    return current_service()


def _principal() -> Principal:
    principal = app.context.get(_PRINCIPAL_KEY)
    if principal is None:  # routes added without the guard (never for the routes below)
        settings = current_service().settings
        principal = principal_from_event(app.current_event.raw_event, tenant_claim=settings.tenant_claim,
                                         personal_workspaces=settings.personal_workspaces)
    if not isinstance(principal, Principal):
        raise Unauthorized("no verified identity")
    return principal


ServiceDep = Annotated[QuerioService, Depends(_service)]
PrincipalDep = Annotated[Principal, Depends(_principal)]
DocumentId = Annotated[uuid.UUID, Path(description="document id (UUID)")]
SessionId = Annotated[uuid.UUID, Path(description="chat session id (UUID)")]


def _responses(ok: int, description: str, *error_codes: int, **more: Any) -> dict[int, Any]:
    """OpenAPI responses of a route: the success (schema from the return annotation), the
    error statuses it may give (all ``ErrorBody``) and ``more`` (``_<status>=entry``)."""
    out: dict[int, Any] = {ok: {"description": description}}
    for c in error_codes:
        out[c] = {"description": HTTPStatus(c).phrase,
                  "content": {content_types.APPLICATION_JSON: {"model": ErrorBody}}}
    out.update({int(k.lstrip("_")): v for k, v in more.items()})
    return out


_COMMON = (401, 422)  # every authenticated route: no identity, invalid input


@contextmanager
def _latency(name: str = "QueryLatency") -> Iterator[None]:
    """Emit the block's wall time in milliseconds (search, query and chat)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        emit(name, (time.perf_counter() - started) * 1000, MetricUnit.Milliseconds)


def _split_tags(tags: str | None) -> list[str]:
    return [t.strip() for t in (tags or "").split(",") if t.strip()]


def _outcome_response(outcome: IngestOutcome, statuses: Mapping[str, int]) -> Response[UploadResponse]:
    if outcome.status == "failed":
        raise IngestRejected(outcome)
    return Response(status_code=statuses[outcome.status], content_type=content_types.APPLICATION_JSON,
                    body=UploadResponse(outcome=outcome))


# --- meta ------------------------------------------------------------------------------------


@app.get("/api/health", tags=["meta"], summary="Liveness and dependency status (no identity needed)",
         responses=_responses(200, "the service answers (status 'degraded' while the cache does not)",
                              _503={"description": "the database is down (same body, status 'degraded')"}))
def health(service: ServiceDep) -> Response[dict[str, Any]]:
    """``{"status": "ok"|"degraded", "database": bool, "cache": str, "cache_status": "ok"|"degraded",
    "vector_backend": str}``. 503 only without the database: requests fail open without the cache."""
    report = service.health()
    status = 200 if report.get("database") else 503
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=report)


@cache
def _openapi_json() -> str:
    return app.get_openapi_json_schema(
        title="Querio", version=__version__,
        description="PDF retrieval (RAG): upload PDFs, search them (hybrid vector + full-text) and ask "
                    "questions answered with page citations. Every route but health and the API "
                    "documents needs a JWT (API Gateway authorizer).",
        security_schemes={"jwt": HTTPBearer(bearerFormat="JWT")}, security=[{"jwt": []}])


@app.get("/api/openapi.json", include_in_schema=False)
def openapi_document() -> Response[str]:
    """The OpenAPI 3.1 document of this API, generated from the routes and models."""
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=_openapi_json())


@app.get("/api/stats", tags=["meta"], summary="Corpus and usage statistics of the caller's tenant",
         responses=_responses(200, "statistics", 401))
def stats(service: ServiceDep, principal: PrincipalDep) -> TenantStats:
    return service.stats(principal)


# --- documents ---------------------------------------------------------------------------------


@app.post("/api/documents", tags=["documents"], status_code=201,
          summary="Upload and ingest one PDF (multipart/form-data: file, optional comma-separated tags)",
          responses=_responses(201, "ingested", 401, 413, 422,
                               _200={"description": "identical bytes already ingested, or being ingested"}))
def upload_document(
    file: Annotated[UploadFile, File(description="the PDF file")],
    service: ServiceDep,
    principal: PrincipalDep,
    tags: Annotated[str | None, Form(description="comma-separated tags, e.g. 'manuals,2024'")] = None,
) -> Response[UploadResponse]:
    """201 ``ingested``; 200 ``duplicate``/``in_progress``; 422 ``failed`` (error shape, outcome
    in ``details.outcome``); 413 when the file exceeds the request limit (see the module doc)."""
    if len(file.content) > service.settings.request_file_limit:
        raise file_too_large(len(file.content), service.settings.request_file_limit, service.settings)
    outcome = service.ingest(principal, file.content, file.filename or "upload.pdf", tags=_split_tags(tags))
    return _outcome_response(outcome, UPLOAD_STATUS)


class UploadUrlRequest(BaseModel):
    """``POST /api/documents/upload-url``: the file the client is about to PUT to S3."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255, description="shown in listings; never part of the key")
    content_length: int | None = Field(default=None, ge=1, description="bytes; ≤ QUERIO_MAX_FILE_BYTES")


# Registered before the ``<document_id>`` routes so ``upload-url`` is never read as an id.
@app.post("/api/documents/upload-url", tags=["documents"],
          summary="A presigned S3 PUT for a large PDF (ingested when the upload completes)",
          responses=_responses(200, "url, key, headers to send, expiry", *_COMMON, 413))
def create_upload_url(body: UploadUrlRequest, service: ServiceDep, principal: PrincipalDep) -> dict[str, Any]:
    """PUT the bytes to ``url`` with ``headers``; the S3 notification starts the ingest."""
    limit = service.settings.max_file_bytes
    if body.content_length is not None and body.content_length > limit:
        raise PayloadTooLarge(f"the file is {body.content_length:,} bytes; the limit is {limit:,}",
                              details={"limit_bytes": limit})
    return service.create_upload_url(principal, body.filename, body.content_length)


@app.get("/api/documents/<document_id>/download-url", tags=["documents"],
         summary="A short-lived presigned S3 GET for the stored PDF",
         responses=_responses(200, "url and expiry", *_COMMON, 404, 409))
def create_download_url(document_id: DocumentId, service: ServiceDep, principal: PrincipalDep) -> dict[str, Any]:
    """409 while the file is archived and not yet restored (``POST .../restore`` first)."""
    return service.create_download_url(principal, document_id)


@app.post("/api/documents/<document_id>/restore", tags=["documents"], status_code=202,
          summary="Start restoring an archived (GLACIER) document's file",
          responses=_responses(202, "restore started (or already available)", *_COMMON, 404))
def restore_document(document_id: DocumentId, service: ServiceDep, principal: PrincipalDep) -> Document:
    return service.restore_document(principal, document_id)


@app.get("/api/documents", tags=["documents"], summary="List the caller's documents, newest first",
         responses=_responses(200, "a page of documents", *_COMMON))
def list_documents(
    service: ServiceDep,
    principal: PrincipalDep,
    status: Annotated[DocumentStatus | None, Query(description="only documents in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="page size")] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="documents to skip")] = 0,
) -> DocumentList:
    return service.list_documents(principal, status=status, limit=limit, offset=offset)


@app.get("/api/documents/<document_id>", tags=["documents"], summary="One document's metadata",
         responses=_responses(200, "the document", *_COMMON, 404))
def get_document(document_id: DocumentId, service: ServiceDep, principal: PrincipalDep) -> Document:
    return service.get_document(principal, document_id)


@app.delete("/api/documents/<document_id>", tags=["documents"],
            summary="Delete a document, its chunks, vectors and file; returns what was deleted",
            responses=_responses(200, "the deleted document", *_COMMON, 404))
def delete_document(document_id: DocumentId, service: ServiceDep, principal: PrincipalDep) -> Document:
    return service.delete_document(principal, document_id)


@app.post("/api/documents/<document_id>/reprocess", tags=["documents"],
          summary="Parse, chunk and embed a stored document again",
          responses=_responses(200, "the outcome (ingested or in_progress)", *_COMMON, 404, 409))
def reprocess_document(document_id: DocumentId, service: ServiceDep,
                       principal: PrincipalDep) -> Response[UploadResponse]:
    """200 with the outcome; 422 (error shape) when the stored file fails; 409 while it is busy."""
    return _outcome_response(service.reprocess(principal, document_id), REPROCESS_STATUS)


# --- retrieval -----------------------------------------------------------------------------------


@app.post("/api/search", tags=["retrieval"], summary="Hybrid (vector + full-text) search over chunks",
          responses=_responses(200, "ranked chunks", *_COMMON))
def search(body: SearchRequest, service: ServiceDep, principal: PrincipalDep) -> SearchResponse:
    """Ranked chunks, each with ``filename`` and 1-based physical ``page``."""
    with _latency():
        return service.search(principal, body)


@app.post("/api/query", tags=["retrieval"], summary="Answer a question from the documents, with citations",
          responses=_responses(200, "the answer and its sources", *_COMMON))
def query(body: QueryRequest, service: ServiceDep, principal: PrincipalDep) -> Answer:
    with _latency():
        return service.query(principal, body)


# --- chat ------------------------------------------------------------------------------------------


@app.post("/api/chat", tags=["chat"], summary="Send a message; omit session_id to start a session",
          responses=_responses(200, "the assistant's reply", *_COMMON, 404))
def chat(body: ChatRequest, service: ServiceDep, principal: PrincipalDep) -> ChatReply:
    with _latency():
        return service.chat(principal, body)


@app.get("/api/chat/sessions", tags=["chat"], summary="The caller's tenant's chat sessions",
         responses=_responses(200, "sessions, most recent first", *_COMMON))
def list_chat_sessions(
    service: ServiceDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[ChatSession]:
    return service.list_chat_sessions(principal, limit=limit, offset=offset)


@app.get("/api/chat/sessions/<session_id>/history", tags=["chat"],
         summary="Messages of a session, oldest first",
         responses=_responses(200, "the messages", *_COMMON, 404))
def chat_history(session_id: SessionId, service: ServiceDep, principal: PrincipalDep) -> list[ChatMessage]:
    return service.chat_history(principal, session_id)


@app.delete("/api/chat/sessions/<session_id>", tags=["chat"], status_code=204,
            summary="Delete a chat session", responses=_responses(204, "deleted", *_COMMON, 404))
def delete_chat_session(session_id: SessionId, service: ServiceDep,
                        principal: PrincipalDep) -> Response[None]:
    service.delete_chat_session(principal, session_id)
    return Response(status_code=204, content_type=None, body=None)
