"""Download links (issue 14): CloudFront signed URLs at mid/enterprise, S3 presigned at small.

moto stands in for S3 and Secrets Manager (the signing key is read from a secret, as the query
function does); documents live in the real embedded PostgreSQL. Each CloudFront URL's signature
is verified with the public key, the way CloudFront checks it: RSA-SHA1 over the canned policy.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from querio import wiring
from querio.adapters.download_urls import CloudFrontSignedUrls, PresignedS3Urls
from querio.errors import ConfigurationError, Conflict
from querio.models import Principal
from querio.service import QuerioService
from querio.wiring import build_download_urls, build_service
from tests.fixtures.aws_events import TEST_BUCKET, aws  # noqa: F401  (fixture)
from tests.fixtures.pdfs import SAMPLE_PAGES, make_text_pdf
from tests.fixtures.service import make_settings

pytestmark = pytest.mark.integration

DOMAIN = "d111111abcdef8.cloudfront.net"
KEY_PAIR_ID = "K2JCJMDEHXQW5F"
ALICE = Principal(tenant_id="tenant-a", user_id="alice")


@pytest.fixture(scope="module")
def key_pair() -> tuple[str, rsa.RSAPublicKey]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return pem, private.public_key()


@pytest.fixture
def signing_secret(aws: Any, key_pair: tuple[str, rsa.RSAPublicKey]) -> str:  # noqa: F811
    from querio.adapters import aws_clients

    wiring.cloudfront_private_key.cache_clear()
    arn: str = aws_clients.secretsmanager().create_secret(Name="querio-url-signing", SecretString=key_pair[0])["ARN"]
    return arn


def cloudfront_settings(tmp_path: Path, dsn: str, secret_arn: str) -> Any:
    return make_settings(tmp_path / "data", dsn, blob_backend="s3", s3_bucket=TEST_BUCKET, download_urls="cloudfront",
                         cloudfront_domain=DOMAIN, cloudfront_key_pair_id=KEY_PAIR_ID,
                         cloudfront_private_key_secret_arn=secret_arn)


def verify_cloudfront_url(url: str, public_key: rsa.RSAPublicKey) -> dict[str, list[str]]:
    """Check ``url`` as CloudFront does for a canned policy; return its query parameters."""
    resource, _, signed = url.partition("&Expires=")
    query = parse_qs(urlsplit(url).query)
    expires = int(query["Expires"][0])
    assert signed.startswith(f"{expires}&Signature=")
    policy = json.dumps({"Statement": [{"Resource": resource, "Condition": {"DateLessThan": {
        "AWS:EpochTime": expires}}}]}, separators=(",", ":"))
    raw = query["Signature"][0].replace("-", "+").replace("_", "=").replace("~", "/")
    public_key.verify(base64.b64decode(raw), policy.encode(), padding.PKCS1v15(), hashes.SHA1())
    return query


def test_cloudfront_url_is_signed_by_the_key_in_secrets_manager(tmp_path: Path, pg_dsn: str, signing_secret: str,
                                                                key_pair: tuple[str, rsa.RSAPublicKey]) -> None:
    urls = build_download_urls(cloudfront_settings(tmp_path, pg_dsn, signing_secret), blobs=None)  # type: ignore[arg-type]
    assert isinstance(urls, CloudFrontSignedUrls)
    before = int(time.time())
    url = urls.signed_get("tenants/t1/documents/ab/cd/abcd.pdf", expires_s=300, filename="Résumé 2024.pdf")
    assert url.startswith(f"https://{DOMAIN}/tenants/t1/documents/ab/cd/abcd.pdf?")
    query = verify_cloudfront_url(url, key_pair[1])
    assert query["Key-Pair-Id"] == [KEY_PAIR_ID]
    assert before + 300 <= int(query["Expires"][0]) <= int(time.time()) + 300
    assert query["response-content-type"] == ["application/pdf"]
    assert "filename*=UTF-8''R%C3%A9sum%C3%A9%202024.pdf" in query["response-content-disposition"][0]
    # the headers S3 will send are inside the signature: changing the filename breaks it
    with pytest.raises(InvalidSignature):
        verify_cloudfront_url(url.replace("R%25C3%25A9sum", "Evil"), key_pair[1])


def test_the_private_key_is_read_once_per_process(tmp_path: Path, pg_dsn: str, signing_secret: str,
                                                  key_pair: tuple[str, rsa.RSAPublicKey]) -> None:
    from querio.adapters import aws_clients

    urls = build_download_urls(cloudfront_settings(tmp_path, pg_dsn, signing_secret), blobs=None)  # type: ignore[arg-type]
    urls.signed_get("tenants/t1/a.pdf", expires_s=60)
    aws_clients.secretsmanager().delete_secret(SecretId=signing_secret, ForceDeleteWithoutRecovery=True)
    verify_cloudfront_url(urls.signed_get("tenants/t1/b.pdf", expires_s=60), key_pair[1])


def test_a_secret_without_a_private_key_names_the_setting(tmp_path: Path, pg_dsn: str, aws: Any) -> None:  # noqa: F811
    from querio.adapters import aws_clients

    wiring.cloudfront_private_key.cache_clear()
    arn = aws_clients.secretsmanager().create_secret(Name="placeholder", SecretString="random-initial-value")["ARN"]
    urls = build_download_urls(cloudfront_settings(tmp_path, pg_dsn, arn), blobs=None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="QUERIO_CLOUDFRONT_PRIVATE_KEY_SECRET_ARN"):
        urls.signed_get("tenants/t1/a.pdf", expires_s=60)


def test_cloudfront_settings_are_all_required(tmp_path: Path) -> None:
    from querio.config import load_settings

    with pytest.raises(ConfigurationError, match="QUERIO_CLOUDFRONT_KEY_PAIR_ID, "
                                                 "QUERIO_CLOUDFRONT_PRIVATE_KEY_SECRET_ARN required"):
        load_settings(data_dir=tmp_path, blob_backend="s3", s3_bucket="b", download_urls="cloudfront",
                      cloudfront_domain=DOMAIN)
    with pytest.raises(ConfigurationError, match="QUERIO_BLOB_BACKEND=s3"):
        load_settings(data_dir=tmp_path, download_urls="cloudfront", cloudfront_domain=DOMAIN,
                      cloudfront_key_pair_id=KEY_PAIR_ID, cloudfront_private_key_secret_arn="arn:x")


@pytest.fixture
def cf_service(tmp_path: Path, pg_dsn: str, signing_secret: str) -> Iterator[QuerioService]:
    svc = build_service(cloudfront_settings(tmp_path, pg_dsn, signing_secret))
    try:
        yield svc
    finally:
        svc.documents.close()


def test_download_url_route_signs_for_cloudfront_and_archived_documents_answer_as_before(
        cf_service: QuerioService, aws: Any, key_pair: tuple[str, rsa.RSAPublicKey]) -> None:  # noqa: F811
    marker = uuid.uuid4().hex[:8]
    outcome = cf_service.ingest(ALICE, make_text_pdf([f"{marker} {SAMPLE_PAGES[0]}"]), f"{marker}.pdf")
    doc = outcome.document
    assert doc is not None and doc.storage_path
    link = cf_service.create_download_url(ALICE, doc.id)
    assert link["expires_in"] == QuerioService.DOWNLOAD_URL_EXPIRES_S
    url = str(link["url"])
    assert url.startswith(f"https://{DOMAIN}/{doc.storage_path}?")
    verify_cloudfront_url(url, key_pair[1])
    # archived and not restored: the same 409 as with S3 presigned URLs, before anything is signed
    cf_service.blobs.archive(doc.storage_path)
    cf_service.documents.mark_archived(ALICE.tenant_id, doc.id, "GLACIER")
    with pytest.raises(Conflict, match="archived"):
        cf_service.create_download_url(ALICE, doc.id)


def test_small_tier_keeps_s3_presigned_urls(tmp_path: Path, pg_dsn: str, aws: Any) -> None:  # noqa: F811
    svc = build_service(make_settings(tmp_path / "data", pg_dsn, blob_backend="s3", s3_bucket=TEST_BUCKET))
    try:
        assert isinstance(svc.urls, PresignedS3Urls)
        doc = svc.ingest(ALICE, make_text_pdf([SAMPLE_PAGES[1]]), "small.pdf").document
        assert doc is not None
        url = str(svc.create_download_url(ALICE, doc.id)["url"])
        parts = urlsplit(url)
        assert parts.netloc.startswith(f"{TEST_BUCKET}.s3") and "X-Amz-Signature" in parse_qs(parts.query)
    finally:
        svc.documents.close()
