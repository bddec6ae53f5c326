"""Retrieval: fusion of the vector and full-text retrievers, snippets and answers."""
