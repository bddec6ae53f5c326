"""``BlobStore`` on Amazon S3 (boto3), plus presigned URLs and the archive operations.

* **Integrity:** ``put`` sends ``ChecksumAlgorithm=SHA256`` with the digest (S3 rejects a
  body that does not match it) and records it as user metadata ``sha256``; ``get`` asks for
  ``ChecksumMode=ENABLED`` (botocore verifies the stored checksum) and compares the
  ``sha256`` metadata too, raising ``TransientError`` on a mismatch.
* **Encryption:** ``ServerSideEncryption=AES256`` (SSE-S3), or ``aws:kms`` with
  ``kms_key_id`` when one is given. The bucket policy should also deny unencrypted puts.
* **Keys** are built by the domain (``tenants/{tenant}/...``); :func:`validate_key` still
  refuses absolute keys, ``.``/``..``/empty segments, backslashes and control characters,
  so no user-supplied string can address another tenant's prefix.
* **Errors** are classified in one function, :func:`classify_error`: missing object →
  ``NotFound``; throttling, 5xx, timeouts and connection errors → ``TransientError`` (the
  SQS consumer raises, the message is retried); an archived object that is not restored →
  ``Conflict``; access/bucket misconfiguration → ``ConfigurationError``.
"""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from querio.errors import (
    ConfigurationError,
    Conflict,
    NotFound,
    QuerioError,
    StaleObject,
    TransientError,
    ValidationFailed,
)
from querio.ports import BlobInfo, StoredBlob

ARCHIVE_STORAGE_CLASS = "GLACIER"
MAX_KEY_BYTES = 1024  # S3's limit

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_TRANSIENT = {
    "SlowDown", "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestLimitExceeded", "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "RequestTimeout", "RequestTimeoutException", "InternalError", "InternalFailure", "ServiceUnavailable",
    "ServiceUnavailableException", "503", "500", "502", "504",
}
_MISCONFIGURED = {"NoSuchBucket", "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId",
                  "SignatureDoesNotMatch", "KMS.DisabledException", "KMS.NotFoundException"}


def classify_error(exc: BaseException, what: str) -> QuerioError | None:
    """The domain error for a boto/botocore failure, or ``None`` if it is not one of those."""
    from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _NOT_FOUND:
            return NotFound(f"{what}: not found")
        if code in ("PreconditionFailed", "412"):
            return StaleObject(f"{what}: the object changed since the event that named it")
        if code == "InvalidObjectState":
            return Conflict(f"{what}: the object is archived and not restored", details={"s3_error": code})
        if code in _TRANSIENT or status >= 500 or status == 429:
            return TransientError(f"{what}: S3 unavailable ({code or status})")
        if code in _MISCONFIGURED or status == 403:
            return ConfigurationError(f"{what}: S3 refused the request ({code}); check QUERIO_S3_BUCKET and "
                                      "the function's IAM policy")
        return None
    if isinstance(exc, FlexibleChecksumError):
        return TransientError(f"{what}: checksum mismatch on read ({exc})")
    if isinstance(exc, BotoCoreError):  # connection refused/closed, timeouts, DNS, credentials fetch
        return TransientError(f"{what}: cannot reach S3 ({type(exc).__name__})")
    return None


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe, relative S3 key; ``ValidationFailed`` otherwise."""
    if not isinstance(key, str) or not key or len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValidationFailed(f"invalid blob key: {key!r}")
    if key.startswith("/") or "\\" in key or any(unicodedata.category(ch)[0] == "C" for ch in key):
        raise ValidationFailed(f"invalid blob key: {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValidationFailed(f"invalid blob key: {key!r}")
    return key


def _ascii_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """S3 user metadata travels in HTTP headers: keep it printable ASCII."""
    out: dict[str, str] = {}
    for k, v in (metadata or {}).items():
        name = "".join(ch for ch in str(k).lower() if ch.isascii() and (ch.isalnum() or ch in "-_"))
        value = "".join(ch for ch in str(v) if 32 <= ord(ch) < 127)
        if name:
            out[name[:128]] = value[:1024]
    return out


def _info(resp: dict[str, Any]) -> BlobInfo:
    """A HeadObject/GetObject response as a :class:`BlobInfo`."""
    etag = resp.get("ETag")
    return BlobInfo(etag=str(etag).strip('"') if etag else None, metadata=dict(resp.get("Metadata") or {}),
                    storage_class=str(resp.get("StorageClass") or "STANDARD"),
                    version_id=resp.get("VersionId") if resp.get("VersionId") not in (None, "null") else None)


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the RFC 5987 UTF-8 name."""
    cleaned = "".join(ch for ch in filename if unicodedata.category(ch)[0] != "C").replace("/", "_")
    cleaned = cleaned.replace("\\", "_").strip() or "document.pdf"
    fallback = "".join(ch if ch.isascii() and ch not in '"%;' else "_" for ch in cleaned)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(cleaned, safe='')}"


class S3BlobStore:
    """PDF bytes in one bucket. ``client_factory`` returns a boto3 S3 client (cached by the
    caller: :func:`querio.adapters.aws_clients.s3`), called on each use, never at build time."""

    storage_type = "s3"

    def __init__(self, bucket: str, client_factory: Callable[[], Any], *, kms_key_id: str | None = None) -> None:
        if not bucket:
            raise ConfigurationError("QUERIO_S3_BUCKET is required when QUERIO_BLOB_BACKEND=s3")
        self.bucket = bucket
        self._client = client_factory
        self._kms_key_id = kms_key_id

    # helpers ----------------------------------------------------------------------------------
    def _sse(self) -> dict[str, str]:
        if self._kms_key_id:
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self._kms_key_id}
        return {"ServerSideEncryption": "AES256"}

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except Exception as exc:
            mapped = classify_error(exc, what)
            if mapped is None:
                raise
            raise mapped from exc

    def _head(self, key: str) -> dict[str, Any]:
        return self._call(f"s3 head {key}", self._client().head_object, Bucket=self.bucket, Key=validate_key(key))

    # BlobStore ----------------------------------------------------------------------------------
    def put(self, key: str, data: bytes, *, content_type: str = "application/pdf",
            metadata: dict[str, str] | None = None) -> StoredBlob:
        validate_key(key)
        digest = hashlib.sha256(data).digest()
        hexdigest = digest.hex()
        self._call(f"s3 put {key}", self._client().put_object, Bucket=self.bucket, Key=key, Body=data,
                   ContentType=content_type, Metadata=_ascii_metadata(metadata) | {"sha256": hexdigest},
                   ChecksumAlgorithm="SHA256", ChecksumSHA256=base64.b64encode(digest).decode("ascii"),
                   **self._sse())
        return StoredBlob(key=key, size=len(data), sha256=hexdigest)

    def get(self, key: str) -> bytes:
        return self.read(key)[0]

    def read(self, key: str, *, if_match: str | None = None) -> tuple[bytes, BlobInfo]:
        validate_key(key)
        client = self._client()
        extra = {"IfMatch": f'"{if_match.strip(chr(34))}"'} if if_match else {}
        resp = self._call(f"s3 get {key}", client.get_object, Bucket=self.bucket, Key=key, ChecksumMode="ENABLED",
                          **extra)
        try:
            data: bytes = resp["Body"].read()
        except Exception as exc:  # the stream broke mid-read
            mapped = classify_error(exc, f"s3 read {key}")
            if mapped is None:
                raise
            raise mapped from exc
        expected = (resp.get("Metadata") or {}).get("sha256")
        if expected and expected != hashlib.sha256(data).hexdigest():
            raise TransientError(f"blob {key} failed its sha256 integrity check")
        return data, _info(resp)

    def head(self, key: str) -> BlobInfo:
        return _info(self._head(key))

    def delete(self, key: str) -> None:
        validate_key(key)
        # S3 DeleteObject succeeds for a missing key
        self._call(f"s3 delete {key}", self._client().delete_object, Bucket=self.bucket, Key=key)

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except NotFound:
            return False
        return True

    # presigned URLs -----------------------------------------------------------------------------
    def presign_put(self, key: str, *, expires_s: int, content_type: str = "application/pdf",
                    content_length: int | None = None, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        """A presigned PUT: returns ``{"url", "headers"}``; the client must send exactly these
        headers. With ``content_length`` the length is signed too, so a bigger body is refused;
        ``metadata`` (printable ASCII) is signed as ``x-amz-meta-*`` headers, so it is required."""
        validate_key(key)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ContentType": content_type} | self._sse()
        headers = {"Content-Type": content_type, "x-amz-server-side-encryption": params["ServerSideEncryption"]}
        if meta := _ascii_metadata(metadata):
            params["Metadata"] = meta
            headers |= {f"x-amz-meta-{k}": v for k, v in meta.items()}
        if "SSEKMSKeyId" in params:
            headers["x-amz-server-side-encryption-aws-kms-key-id"] = params["SSEKMSKeyId"]
        if content_length is not None:
            params["ContentLength"] = content_length
            headers["Content-Length"] = str(content_length)
        url = self._call("s3 presign put", self._client().generate_presigned_url, ClientMethod="put_object",
                         Params=params, ExpiresIn=expires_s, HttpMethod="PUT")
        return {"url": url, "headers": headers}

    def presign_get(self, key: str, *, expires_s: int, filename: str | None = None) -> str:
        validate_key(key)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ResponseContentType": "application/pdf"}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        url: str = self._call("s3 presign get", self._client().generate_presigned_url, ClientMethod="get_object",
                              Params=params, ExpiresIn=expires_s)
        return url

    # archive ------------------------------------------------------------------------------------
    def storage_class(self, key: str) -> str:
        return str(self._head(key).get("StorageClass") or "STANDARD")

    def restore_status(self, key: str) -> str | None:
        """``None`` (no restore requested), ``"ongoing"`` or ``"available"`` (readable copy)."""
        restore = self._head(key).get("Restore")
        if not restore:
            return None
        return "ongoing" if 'ongoing-request="true"' in restore else "available"

    def archive(self, key: str, storage_class: str = ARCHIVE_STORAGE_CLASS, *, sha256: str | None = None) -> str:
        """Move the object to ``storage_class`` by an in-place copy that keeps content type,
        user metadata and encryption, adding ``sha256`` to the metadata when given (the copy
        emits ``ObjectCreated:Copy``; the ingest recognises the bytes by it with a HEAD).
        Idempotent: an object already there is left alone."""
        head = self._head(key)
        if (head.get("StorageClass") or "STANDARD") == storage_class:
            return storage_class
        metadata = dict(head.get("Metadata") or {})
        directive: dict[str, Any] = {"MetadataDirective": "COPY"}
        if sha256 and metadata.get("sha256") != sha256:
            directive = {"MetadataDirective": "REPLACE", "Metadata": metadata | {"sha256": sha256},
                         "ContentType": head.get("ContentType") or "application/pdf"}
        self._call(f"s3 archive {key}", self._client().copy_object, Bucket=self.bucket, Key=key,
                   CopySource={"Bucket": self.bucket, "Key": key}, StorageClass=storage_class,
                   ChecksumAlgorithm="SHA256", **directive, **self._sse())
        return storage_class

    def restore(self, key: str, days: int = 7, tier: str = "Standard") -> str:
        """Request a temporary readable copy of an archived object for ``days``.

        Idempotent: returns ``"ongoing"`` while a restore runs (``RestoreAlreadyInProgress``
        is not an error), ``"available"`` once restored and ``"not_archived"`` for an object
        in a readable class."""
        from botocore.exceptions import ClientError

        validate_key(key)
        if self.storage_class(key) not in (ARCHIVE_STORAGE_CLASS, "DEEP_ARCHIVE"):
            return "not_archived"
        try:
            self._client().restore_object(Bucket=self.bucket, Key=key, RestoreRequest={
                "Days": days, "GlacierJobParameters": {"Tier": tier}})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "RestoreAlreadyInProgress":
                mapped = classify_error(exc, f"s3 restore {key}")
                raise (mapped or exc) from exc
        except Exception as exc:
            mapped = classify_error(exc, f"s3 restore {key}")
            if mapped is None:
                raise
            raise mapped from exc
        return self.restore_status(key) or "ongoing"
