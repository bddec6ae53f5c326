"""Domain errors.

Each error carries a stable machine-readable ``code``. The HTTP status of each class is
decided in exactly one place, ``querio.api.errors``; nothing maps errors by message text.

Ingest errors split in two families, because the serverless ingest path treats them
differently (see issue 3): a :class:`PermanentIngestError` marks the document failed and
the message is acknowledged; a :class:`TransientError` is raised so the message is retried.
"""

from __future__ import annotations


class QuerioError(Exception):
    """Base of every error Querio raises on purpose."""

    code: str = "querio_error"

    def __init__(self, message: str, *, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ConfigurationError(QuerioError):
    """A setting is missing or invalid; raised at start-up, naming the setting."""

    code = "configuration_error"


class ValidationFailed(QuerioError):
    """A request or argument is malformed (beyond what the request models catch)."""

    code = "validation_error"


class NotFound(QuerioError):
    """The resource does not exist *for this tenant* (other tenants' ids look the same)."""

    code = "not_found"


class Conflict(QuerioError):
    """The request conflicts with the resource's state (e.g. reprocessing while processing)."""

    code = "conflict"


class EmbedderMismatch(Conflict):
    """The tenant's corpus was embedded by another embedder variant than the running one
    (another model, quantization or export): its vectors and the query's are not comparable."""

    code = "embedder_mismatch"


class PayloadTooLarge(QuerioError):
    code = "payload_too_large"


class Unauthorized(QuerioError):
    """The request carries no usable identity (no verified token, no ``sub``)."""

    code = "unauthorized"


class Forbidden(QuerioError):
    """The identity is verified but names no tenant it may act for (an empty, malformed or
    ambiguous tenant claim, or none where one is required): nothing is allowed, and nothing
    falls back to another namespace."""

    code = "forbidden"


class UnsupportedMediaType(QuerioError):
    """The body's Content-Type is not one the route reads (JSON routes take application/json)."""

    code = "unsupported_media_type"


class RateLimited(QuerioError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, details={"retry_after_s": retry_after_s})
        self.retry_after_s = retry_after_s


class TransientError(QuerioError):
    """A dependency (database, blob store, cache) is unavailable; retrying may succeed."""

    code = "dependency_unavailable"


class StaleObject(QuerioError):
    """The stored object no longer is the version an event named (a newer write replaced it)."""

    code = "stale_object"


# --- ingest -----------------------------------------------------------------------------


class PermanentIngestError(QuerioError):
    """The file itself cannot be ingested; retrying the same bytes will fail the same way."""

    code = "ingest_failed"


class EmptyFile(PermanentIngestError):
    code = "empty_file"


class NotAPdf(PermanentIngestError):
    code = "not_a_pdf"


class CorruptPdf(PermanentIngestError):
    code = "corrupt_pdf"


class EncryptedPdf(PermanentIngestError):
    code = "encrypted_pdf"


class NoExtractableText(PermanentIngestError):
    """Every page is image-only (a scan); there is nothing to index without OCR."""

    code = "no_extractable_text"


class FileTooLarge(PermanentIngestError):
    code = "file_too_large"
