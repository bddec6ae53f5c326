"""The capacity model (``querio capacity``): measured figures, shared assumptions, need vs provision."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from querio.capacity import (
    ASSUMPTIONS,
    BLOCKS_RESULT_FILE,
    CHUNK_BYTES,
    MEASUREMENT,
    VECTOR_COLUMN_BYTES,
    capacity,
    chunk_bytes,
    markdown_table,
    postgres_bytes_per_chunk,
)
from querio.cli import main
from querio.costs import WORKLOADS
from querio.tiers import TIERS, get_tier

ROOT = Path(__file__).resolve().parents[2]
ALL = list(TIERS)


def _measured() -> dict[str, Any]:
    return dict(json.loads((ROOT / MEASUREMENT.result_file).read_text()))


def test_every_figure_is_the_larger_of_the_two_measured_runs() -> None:
    # The constants are copied from the bench's JSON; this keeps them from drifting apart.
    runs = [r["bytes_per_chunk"] for r in _measured()["sizes"].values()]
    key = {"document_chunks TOAST": "chunk_toast", "document_chunks b-trees": "chunk_btrees",
           "documents (": "documents_per_chunk", "HNSW, the tenant's": "hnsw_tenant",
           "HNSW, the shared": "hnsw_shared", "GIN on": "chunk_gin_tsv", "chunk_terms heap": "postings_heap",
           "chunk_terms impact": "postings_impact_index", "chunk_terms primary": "postings_other_indexes",
           "tenant_terms": "tenant_terms"}
    for c in CHUNK_BYTES:
        name = next((v for k, v in key.items() if c.store.startswith(k)), None)
        if name is not None:
            assert c.bytes_per_chunk == max(r[name] for r in runs), c.store
        assert MEASUREMENT.result_file in c.source or "pgvector" in c.source or BLOCKS_RESULT_FILE in c.source
    # term_blocks (migration 0009) was measured later, by the same bench, in its own run
    blocks = json.loads((ROOT / BLOCKS_RESULT_FILE).read_text())["sections"]["capacity"]["sizes"].values()
    assert chunk_bytes("term_blocks") == max(r["bytes_per_chunk"]["term_blocks"] for r in blocks)
    heap = next(c for c in CHUNK_BYTES if c.store.startswith("document_chunks heap"))
    assert heap.bytes_per_chunk == max(r["chunk_heap"] for r in runs) - VECTOR_COLUMN_BYTES
    corpus = _measured()["corpus"]
    assert ASSUMPTIONS.chunks_per_page == corpus["chunks_per_page"]


def test_cost_and_capacity_share_pages_per_document() -> None:
    assert {w.pages_per_document for w in WORKLOADS.values()} == {ASSUMPTIONS.pages_per_document}


@pytest.mark.parametrize("name", ALL)
def test_every_tier_holds_the_top_of_its_range_or_names_what_runs_out(name: str) -> None:
    tier = get_tier(name)
    top = capacity(tier)
    assert top.documents == tier.capacity_documents
    over = [r.name for r in top.resources if not r.fits]
    # mid keeps BM25 in PostgreSQL (issue 15: small and mid use PostgreSQL); its postings outgrow
    # the memory of a sensible instance before 1M documents, and the README says so.
    assert over == (["PostgreSQL memory (hot indexes)"] if name == "mid" else [])
    bottom = capacity(tier, tier.document_range[0])
    assert all(r.fits for r in bottom.resources)


def test_stores_follow_where_chunks_vectors_and_full_text_live() -> None:
    small, mid, ent = (get_tier(n) for n in ALL)
    assert postgres_bytes_per_chunk(small) > postgres_bytes_per_chunk(mid) > postgres_bytes_per_chunk(ent)
    names = {n: {r.name for r in capacity(get_tier(n)).resources} for n in ALL}
    assert "Pinecone records" not in names["small"] and "Pinecone records" in names["mid"]
    assert not any(n.startswith("OpenSearch") for n in names["mid"])
    assert {"OpenSearch storage", "OpenSearch shards per cluster"} <= names["enterprise"]
    assert "PostgreSQL memory (hot indexes)" not in names["enterprise"]  # nothing random-walked in PostgreSQL


def test_need_grows_linearly_and_the_limit_is_where_need_meets_provision() -> None:
    tier = get_tier("small")
    one, two = capacity(tier, 10_000), capacity(tier, 20_000)
    for a, b in zip(one.resources, two.resources, strict=True):
        assert b.need == pytest.approx(2 * a.need)
        at = capacity(tier, a.documents_at_limit)
        after = capacity(tier, a.documents_at_limit + 1)
        r_at = next(r for r in at.resources if r.name == a.name)
        r_after = next(r for r in after.resources if r.name == a.name)
        assert r_at.fits and not r_after.fits
    assert one.first_limit.documents_at_limit == min(r.documents_at_limit for r in one.resources)


def test_fewer_pages_per_document_hold_more_documents() -> None:
    tier = get_tier("mid")
    assert (capacity(tier, pages_per_document=10).first_limit.documents_at_limit
            > capacity(tier, pages_per_document=20).first_limit.documents_at_limit)


def test_a_smaller_database_runs_out_sooner() -> None:
    small = get_tier("small")
    micro = dataclasses.replace(small, database=dataclasses.replace(small.database, instance_class="db.t3.micro"))
    rep = capacity(micro, 100_000)
    assert rep.first_limit.name == "PostgreSQL memory (hot indexes)" and rep.first_limit.documents_at_limit < 5_000


def test_capacity_command_text_json_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["capacity", "--tier", "enterprise"]) == 0
    out = capsys.readouterr().out
    assert "10,000,000 documents" in out and "Runs out first:" in out and "OpenSearch storage" in out
    assert main(["capacity", "--tier", "small", "--documents", "5000", "--pages-per-document", "3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["documents"] == 5000 and data["chunks"] == round(5000 * 3 * ASSUMPTIONS.chunks_per_page)
    assert data["fits"] is True and data["first_limit"]["resource"]
    assert main(["capacity", "--tier", "galactic"]) == 2
    with pytest.raises(SystemExit):
        main(["capacity", "--documents", "0"])


def test_readme_table_has_each_tier_at_both_ends_of_its_range() -> None:
    table = markdown_table([get_tier(n) for n in ALL])
    for n in ALL:
        t = get_tier(n)
        assert f"| {n} | {t.document_range[0]:,} |" in table and f"| {n} | {t.capacity_documents:,} |" in table
    assert table.count("**(over)**") == 1  # mid's PostgreSQL memory at 1M documents


@pytest.mark.parametrize("name", ALL)
def test_storage_ceiling_source_quotes_the_model_at_the_top_of_the_range(name: str) -> None:
    # The sources are hand-written; a re-measurement that changes the per-chunk figures must change them too.
    tier = get_tier(name)
    storage = next(r for r in capacity(tier).resources if r.name == "PostgreSQL storage")
    quoted = f"{storage.need:,.0f} GiB at {postgres_bytes_per_chunk(tier):,.0f} B per chunk"
    assert quoted in tier.sources["database.max_allocated_storage_gib"]
