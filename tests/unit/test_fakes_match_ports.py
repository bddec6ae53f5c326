"""Each in-memory fake has exactly its port's methods with the port's parameters, and each port
stays small (the issue's bar: a fake of it fits on about a page)."""

from __future__ import annotations

import inspect

import pytest

from querio import ports
from querio.adapters.postgres.store import PostgresDocumentStore
from querio.adapters.postgres.vector_source import PostgresMigrationCheckpoints, PostgresVectorSource
from tests import fakes

PAIRS = [(ports.DocumentStore, fakes.InMemoryDocuments, PostgresDocumentStore),
         (ports.ChatStore, fakes.InMemoryChats, PostgresDocumentStore),
         (ports.QueryLog, fakes.InMemoryQueryLog, PostgresDocumentStore),
         (ports.S3Objects, fakes.InMemoryS3Objects, PostgresDocumentStore),
         (ports.Sweeps, fakes.InMemorySweeps, PostgresDocumentStore),
         (ports.IngestParts, None, PostgresDocumentStore),
         (ports.EmbedderVariants, None, PostgresDocumentStore),
         (ports.VectorSource, fakes.InMemoryVectorSource, PostgresVectorSource),
         (ports.MigrationCheckpoints, fakes.InMemoryCheckpoints, PostgresMigrationCheckpoints)]
MAX_METHODS = 16  # DocumentStore, with fulltext_search until the full-text port takes it


def methods(cls: type) -> dict[str, inspect.Signature]:
    return {n: inspect.signature(f) for n, f in vars(cls).items() if inspect.isfunction(f) and not n.startswith("_")}


def shape(sig: inspect.Signature) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


@pytest.mark.parametrize(("port", "fake", "adapter"), PAIRS, ids=[p[0].__name__ for p in PAIRS])
def test_fakes_and_adapters_have_the_ports_methods(port: type, fake: type | None, adapter: type) -> None:
    wanted = methods(port)
    assert 3 <= len(wanted) <= MAX_METHODS
    for impl in filter(None, (fake, adapter)):
        have = {n: s for n, s in inspect.getmembers(impl, inspect.isfunction) for s in [inspect.signature(s)]}
        for name, sig in wanted.items():
            assert name in have, f"{impl.__name__} lacks {port.__name__}.{name}"
            assert shape(have[name]) == shape(sig), f"{impl.__name__}.{name}"
