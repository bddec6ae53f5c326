"""Mid and enterprise: the Pinecone API key in Secrets Manager (created empty: you put the
key in once, see the README), with the index name and namespace prefix as configuration."""

from __future__ import annotations

from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.nag import acknowledge


class PineconeConfig(Construct):
    """``secret`` (SecretString = the API key), ``index_name``, ``namespace_prefix``."""

    def __init__(self, scope: Construct, id: str, *, index_name: str, namespace_prefix: str = "tenant-") -> None:
        super().__init__(scope, id)
        self.secret = secretsmanager.Secret(
            self, "ApiKey", description="Pinecone API key for Querio (set it after the first deploy)",
        )
        acknowledge(self.secret, "AwsSolutions-SMG4",
                    "Pinecone API keys are rotated in Pinecone's console, not by a Secrets Manager rotation "
                    "function; the README gives the rotate-and-put-secret-value steps.")
        self.index_name = index_name
        self.namespace_prefix = namespace_prefix
