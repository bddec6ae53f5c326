"""``DownloadUrls``: S3 presigned GETs (small tier, local) or CloudFront signed URLs (mid, enterprise).

CloudFront (issue 14): the PDF bucket is private and reachable only through its distribution
(origin access control); the distribution trusts one key group, so it serves only URLs signed
with that key group's private key. The URL carries a *canned policy* (one resource, one expiry):
botocore's :class:`~botocore.signers.CloudFrontSigner` builds the policy and the URL, and
``cryptography`` makes the RSA signature. CloudFront canned policies are signed with RSA-SHA1
(PKCS#1 v1.5): that is CloudFront's format, not a choice made here.

The private key (PEM) is read on the first link, through ``private_key_pem`` (wiring passes the
cached Secrets Manager read), and parsed once per process; it never sits in an environment variable.
The response headers S3 should send (``application/pdf`` and the attachment filename) travel as
``response-content-*`` query parameters inside the signed URL, so they cannot be altered; the
distribution forwards exactly those two to S3, which honours them on OAC-signed requests.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from querio.adapters.s3_blobs import content_disposition, validate_key
from querio.errors import ConfigurationError
from querio.ports import BlobStore

#: The query parameters CloudFront forwards to S3 (the stacks' cache policy names the same ones).
FORWARDED_QUERY = ("response-content-type", "response-content-disposition")


class PresignedS3Urls:
    """The blob store's own presigned GETs (the small tier; ``Conflict`` on the filesystem store)."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def signed_get(self, key: str, *, expires_s: int, filename: str | None = None) -> str:
        return self.blobs.presign_get(key, expires_s=expires_s, filename=filename)


def rsa_sha1_signer(private_key_pem: str, setting: str) -> Callable[[bytes], bytes]:
    """CloudFront's signature over ``message``; a key that does not parse is a ``ConfigurationError``."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        key = serialization.load_pem_private_key(private_key_pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise ConfigurationError(f"{setting}: the secret is not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError(f"{setting}: CloudFront signs with RSA keys, got {type(key).__name__}")

    def sign(message: bytes) -> bytes:
        # CloudFront canned policies are RSA-SHA1 by definition (botocore documents the same signer)
        return key.sign(message, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303

    return sign


class CloudFrontSignedUrls:
    """Signed URLs ``https://{domain}/{key}?response-content-*=...&Expires=&Signature=&Key-Pair-Id=``."""

    SETTING = "QUERIO_CLOUDFRONT_PRIVATE_KEY_SECRET_ARN"

    def __init__(self, domain: str, key_pair_id: str, private_key_pem: Callable[[], str], *,
                 clock: Callable[[], float] = time.time) -> None:
        if not domain or not key_pair_id:
            raise ConfigurationError("QUERIO_CLOUDFRONT_DOMAIN and QUERIO_CLOUDFRONT_KEY_PAIR_ID are required for "
                                     "CloudFront download URLs")
        self.domain = domain.removeprefix("https://").rstrip("/")
        self.key_pair_id = key_pair_id
        self._private_key_pem = private_key_pem
        self._clock = clock
        self._signer: Any = None
        self._lock = threading.Lock()

    def _cloudfront_signer(self) -> Any:
        with self._lock:
            if self._signer is None:
                from botocore.signers import CloudFrontSigner

                self._signer = CloudFrontSigner(self.key_pair_id,
                                                rsa_sha1_signer(self._private_key_pem(), self.SETTING))
            return self._signer

    def signed_get(self, key: str, *, expires_s: int, filename: str | None = None) -> str:
        validate_key(key)
        query = {"response-content-type": "application/pdf"}
        if filename:
            query["response-content-disposition"] = content_disposition(filename)
        url = f"https://{self.domain}/{quote(key, safe='/')}?{urlencode(query, quote_via=quote)}"
        expires = dt.datetime.fromtimestamp(int(self._clock()) + expires_s, dt.UTC)
        signed: str = self._cloudfront_signer().generate_presigned_url(url, date_less_than=expires)
        return signed
