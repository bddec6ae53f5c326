"""Full text outside PostgreSQL: OpenSearch for the enterprise tier (issue 15).

* :mod:`~querio.fulltext.sync`: the ``FullTextSearch`` wiring installs when OpenSearch is
  configured (writes after the commit through ``querio.vectors.sync.IndexSync``, live-only reads);
* :mod:`~querio.fulltext.ops` and :mod:`~querio.fulltext.commands`:
  ``querio fulltext backfill | verify | reconcile``.

The adapters are ``querio.adapters.opensearch`` and ``querio.adapters.postgres.fulltext``.
"""
