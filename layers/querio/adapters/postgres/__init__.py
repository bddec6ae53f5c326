"""PostgreSQL adapters: the storage ports, pgvector search, migrations and the embedded server."""

from __future__ import annotations


def conninfo(**parts: str) -> str:
    """A libpq DSN from its parts (values quoted as libpq needs), for ``wiring``, which names no driver."""
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**parts)
