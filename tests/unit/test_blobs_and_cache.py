import hashlib
import time
from pathlib import Path

import pytest

from querio.adapters.fs_blobs import FilesystemBlobStore
from querio.adapters.memory_cache import MemoryCache
from querio.errors import NotFound, TransientError, ValidationFailed


def test_blob_round_trip_records_sha256(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    stored = store.put("tenants/t/documents/ab/cd/x.pdf", b"%PDF-1.7 data")
    assert stored.sha256 == hashlib.sha256(b"%PDF-1.7 data").hexdigest() and stored.size == 13
    assert store.get("tenants/t/documents/ab/cd/x.pdf") == b"%PDF-1.7 data"
    assert store.exists("tenants/t/documents/ab/cd/x.pdf")
    assert not list(tmp_path.rglob(".tmp-*"))  # atomic write left no temporary file
    store.delete("tenants/t/documents/ab/cd/x.pdf")
    store.delete("tenants/t/documents/ab/cd/x.pdf")  # idempotent
    with pytest.raises(NotFound):
        store.get("tenants/t/documents/ab/cd/x.pdf")


def test_blob_integrity_check_catches_tampering(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    store.put("k/x.pdf", b"original")
    (tmp_path / "k" / "x.pdf").write_bytes(b"tampered")
    with pytest.raises(TransientError, match="sha256"):
        store.get("k/x.pdf")


@pytest.mark.parametrize("key", ["../escape.pdf", "/etc/passwd", "a/../../b.pdf", "", "a//b.pdf", "a/\x00.pdf"])
def test_blob_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    store = FilesystemBlobStore(tmp_path / "root")
    with pytest.raises(ValidationFailed):
        store.put(key, b"x")
    assert not (tmp_path / "escape.pdf").exists()


def test_memory_cache_ttl_lru_and_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = MemoryCache(max_entries=2)
    cache.set("a", b"1", ttl_s=10)
    cache.set("b", b"2", ttl_s=10)
    assert cache.get("a") == b"1"  # a is now most recent
    cache.set("c", b"3", ttl_s=10)  # evicts b
    assert cache.get("b") is None and cache.get("a") == b"1"
    cache.set("zero", b"x", ttl_s=0)
    assert cache.get("zero") is None
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 11)
    assert cache.get("a") is None  # expired
    assert cache.get_int("gen") == 0 and cache.incr("gen") == 1 and cache.incr("gen") == 2
