"""Filesystem blob store: the seed's Option C (hash-partitioned paths) made safe.

- Keys are built by the domain (``tenants/{tenant}/documents/{aa}/{bb}/{uuid}.pdf``);
  this adapter still refuses absolute keys and ``..`` so a key can never escape the root.
- Writes are atomic: a temporary file in the target directory, fsync, then ``os.replace``.
- A ``.sha256`` side-car records the digest; ``get`` verifies it (bit rot, partial copies).
- "Archiving" only records the storage class in a ``.class`` side-car (the bytes stay
  readable, so a local restore is immediate); presigned URLs need S3 and raise ``Conflict``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from querio.errors import Conflict, NotFound, TransientError, ValidationFailed
from querio.ports import BlobInfo, StoredBlob


class FilesystemBlobStore:
    storage_type = "filesystem"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        pure = PurePosixPath(key)
        if not key or pure.is_absolute() or any(p in ("..", ".", "") for p in key.split("/")) or "\x00" in key:
            raise ValidationFailed(f"invalid blob key: {key!r}")
        path = (self.root / pure).resolve()
        if not path.is_relative_to(self.root):  # symlinks included
            raise ValidationFailed(f"invalid blob key: {key!r}")
        return path

    def put(self, key: str, data: bytes, *, content_type: str = "application/pdf",
            metadata: dict[str, str] | None = None) -> StoredBlob:
        path = self._path(key)
        digest = hashlib.sha256(data).hexdigest()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            for target, payload in ((path, data), (path.with_name(path.name + ".sha256"), digest.encode())):
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
                try:
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(payload)
                        fh.flush()
                        os.fsync(fh.fileno())
                    os.replace(tmp, target)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
        except OSError as exc:
            raise TransientError(f"could not write blob {key}: {exc.strerror}") from exc
        return StoredBlob(key=key, size=len(data), sha256=digest)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"blob {key} does not exist") from exc
        except OSError as exc:
            raise TransientError(f"could not read blob {key}: {exc.strerror}") from exc
        sidecar = path.with_name(path.name + ".sha256")
        if sidecar.exists() and sidecar.read_text().strip() != hashlib.sha256(data).hexdigest():
            raise TransientError(f"blob {key} failed its sha256 integrity check")
        return data

    def read(self, key: str, *, if_match: str | None = None) -> tuple[bytes, BlobInfo]:
        """``get`` and ``head``; a filesystem has no ETags, so ``if_match`` is not checked."""
        return self.get(key), self.head(key)

    def head(self, key: str) -> BlobInfo:
        path = self._path(key)
        sidecar = path.with_name(path.name + ".sha256")
        meta = {"sha256": sidecar.read_text().strip()} if sidecar.is_file() else {}
        return BlobInfo(etag=None, metadata=meta, storage_class=self.storage_class(key))

    def delete(self, key: str) -> None:
        path = self._path(key)
        for p in (path, path.with_name(path.name + ".sha256"), path.with_name(path.name + ".class")):
            p.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    # archive and presigned access ------------------------------------------------------------
    def storage_class(self, key: str) -> str:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"blob {key} does not exist")
        marker = path.with_name(path.name + ".class")
        return marker.read_text().strip() if marker.is_file() else "STANDARD"

    def restore_status(self, key: str) -> str | None:
        # local bytes are never really offline: an archived blob reads as restored
        return None if self.storage_class(key) == "STANDARD" else "available"

    def archive(self, key: str, storage_class: str = "GLACIER", *, sha256: str | None = None) -> str:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"blob {key} does not exist")
        path.with_name(path.name + ".class").write_text(storage_class)
        return storage_class

    def restore(self, key: str, days: int = 7) -> str:
        return "not_archived" if self.storage_class(key) == "STANDARD" else "available"

    def presign_put(self, key: str, *, expires_s: int, content_type: str = "application/pdf",
                    content_length: int | None = None, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        raise Conflict("presigned upload URLs need the S3 blob store (QUERIO_BLOB_BACKEND=s3)")

    def presign_get(self, key: str, *, expires_s: int, filename: str | None = None) -> str:
        raise Conflict("presigned download URLs need the S3 blob store (QUERIO_BLOB_BACKEND=s3)")
