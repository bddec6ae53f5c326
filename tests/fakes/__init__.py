"""In-memory fakes of the small storage ports, for fast unit tests of the domain.

Each is about a page and keeps the port's contract where the domain depends on it (tenancy,
liveness, compare-and-set transitions, ``NotFound``). What a fake leaves out is said in its
docstring; the PostgreSQL adapters are the reference (``tests/integration``), and
``tests/integration/test_fakes_conform.py`` runs the same cases on both.
"""

from tests.fakes.chats import InMemoryChats
from tests.fakes.documents import InMemoryDocuments
from tests.fakes.embedder import HashEmbedder
from tests.fakes.query_log import InMemoryQueryLog
from tests.fakes.s3_objects import InMemoryS3Objects
from tests.fakes.sweeps import InMemorySweeps
from tests.fakes.vectors import InMemoryCheckpoints, InMemoryVectors, InMemoryVectorSource

__all__ = ["HashEmbedder", "InMemoryChats", "InMemoryCheckpoints", "InMemoryDocuments", "InMemoryQueryLog",
           "InMemoryS3Objects", "InMemorySweeps", "InMemoryVectorSource", "InMemoryVectors"]
