"""S3BlobStore against moto S3: integrity, encryption, metadata, errors, presigning, archive."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from querio.adapters import aws_clients
from querio.adapters.fs_blobs import FilesystemBlobStore
from querio.adapters.s3_blobs import S3BlobStore, classify_error, validate_key
from querio.config import load_settings
from querio.errors import ConfigurationError, Conflict, NotFound, TransientError, ValidationFailed
from querio.ports import BlobStore
from querio.wiring import build_blob_store
from tests.fixtures.aws_events import TEST_BUCKET, aws  # noqa: F401  (fixture)

KEY = "tenants/t1/documents/ab/cd/abcd.pdf"


@pytest.fixture
def store(aws: Any) -> S3BlobStore:  # noqa: F811
    return S3BlobStore(TEST_BUCKET, aws_clients.s3)


def test_put_get_roundtrip_with_sse_checksum_and_metadata(store: S3BlobStore, aws: Any) -> None:  # noqa: F811
    data = b"%PDF-1.4 hello"
    blob = store.put(KEY, data, metadata={"tenant": "t1", "document-id": "x\u00e9\n"})
    assert blob.sha256 == hashlib.sha256(data).hexdigest() and blob.size == len(data)
    head = aws.head_object(Bucket=TEST_BUCKET, Key=KEY, ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentType"] == "application/pdf"
    assert head["Metadata"]["sha256"] == blob.sha256
    assert head["Metadata"]["tenant"] == "t1"
    assert head["Metadata"]["document-id"] == "x"  # non-ASCII and controls dropped from headers
    assert head.get("ChecksumSHA256")
    assert store.get(KEY) == data
    assert store.exists(KEY)
    assert isinstance(store, BlobStore)


def test_get_detects_tampering(store: S3BlobStore, aws: Any) -> None:  # noqa: F811
    store.put(KEY, b"%PDF-1.4 original")
    # overwrite the bytes but keep the old sha256 metadata (bit rot / a rogue writer)
    aws.put_object(Bucket=TEST_BUCKET, Key=KEY, Body=b"%PDF-1.4 tampered!",
                   Metadata={"sha256": hashlib.sha256(b"%PDF-1.4 original").hexdigest()})
    with pytest.raises(TransientError, match="integrity"):
        store.get(KEY)


def test_missing_and_delete_idempotent(store: S3BlobStore) -> None:
    with pytest.raises(NotFound):
        store.get("tenants/t1/nope.pdf")
    assert not store.exists("tenants/t1/nope.pdf")
    store.delete("tenants/t1/nope.pdf")  # no error
    store.put(KEY, b"x")
    store.delete(KEY)
    assert not store.exists(KEY)


@pytest.mark.parametrize("key", ["", "/abs/key.pdf", "a/../b.pdf", "a/./b.pdf", "a//b.pdf", "..", "a/b\x00.pdf",
                                 "a/b\n.pdf", "a\\..\\b.pdf", "x" * 1025])
def test_bad_keys_rejected(store: S3BlobStore, key: str) -> None:
    with pytest.raises(ValidationFailed):
        store.put(key, b"x")
    with pytest.raises(ValidationFailed):
        validate_key(key)


def test_error_classification() -> None:
    def client_error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": code},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")

    assert isinstance(classify_error(client_error("NoSuchKey", 404), "k"), NotFound)
    assert isinstance(classify_error(client_error("SlowDown", 503), "k"), TransientError)
    assert isinstance(classify_error(client_error("InternalError", 500), "k"), TransientError)
    assert isinstance(classify_error(client_error("Whatever", 502), "k"), TransientError)
    assert isinstance(classify_error(client_error("InvalidObjectState", 403), "k"), Conflict)
    assert isinstance(classify_error(client_error("AccessDenied", 403), "k"), ConfigurationError)
    assert classify_error(client_error("InvalidArgument", 400), "k") is None
    assert isinstance(classify_error(EndpointConnectionError(endpoint_url="http://x"), "k"), TransientError)
    assert classify_error(ValueError("x"), "k") is None


def test_unreachable_endpoint_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from botocore.config import Config

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                          config=Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1}))
    store = S3BlobStore(TEST_BUCKET, lambda: client)
    with pytest.raises(TransientError):
        store.get(KEY)


def test_presigned_urls(store: S3BlobStore) -> None:
    signed = store.presign_put("tenants/t1/uploads/u.pdf", expires_s=900, content_length=1234)
    url = urlparse(signed["url"])
    assert url.path.endswith("/tenants/t1/uploads/u.pdf") or "tenants/t1/uploads/u.pdf" in url.path
    qs = parse_qs(url.query)
    assert qs["X-Amz-Expires"] == ["900"]
    signed_headers = qs["X-Amz-SignedHeaders"][0]
    assert "content-type" in signed_headers and "content-length" in signed_headers
    assert signed["headers"]["x-amz-server-side-encryption"] == "AES256"
    get_url = store.presign_get(KEY, expires_s=300, filename='../evil "name".pdf')
    q = parse_qs(urlparse(get_url).query)
    disposition = q["response-content-disposition"][0]
    assert disposition.startswith("attachment;") and "/" not in disposition.split("filename*=")[0]


def test_archive_restore_and_metadata_kept(store: S3BlobStore, aws: Any) -> None:  # noqa: F811
    store.put(KEY, b"%PDF-1.4 archive me", metadata={"tenant": "t1"})
    assert store.storage_class(KEY) == "STANDARD"
    assert store.restore(KEY) == "not_archived"
    assert store.archive(KEY) == "GLACIER"
    assert store.archive(KEY) == "GLACIER"  # idempotent
    head = aws.head_object(Bucket=TEST_BUCKET, Key=KEY)
    assert head["StorageClass"] == "GLACIER"
    assert head["Metadata"]["tenant"] == "t1" and head["ContentType"] == "application/pdf"
    assert head["ServerSideEncryption"] == "AES256"
    assert store.restore_status(KEY) is None
    with pytest.raises(Conflict):
        store.get(KEY)
    assert store.restore(KEY, days=1) in ("ongoing", "available")
    assert store.restore(KEY, days=1) in ("ongoing", "available")  # idempotent
    assert store.restore_status(KEY) in ("ongoing", "available")


def test_wiring_requires_bucket(tmp_path: Any, aws: Any) -> None:  # noqa: F811
    with pytest.raises(ConfigurationError, match="QUERIO_S3_BUCKET"):
        build_blob_store(load_settings(data_dir=tmp_path, blob_backend="s3"))
    blobs = build_blob_store(load_settings(data_dir=tmp_path, blob_backend="s3", s3_bucket=TEST_BUCKET))
    assert isinstance(blobs, S3BlobStore) and blobs.storage_type == "s3"


def test_filesystem_store_local_archive(tmp_path: Any) -> None:
    fs = FilesystemBlobStore(tmp_path)
    fs.put(KEY, b"data")
    assert fs.storage_class(KEY) == "STANDARD" and fs.restore_status(KEY) is None
    assert fs.archive(KEY) == "GLACIER"
    assert fs.storage_class(KEY) == "GLACIER" and fs.restore_status(KEY) == "available"
    assert fs.get(KEY) == b"data"
    assert fs.restore(KEY) == "available"
    with pytest.raises(Conflict):
        fs.presign_put(KEY, expires_s=10)
    fs.delete(KEY)
    with pytest.raises(NotFound):
        fs.storage_class(KEY)


def test_database_url_from_secret(aws: Any, tmp_path: Any) -> None:  # noqa: F811
    import json

    from querio import wiring

    sm = aws_clients.secretsmanager()
    arn = sm.create_secret(Name="querio/db", SecretString=json.dumps({
        "host": "db.example.internal", "port": 5432, "username": "querio", "password": "p@ss w'rd",
        "dbname": "querio", "engine": "postgres"}))["ARN"]
    wiring.dsn_from_secret.cache_clear()
    dsn = wiring.database_url(load_settings(data_dir=tmp_path, database_secret_arn=arn))
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(dsn)
    assert parts["host"] == "db.example.internal" and parts["user"] == "querio"
    assert parts["password"] == "p@ss w'rd" and parts["sslmode"] == "require" and parts["dbname"] == "querio"
    sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    assert wiring.database_url(load_settings(data_dir=tmp_path, database_secret_arn=arn)) == dsn  # cached
    wiring.dsn_from_secret.cache_clear()
    with pytest.raises(ConfigurationError, match="QUERIO_DATABASE_SECRET_ARN"):
        wiring.database_url(load_settings(data_dir=tmp_path, database_secret_arn=arn))
    wiring.dsn_from_secret.cache_clear()
