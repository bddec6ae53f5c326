"""Filesystem blob store: the seed's Option C (hash-partitioned paths) made safe.

- Keys are built by the domain (``tenants/{tenant}/documents/{aa}/{bb}/{uuid}.pdf``);
  this adapter still refuses absolute keys and ``..`` so a key can never escape the root.
- Writes are atomic: a temporary file in the target directory, fsync, then ``os.replace``.
- A ``.sha256`` side-car records the digest; ``get`` verifies it (bit rot, partial copies).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path, PurePosixPath

from querio.errors import NotFound, TransientError, ValidationFailed
from querio.ports import StoredBlob


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

    def delete(self, key: str) -> None:
        path = self._path(key)
        for p in (path, path.with_name(path.name + ".sha256")):
            p.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()
