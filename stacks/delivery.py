"""Mid and enterprise: PDFs delivered through CloudFront with signed URLs (the seed's "S3 +
CloudFront CDN (PDFs)").

* The bucket stays private: the distribution reads it through origin access control (OAC, SigV4),
  and the bucket policy names this distribution only.
* The distribution trusts one key group; every request needs a URL signed by its key
  (``querio.adapters.download_urls.CloudFrontSignedUrls``, canned policy, 5-minute links).
* The key pair is made at deploy time by a custom resource: a Node.js function generates the RSA
  key with ``node:crypto`` (OpenSSL) and writes the private key straight into a Secrets Manager
  secret, returning only the public key, which becomes the CloudFront public key. The private key
  is never in the template, an output, an environment variable or this repository, and no
  bootstrap step is needed: ``cdk deploy`` alone sets it up. Node.js because the Lambda Python
  runtime ships no RSA library (``cryptography`` would need a bundled layer for one call).
* The cache key holds only the ``response-content-*`` parameters S3 needs for the download
  headers; signature parameters are not in it, so a PDF is cached once at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CustomResource, Duration, RemovalPolicy
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from querio.adapters.download_urls import FORWARDED_QUERY
from querio.config import env_name
from querio.tiers import Tier
from stacks.custom_resources import logging_role, provider
from stacks.nag import acknowledge
from stacks.storage import DocumentBucket

#: Generates the key pair; the private key goes to the secret, the public key back to CloudFormation.
KEY_PAIR_HANDLER = """\
const crypto = require('node:crypto');
exports.generate = () => crypto.generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});
exports.handler = async (event) => {
  if (event.RequestType === 'Delete') return { PhysicalResourceId: event.PhysicalResourceId };
  const { SecretsManagerClient, PutSecretValueCommand } = require('@aws-sdk/client-secrets-manager');
  const { publicKey, privateKey } = exports.generate();
  await new SecretsManagerClient({}).send(new PutSecretValueCommand({
    SecretId: event.ResourceProperties.SecretArn, SecretString: privateKey }));
  const id = crypto.createHash('sha256').update(publicKey).digest('hex').slice(0, 32);
  return { PhysicalResourceId: id, Data: { PublicKey: publicKey } };
};
"""
#: How long the edge keeps a PDF (the signed URL, not the cache, limits who may fetch it).
EDGE_TTL = Duration.days(1)


@dataclass(frozen=True)
class DeliverySettings:
    """What the query function needs to sign URLs (names: ``querio.config.Settings``)."""

    domain: str
    key_pair_id: str
    private_key_secret: secretsmanager.ISecret

    def environment(self) -> dict[str, str]:
        return {env_name("download_urls"): "cloudfront", env_name("cloudfront_domain"): self.domain,
                env_name("cloudfront_key_pair_id"): self.key_pair_id,
                env_name("cloudfront_private_key_secret_arn"): self.private_key_secret.secret_arn}


class SigningKeyPair(Construct):
    """``secret`` (the private key, PEM) and ``public_key_pem`` (a CloudFormation attribute)."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        # created with a random placeholder value, replaced by the key before anything reads it
        self.secret = secretsmanager.Secret(self, "PrivateKey",
                                            description="Querio: RSA private key that signs CloudFront PDF URLs")
        acknowledge(self.secret, "AwsSolutions-SMG4",
                    "A CloudFront signing key is rotated by adding a new public key to the key group before "
                    "retiring the old one; the README gives the steps. A Secrets Manager rotation would break "
                    "every outstanding URL.")
        fn = lambda_.Function(
            self, "Generate", runtime=lambda_.Runtime.NODEJS_24_X, handler="index.handler",
            code=lambda_.Code.from_inline(KEY_PAIR_HANDLER), timeout=Duration.minutes(1),
            description="Deploy time: create the CloudFront URL-signing key pair",
            role=logging_role(self, "GenerateRole", "Querio: create the CloudFront URL-signing key pair"),
            log_group=logs.LogGroup(self, "GenerateLogs", retention=logs.RetentionDays.ONE_MONTH,
                                    removal_policy=RemovalPolicy.DESTROY))
        self.secret.grant_write(fn)
        self.resource = CustomResource(self, "KeyPair", resource_type="Custom::QuerioSigningKeyPair",
                                       service_token=provider(self, "Provider", on_event=fn).service_token,
                                       properties={"SecretArn": self.secret.secret_arn})
        self.public_key_pem = self.resource.get_att_string("PublicKey")


class PdfDelivery(Construct):
    """``distribution`` (OAC origin: the PDF bucket), ``key_group`` and ``settings`` for the functions."""

    def __init__(self, scope: Construct, id: str, *, tier: Tier, documents: DocumentBucket) -> None:
        super().__init__(scope, id)
        self.keys = SigningKeyPair(self, "SigningKey")
        self.public_key = cloudfront.PublicKey(self, "PublicKey", encoded_key=self.keys.public_key_pem,
                                               comment=f"Querio PDF URLs ({tier.name})")
        self.key_group = cloudfront.KeyGroup(self, "KeyGroup", items=[self.public_key],
                                             comment="Signers of Querio PDF download URLs")
        cache = cloudfront.CachePolicy(
            self, "Pdfs", comment="Querio PDFs: the download headers are the only cache-key parameters",
            query_string_behavior=cloudfront.CacheQueryStringBehavior.allow_list(*FORWARDED_QUERY),
            default_ttl=EDGE_TTL, max_ttl=EDGE_TTL, min_ttl=Duration.seconds(0))
        self.distribution = cloudfront.Distribution(
            self, "Distribution", comment=f"Querio PDFs ({tier.name}): signed URLs only",
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(
                    documents.bucket, origin_access_levels=[cloudfront.AccessLevel.READ]),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD, cache_policy=cache,
                trusted_key_groups=[self.key_group]),
            enable_logging=True, log_bucket=documents.access_logs, log_file_prefix="cloudfront-pdfs/",
        )
        acknowledge(self.distribution, "AwsSolutions-CFR1",
                    "Querio serves authenticated tenants worldwide; every PDF request needs a URL signed for one "
                    "document, so geo restriction is a per-customer policy, not a default.")
        acknowledge(self.distribution, "AwsSolutions-CFR2",
                    "Only URLs signed by the key group are served (CloudFront rejects the rest before the origin); "
                    "the API that issues them sits behind the tier's WAF (enterprise) and Cognito JWTs.")
        acknowledge(self.distribution, "AwsSolutions-CFR4",
                    "The distribution uses the default *.cloudfront.net certificate, whose TLS policy AWS fixes; "
                    "pinning TLSv1.2_2021 needs your own domain and ACM certificate (README: Deploy).")
        self.settings = DeliverySettings(domain=self.distribution.distribution_domain_name,
                                         key_pair_id=self.public_key.public_key_id,
                                         private_key_secret=self.keys.secret)
