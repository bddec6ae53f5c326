"""``querio fulltext backfill | verify | reconcile`` through the CLI's ``main``: real PostgreSQL,
the real opensearch-py client against the request recorder (tests/fixtures/opensearch_recorder.py).
The recorder does not index or filter: it answers every ``_search`` with the hits a test sets
(once-only replies through ``fail`` stand in for aggregations), so what is pinned is the commands'
exit codes, reports and the requests they send."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from querio.adapters.opensearch import routing_key
from querio.adapters.postgres.store import PostgresDocumentStore
from querio.cli import main
from querio.config import Settings
from tests.fixtures.opensearch_recorder import Recorder
from tests.fixtures.postgres import ingest

pytestmark = pytest.mark.e2e


def chunk_id(store: PostgresDocumentStore, text: str) -> uuid.UUID:
    with store.connection() as conn:
        row = conn.execute("SELECT id FROM document_chunks WHERE content = %s", (text,)).fetchone()
    assert row is not None
    return row[0]


def tenant_counts_reply(counts: dict[str, int]) -> tuple[int, dict]:
    """A documented ``_search`` response holding a ``terms`` aggregation over ``tenant_id``."""
    return 200, {"took": 1, "timed_out": False, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                 "hits": {"max_score": None, "hits": []},
                 "aggregations": {"tenants": {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0,
                                              "buckets": [{"key": t, "doc_count": n} for t, n in counts.items()]}}}


def test_fulltext_commands(pg_store: PostgresDocumentStore, settings: Settings, opensearch_recorder: Recorder,
                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                           tmp_path: Path) -> None:
    for name, value in {"QUERIO_DATA_DIR": str(settings.data_dir), "QUERIO_DATABASE_URL": settings.database_url,
                        "QUERIO_OPENSEARCH_URL": opensearch_recorder.url,
                        "QUERIO_OPENSEARCH_INDEX_PREFIX": "cli"}.items():
        monkeypatch.setenv(name, value)
    ingest(pg_store, "acme", ["tomato garden watering", "bicycle tyre repair kit", "bread baking oven"])
    ingest(pg_store, "beta", ["tyre pressure gauge", "an unrelated sentence"])
    tyre = chunk_id(pg_store, "bicycle tyre repair kit")

    assert main(["fulltext", "backfill", "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] and dry["remaining_at_start"] == 5 and dry["planned_per_tenant"] == {"acme": 3, "beta": 2}
    assert opensearch_recorder.requests == []

    assert main(["fulltext", "backfill", "--batch-size", "2", "--stop-after", "1", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["stopped_early"] and first["copied"] == 2
    assert main(["fulltext", "backfill", "--batch-size", "2"]) == 0
    assert "indexed 3 chunks" in capsys.readouterr().out  # the other 3, after resuming
    assert main(["fulltext", "backfill", "--batch-size", "0"]) == 1
    assert "batch size" in capsys.readouterr().err

    # verify: beta has a record too few; every search answers acme's tyre chunk (the recorder)
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "bicycle tyre"}) + "\n", encoding="utf-8")
    opensearch_recorder.hits = [{"_index": "cli-v1", "_id": str(tyre), "_score": 1.5, "sort": [str(tyre)]}]
    opensearch_recorder.fail["/cli-v1/_search"] = tenant_counts_reply({"acme": 3, "beta": 1})
    assert main(["fulltext", "verify", "--questions", str(questions), "--k", "5", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["mismatched_tenants"] == ["beta"]
    assert report["counts"]["beta"] == {"postgres": 2, "opensearch": 1}
    assert report["queries"] == 2 and report["agreement_at_k"] == 0.5 and report["min_agreement"] == 0.0
    assert {q["tenant"]: q["overlap"] for q in report["questions"]} == {"acme": 1.0, "beta": 0.0}
    last = opensearch_recorder.of("POST", "/cli-v1/_search")[-1].json()
    assert last["query"]["bool"]["filter"] == [{"term": {"tenant_id": "beta"}}]
    assert main(["fulltext", "verify", "--questions", str(tmp_path / "none.jsonl")]) == 1  # no such file

    # reconcile: the index lists only acme's tyre chunk for each tenant, so beta holds an orphan
    sent = len(opensearch_recorder.requests)
    opensearch_recorder.fail["/cli-v1/_search"] = tenant_counts_reply({"acme": 1, "beta": 1})
    assert main(["fulltext", "reconcile", "--dry-run", "--json"]) == 0
    dry_fix = json.loads(capsys.readouterr().out)
    assert (dry_fix["missing"], dry_fix["orphans"]) == (4, 1)
    assert [r.path for r in opensearch_recorder.requests[sent:] if r.method != "POST" or
            not r.path.endswith("/_search")] == []  # only reads: nothing written

    opensearch_recorder.fail["/cli-v1/_search"] = tenant_counts_reply({"acme": 1, "beta": 1})
    assert main(["fulltext", "reconcile"]) == 0
    out = capsys.readouterr().out
    assert "acme: postgres 3, opensearch 1; indexed 2 missing, deleted 0 orphans" in out
    assert "beta: postgres 2, opensearch 1; indexed 2 missing, deleted 1 orphans" in out
    actions = [line for r in opensearch_recorder.of("POST", "/_bulk")[-3:] for line in r.ndjson()]
    deletes = [a["delete"] for a in actions if "delete" in a]
    # the orphan is deleted with beta's routing: never a delete of acme's record
    assert deletes == [{"_index": "cli-v1", "_id": str(tyre), "routing": routing_key("beta")}]
