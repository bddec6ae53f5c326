"""SQS message bodies of the ingest queue → typed work items.

The ingest queue receives S3 event notifications (S3 → SQS, one JSON body per message,
possibly several ``Records``). Each record becomes one work item:

* :class:`IngestObject` for ``s3:ObjectCreated:*`` on ``tenants/{tenant}/uploads/{name}.pdf``;
* :class:`RemoveObject` for ``s3:ObjectRemoved:*`` on the same key scheme (both carry the
  record's :class:`S3Version`: ``sequencer``, ``eTag``, ``versionId``, used to drop stale events);
* :class:`IngestPart`: a page range of a large PDF that Querio itself re-enqueued;
* :class:`IgnoreRecord` (acknowledged, logged with its ``reason``) for the ``s3:TestEvent``
  S3 sends when a notification is configured, for keys that are not PDFs, and for keys
  outside the scheme, including traversal and injection attempts (``..``, ``%2e%2e``,
  control characters, a namespace that fails ``models.NAMESPACE_PATTERN``).

The ``{tenant}`` segment is a namespace: a tenant id or a personal workspace (``u~`` + 32 hex
digits, see :func:`querio.models.personal_namespace`), exactly the values a
:class:`~querio.models.Principal` can hold, so an upload URL of any caller ingests into that
caller's namespace and no key can parse into another (``u~`` is never a tenant id).

The owner comes from the key only: S3 URL-encodes keys in notifications (``+`` for a space,
``%XX`` otherwise), so the key is decoded first, then parsed; the file's content never
names a tenant. A body that is not JSON, or JSON of no known shape, raises
:class:`MalformedMessage`: retrying will not help, so after ``maxReceiveCount`` it lands in
the dead-letter queue where a person can look at it.
"""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, unquote_plus

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from querio.models import NAMESPACE_PATTERN

UPLOAD_PREFIX = "tenants/{tenant}/uploads/"
_KEY = re.compile(r"^tenants/(?P<tenant>[^/]+)/uploads/(?P<name>[^/]+)$")
_NAMESPACE = re.compile(NAMESPACE_PATTERN)
MAX_NAME_CHARS = 255
#: S3 user metadata (``x-amz-meta-filename``) carrying the user's filename through a presigned
#: upload: percent-encoded UTF-8, because metadata travels in HTTP headers (ASCII only).
FILENAME_METADATA = "filename"
MAX_METADATA_CHARS = 1024


class MalformedMessage(ValueError):
    """The body is not an S3 notification (nor an ingest work item): a poison message."""


class _Item(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class S3Version(_Item):
    """Which version of a key an event is about: S3 orders the events of one key by
    ``sequencer`` (see :func:`sequencer_key`); ``etag``/``version_id`` name the bytes."""

    event_name: str = ""
    sequencer: str | None = None
    etag: str | None = None
    version_id: str | None = None


class IngestObject(_Item):
    kind: Literal["ingest"] = "ingest"
    tenant_id: str
    bucket: str
    key: str
    size: int | None = None
    event_time: str | None = None
    version: S3Version = S3Version()


class RemoveObject(_Item):
    kind: Literal["remove"] = "remove"
    tenant_id: str
    bucket: str
    key: str
    version: S3Version = S3Version()


class IgnoreRecord(_Item):
    kind: Literal["ignore"] = "ignore"
    reason: str
    key: str | None = None


class IngestPart(_Item):
    """One page range of a large PDF, re-enqueued by the invocation that split it (see
    :mod:`querio.ingest.parts`). It names the document; the tenant is the one the upload
    key gave when the document was claimed."""

    kind: Literal["part"] = "part"
    tenant_id: str = Field(pattern=NAMESPACE_PATTERN)
    document_id: uuid.UUID
    bucket: str
    key: str
    part_no: int = Field(ge=0)
    parts_total: int = Field(ge=1)
    page_from: int = Field(ge=1)
    page_to: int = Field(ge=1)


Item = IngestObject | RemoveObject | IgnoreRecord | IngestPart
WorkItem = Annotated[Item, Field(discriminator="kind")]
_WORK_ITEM: TypeAdapter[Any] = TypeAdapter(WorkItem)


_HEX = re.compile(r"^[0-9A-Fa-f]{1,64}$")


def sequencer_key(sequencer: str | None) -> str:
    """A sequencer as a sortable string: AWS says to compare two sequencers of one key after
    left-padding the shorter with zeros; padding both to 64 digits does that for any pair.
    ``None`` (no sequencer) sorts below every real one."""
    return (sequencer or "").upper().rjust(64, "0")


def _version(event: str, obj: dict[str, Any]) -> S3Version:
    seq = obj.get("sequencer")
    etag = obj.get("eTag")
    version_id = obj.get("versionId")
    return S3Version(event_name=event,
                     sequencer=seq.upper() if isinstance(seq, str) and _HEX.match(seq) else None,
                     etag=etag.strip('"') if isinstance(etag, str) and etag else None,
                     version_id=version_id if isinstance(version_id, str) and version_id else None)


def upload_key(tenant_id: str, name: str) -> str:
    """The upload key for ``name`` (a domain-chosen name such as a uuid, never a user's)."""
    return UPLOAD_PREFIX.format(tenant=tenant_id) + name


def encode_filename(name: str) -> str:
    """``name`` (already sanitised) as a metadata value: percent-encoded, cut on a character
    boundary so the encoded form fits ``MAX_METADATA_CHARS``."""
    encoded = quote(name, safe="")
    while len(encoded) > MAX_METADATA_CHARS:
        name = name[:-1]
        encoded = quote(name, safe="")
    return encoded


def decode_filename(metadata: dict[str, str]) -> str | None:
    """The filename a presigned upload carried, or ``None``; the caller sanitises it again
    (the metadata is whatever the client sent)."""
    raw = metadata.get(FILENAME_METADATA)
    return unquote(raw, errors="replace") if raw else None


def parse_upload_key(key: str) -> tuple[str, str] | str:
    """``(tenant, name)`` for a valid decoded upload key, else the reason it is refused."""
    if any(unicodedata.category(ch)[0] == "C" for ch in key) or "\\" in key:
        return "key contains control characters or backslashes"
    m = _KEY.match(key)
    if m is None:
        return "key outside the tenants/{tenant}/uploads/{name}.pdf scheme"
    tenant, name = m.group("tenant"), m.group("name")
    if not _NAMESPACE.fullmatch(tenant):
        return "invalid tenant in key"
    if name in (".", "..") or name.startswith(".") or len(name) > MAX_NAME_CHARS:
        return "invalid object name"
    if not name.lower().endswith(".pdf"):
        return "not a PDF key"
    return tenant, name


def _record_item(record: dict[str, Any]) -> Item:
    event = str(record.get("eventName") or "")
    s3 = record.get("s3")
    if not isinstance(s3, dict):
        raise MalformedMessage("S3 record without an 's3' object")
    try:
        bucket = str(s3["bucket"]["name"])
        raw_key = str(s3["object"]["key"])
    except (KeyError, TypeError) as exc:
        raise MalformedMessage(f"S3 record without bucket or key ({exc})") from exc
    key = unquote_plus(raw_key)
    if event.startswith("ObjectCreated:"):
        kind = "ingest"
    elif event.startswith("ObjectRemoved:"):
        kind = "remove"
    else:
        return IgnoreRecord(reason=f"event {event or '?'} is not handled", key=key)
    parsed = parse_upload_key(key)
    if isinstance(parsed, str):
        return IgnoreRecord(reason=parsed, key=key)
    tenant, _name = parsed
    obj = s3["object"] if isinstance(s3["object"], dict) else {}
    version = _version(event, obj)
    if kind == "ingest":
        size = obj.get("size")
        return IngestObject(tenant_id=tenant, bucket=bucket, key=key,
                            size=int(size) if isinstance(size, int | float) else None,
                            event_time=record.get("eventTime"), version=version)
    return RemoveObject(tenant_id=tenant, bucket=bucket, key=key, version=version)


def parse_body(body: str) -> list[Item]:
    """The work items of one SQS message body (see the module docstring)."""
    try:
        doc = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise MalformedMessage(f"message body is not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise MalformedMessage("message body is not a JSON object")
    if doc.get("Event") == "s3:TestEvent":
        return [IgnoreRecord(reason="s3:TestEvent")]
    if "kind" in doc:  # a work item re-enqueued by Querio itself
        try:
            return [_WORK_ITEM.validate_python(doc)]
        except ValueError as exc:
            raise MalformedMessage(f"invalid work item ({exc})") from exc
    records = doc.get("Records")
    if not isinstance(records, list) or not records:
        raise MalformedMessage("message body has no S3 'Records'")
    out: list[Item] = []
    for record in records:
        if not isinstance(record, dict) or record.get("eventSource") not in ("aws:s3", None):
            out.append(IgnoreRecord(reason="record is not from S3"))
            continue
        out.append(_record_item(record))
    return out
