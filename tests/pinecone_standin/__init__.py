"""A local stand-in for Pinecone's REST API (see ``server``), for offline tests and manual runs."""

from tests.pinecone_standin.server import StandinIndex, StandinServer, running

__all__ = ["StandinIndex", "StandinServer", "running"]
