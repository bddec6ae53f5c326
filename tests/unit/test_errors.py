"""The error → HTTP mapping, by class (no database needed)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from querio import errors
from querio.api.errors import IngestRejected, describe, error_payload, status_for
from querio.models import ErrorBody, IngestOutcome


@pytest.mark.parametrize(("exc", "status"), [
    (errors.NotFound("x"), 404),
    (errors.ValidationFailed("x"), 422),
    (errors.Conflict("x"), 409),
    (errors.PayloadTooLarge("x"), 413),
    (errors.Unauthorized("x"), 401),
    (errors.RateLimited("x", retry_after_s=7), 429),
    (errors.TransientError("x"), 503),
    (errors.ConfigurationError("x"), 500),
    (errors.PermanentIngestError("x"), 422),
    (errors.NotAPdf("x"), 422),  # subclasses inherit their family's status
    (errors.EncryptedPdf("x"), 422),
    (errors.QuerioError("x"), 500),
    (ValueError("x"), 500),
    (KeyError("x"), 500),
])
def test_status_by_class(exc: Exception, status: int) -> None:
    assert status_for(exc) == status
    assert describe(exc)[0] == status


def test_mapping_ignores_the_message_text() -> None:
    assert status_for(errors.Conflict("document not found")) == 409
    assert status_for(RuntimeError("not found")) == 500


def shape(body: dict[str, Any]) -> ErrorBody:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details", "request_id"}
    return ErrorBody.model_validate(body)


def test_client_errors_carry_code_message_details_and_request_id() -> None:
    exc = errors.NotFound("document 123 not found", details={"id": "123"})
    status, body, headers = describe(exc, "req-1")
    err = shape(body).error
    assert (status, err.code, err.message, err.details, err.request_id) == (
        404, "not_found", "document 123 not found", {"id": "123"}, "req-1")
    assert headers == {"X-Request-Id": "req-1"}


def test_rate_limited_sets_retry_after() -> None:
    status, body, headers = describe(errors.RateLimited("slow down", retry_after_s=30))
    assert status == 429 and headers["Retry-After"] == "30"
    assert body["error"]["details"] == {"retry_after_s": 30}


@pytest.mark.parametrize(("exc", "code"), [
    (RuntimeError("password=hunter2 at db.internal:5432"), "internal_error"),
    (errors.TransientError("connection to 10.0.0.5 refused"), "dependency_unavailable"),
    (errors.ConfigurationError("QUERIO_DATABASE_URL: secret://x"), "configuration_error"),
])
def test_server_errors_never_leak_internals(exc: Exception, code: str,
                                            caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="querio.api.errors"):
        status, body, _ = describe(exc, "req-9")
    err = shape(body).error
    assert status >= 500 and err.code == code and err.details is None
    assert str(exc) not in err.message and "hunter2" not in str(body) and "10.0.0.5" not in str(body)
    # ... but the log has it, with the request id to find it by
    assert "req-9" in caplog.text and str(exc) in caplog.text


def test_unknown_errors_log_the_traceback(caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError as exc:
        with caplog.at_level(logging.ERROR, logger="querio.api.errors"):
            describe(exc, "r")
    assert any(r.exc_info for r in caplog.records)


def test_request_validation_error_is_422_without_echoing_input() -> None:
    exc = RequestValidationError([{"loc": ("body", "k"), "type": "less_than_equal",
                                   "msg": "Input should be <= 50", "input": "SECRET-INPUT"}])
    status, body, _ = describe(exc)
    err = shape(body).error
    assert status == 422 and err.code == "validation_error"
    assert err.details == [{"loc": ["body", "k"], "type": "less_than_equal", "msg": "Input should be <= 50"}]
    assert "SECRET-INPUT" not in str(body)


def test_powertools_errors() -> None:
    problem = {"loc": ("body",), "type": "unsupported_content_type", "msg": "Unsupported content type: x"}
    unsupported = RequestUnsupportedContentType("x", errors=[problem])
    assert describe(unsupported)[0] == 415
    status, body, _ = describe(NotFoundError())
    assert status == 404 and body["error"]["code"] == "route_not_found"


def test_failed_ingest_outcome_is_a_422_with_the_files_own_code() -> None:
    outcome = IngestOutcome(status="failed", document=None, reason="the file is not a PDF",
                            error_code="not_a_pdf")
    status, body, _ = describe(IngestRejected(outcome))
    err = shape(body).error
    assert (status, err.code, err.message) == (422, "not_a_pdf", "the file is not a PDF")
    assert err.details["outcome"]["status"] == "failed"


def test_payload_is_json_safe() -> None:
    import uuid

    body = error_payload("x", "y", details={"id": uuid.UUID(int=1), "obj": object()})
    assert body["error"]["details"]["id"] == "00000000-0000-0000-0000-000000000001"
    assert isinstance(body["error"]["details"]["obj"], str)
