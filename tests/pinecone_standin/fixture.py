"""pytest fixtures: a Pinecone stand-in per test on 127.0.0.1 (free port), stopped after.

Import into a test module or conftest: ``from tests.pinecone_standin.fixture import
pinecone_standin  # noqa: F401``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pinecone_standin.server import StandinIndex, StandinServer, running

API_KEY = "standin-test-key"
INDEX = "querio-test"
DIM = 384


@pytest.fixture
def pinecone_standin() -> Iterator[StandinServer]:
    with running(StandinIndex(INDEX, DIM, "cosine"), api_key=API_KEY) as server:
        yield server
