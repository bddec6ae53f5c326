"""PostgreSQL adapters: the document store, pgvector search, migrations and the embedded server."""
