"""Querio: PDF retrieval (RAG) runtime shared by the Lambda functions, the CLI and the local server."""

__version__ = "0.1.0"
