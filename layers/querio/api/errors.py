"""The one place an exception becomes an HTTP status and a body.

Every non-2xx response of the API (the router, its pre-dispatch guard and the local server)
has ONE JSON shape, :class:`querio.models.ErrorBody`::

    {"error": {"code": "not_found", "message": "...", "details": ..., "request_id": "..."}}

Statuses are chosen by exception *class* (the first match along the MRO), never by message:

=====================================  ======  =============================================
exception                              status  body
=====================================  ======  =============================================
``Unauthorized``                       401     the message (what is missing from the token)
``Forbidden``                          403     the message (the token's tenant claim is unusable)
``NotFound``                           404     the message (other tenants' ids look absent)
``Conflict``                           409     the message
``PayloadTooLarge``                    413     the message
``ValidationFailed``                   422     the message and details
``PermanentIngestError`` (bad file)    422     code of the file's problem, reason, outcome
``RateLimited``                        429     + ``Retry-After: <retry_after_s>`` header
``ConfigurationError``                 500     generic message; the setting is logged
``TransientError``                     503     generic message; the cause is logged
any other exception                    500     generic message; the traceback is logged
Powertools ``RequestValidationError``  422     ``details`` = [{loc, type, msg}], no input echo
Powertools unsupported content type    415
Powertools route not found             404     code ``route_not_found``
``MethodNotAllowed`` (known path)      405     + ``Allow: <methods>`` header
=====================================  ======  =============================================

5xx bodies never carry exception text (it may name hosts, paths or SQL); the log line has
it, tagged with the same ``request_id`` the client sees (also sent as ``X-Request-Id``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)

from querio import errors
from querio.models import ErrorBody, IngestOutcome

log = logging.getLogger(__name__)

#: Domain error class → HTTP status. Subclasses inherit their parent's status.
STATUS_BY_ERROR: dict[type[errors.QuerioError], int] = {
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.ValidationFailed: 422,
    errors.PermanentIngestError: 422,
    errors.RateLimited: 429,
    errors.ConfigurationError: 500,
    errors.TransientError: 503,
}

#: What a client is told for server-side failures (the real cause goes to the log only).
GENERIC_MESSAGES: dict[int, str] = {
    500: "internal server error",
    503: "a dependency is temporarily unavailable; retry later",
}
CONFIGURATION_MESSAGE = "the server is misconfigured"
REQUEST_ID_HEADER = "X-Request-Id"


class IngestRejected(errors.PermanentIngestError):
    """An upload whose ingest ``failed`` (empty, not a PDF, corrupt, ...).

    Raised by the router so a failed outcome is answered like every other client error
    (status from :data:`STATUS_BY_ERROR`, the error shape), with the outcome in ``details``.
    ``code`` is the file's own error code (``not_a_pdf``, ``empty_file``, ...).
    """

    def __init__(self, outcome: IngestOutcome) -> None:
        super().__init__(outcome.reason or "the file could not be ingested",
                         details={"outcome": outcome.model_dump(mode="json")})
        self.code = outcome.error_code or errors.PermanentIngestError.code
        self.outcome = outcome


class MethodNotAllowed(errors.QuerioError):
    """A known path asked with a method it does not serve (answered with ``Allow``)."""

    code = "method_not_allowed"

    def __init__(self, method: str, allowed: list[str]) -> None:
        super().__init__(f"{method} is not allowed here; use {', '.join(allowed)}",
                         details={"allowed": list(allowed)})
        self.allowed = list(allowed)


STATUS_BY_ERROR[MethodNotAllowed] = 405


def status_for(exc: BaseException) -> int:
    """The HTTP status of an exception: the first class in its MRO that has one, else 500."""
    for cls in type(exc).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return 500


def error_payload(code: str, message: str, *, details: Any = None,
                  request_id: str | None = None) -> dict[str, Any]:
    """The JSON error shape as a plain dict (JSON-safe: UUIDs and dates become strings)."""
    detail = ErrorBody.Detail(code=code, message=message, details=details, request_id=request_id)
    return ErrorBody(error=detail).model_dump(mode="json", fallback=str)


def describe(exc: BaseException, request_id: str | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    """``(status, body, extra headers)`` for any exception; logs server-side failures."""
    headers: dict[str, str] = {}
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id

    if isinstance(exc, RequestValidationError):
        return 422, error_payload("validation_error", "the request is invalid",
                                  details=validation_details(exc.errors()), request_id=request_id), headers
    if isinstance(exc, RequestUnsupportedContentType):
        return 415, error_payload("unsupported_media_type", "unsupported Content-Type",
                                  details=validation_details(exc.errors()), request_id=request_id), headers
    if isinstance(exc, NotFoundError):
        return 404, error_payload("route_not_found", "no such route", request_id=request_id), headers
    if isinstance(exc, ServiceError) and exc.status_code < 500:
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        return exc.status_code, error_payload(code, str(exc.msg), request_id=request_id), headers

    status = status_for(exc)
    if isinstance(exc, errors.QuerioError) and status < 500:
        if isinstance(exc, errors.RateLimited):
            headers["Retry-After"] = str(max(int(exc.retry_after_s), 0))
        if isinstance(exc, MethodNotAllowed):
            headers["Allow"] = ", ".join(exc.allowed)
        return status, error_payload(exc.code, exc.message, details=exc.details or None,
                                     request_id=request_id), headers

    # Server side: log everything, tell the client nothing specific.
    if isinstance(exc, errors.ConfigurationError):
        log.error("configuration error (request %s): %s", request_id, exc.message)
        return status, error_payload(exc.code, CONFIGURATION_MESSAGE, request_id=request_id), headers
    if isinstance(exc, errors.TransientError):
        log.warning("dependency unavailable (request %s): %s", request_id, exc, exc_info=exc)
        return status, error_payload(exc.code, GENERIC_MESSAGES[503], request_id=request_id), headers
    if isinstance(exc, ResponseValidationError):
        log.error("response failed its own schema (request %s): %s", request_id, exc.errors())
    else:
        log.error("unhandled error (request %s)", request_id, exc_info=exc)
    return 500, error_payload("internal_error", GENERIC_MESSAGES[500], request_id=request_id), headers


def validation_details(problems: Any) -> list[dict[str, Any]]:
    """Pydantic/Powertools errors reduced to ``{loc, type, msg}``: the offending input is
    never echoed (it may be large or sensitive), and ``msg`` is pydantic's own wording."""
    out = []
    for p in problems or ():
        if isinstance(p, Mapping):
            out.append({"loc": [str(x) for x in p.get("loc", ())], "type": str(p.get("type", "invalid")),
                        "msg": str(p.get("msg", "invalid value"))})
    return out


def to_response(exc: BaseException, request_id: str | None = None) -> Response[dict[str, Any]]:
    """A Powertools :class:`Response` in the error shape for ``exc``."""
    status, body, headers = describe(exc, request_id)
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body,
                    headers=headers)


def request_id_of(app: ApiGatewayResolver) -> str | None:
    """The API Gateway request id of the event being resolved (``None`` outside a request)."""
    try:
        event = app.current_event.raw_event
    except AttributeError:
        return None
    rid = (event.get("requestContext") or {}).get("requestId")
    return str(rid) if rid else None


def register_error_handlers(app: ApiGatewayResolver) -> None:
    """Route every exception raised while resolving a request through :func:`to_response`."""

    @app.exception_handler([Exception, RequestValidationError, RequestUnsupportedContentType,
                            ResponseValidationError, NotFoundError, ServiceError])
    def _handle(exc: Exception) -> Response[dict[str, Any]]:
        return to_response(exc, request_id_of(app))
