"""Vectors in two stores: pgvector (always, the system of record) and Pinecone (issue 5).

* :mod:`~querio.vectors.sync`: the small protocol the domain uses to keep an external index in
  step with committed documents;
* :mod:`~querio.vectors.mirror`: the ``VectorStore`` wiring installs when Pinecone serves or
  shadows queries (dual writes, orphan repair, shadow agreement);
* :mod:`~querio.vectors.migrate`, :mod:`~querio.vectors.verify`, :mod:`~querio.vectors.reconcile`:
  ``querio vectors migrate | verify | reconcile``;
* :mod:`~querio.vectors.records`: Pinecone records from the ``VectorSource`` port (the reads
  themselves are adapters': ``querio.adapters.postgres.vector_source``).

Nothing here is imported by the domain except ``sync`` (a protocol, no I/O).
"""
