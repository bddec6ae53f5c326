"""Ingest: PDF bytes → pages (``pdf``) → page-aware chunks (``chunking``); ``pipeline`` runs them.

Only the two pure steps are re-exported here; importing this package loads pypdf but no
model, database or network client.
"""

from querio.ingest.chunking import chunk_pages
from querio.ingest.pdf import parse_pdf

__all__ = ["chunk_pages", "parse_pdf"]
