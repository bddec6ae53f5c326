"""The VectorStore contract, run against every adapter (pgvector and Pinecone via the stand-in).

Upsert, query order and scores, filters (same semantics as the SQL half of hybrid search),
tenant isolation, delete by document, idempotent re-upserts, and empty and oversized inputs.
"""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
import pytest

from querio.errors import ValidationFailed
from querio.models import SearchFilters
from tests.conformance.conftest import Harness, as_dict, brute_force
from tests.fixtures.postgres import unit_vectors

pytestmark = pytest.mark.integration

NOFILTER = SearchFilters()
DIM = 384


def ids(refs: list) -> list[uuid.UUID]:
    return [r.chunk_id for r in refs]


def test_query_returns_nearest_first_with_cosine_scores(harness: Harness) -> None:
    vecs = unit_vectors(30, seed=1)
    added = harness.add("t1", vecs)
    q = vecs[7] + 0.05 * unit_vectors(1, seed=2)[0]
    refs = harness.store.query("t1", q, 5, NOFILTER)
    assert ids(refs) == brute_force(as_dict(added, vecs), q, 5)
    assert refs[0].chunk_id == added.ids[7]
    scores = [r.score for r in refs]
    assert scores == sorted(scores, reverse=True)
    expected = float(vecs[7] @ q / np.linalg.norm(q))
    assert refs[0].score == pytest.approx(expected, abs=1e-4)
    assert all(-1.0 <= s <= 1.0 + 1e-6 for s in scores)


def test_k_bounds(harness: Harness) -> None:
    vecs = unit_vectors(12, seed=3)
    added = harness.add("t1", vecs)
    assert harness.store.query("t1", vecs[0], 0, NOFILTER) == []
    everything = harness.store.query("t1", vecs[0], 50, NOFILTER)  # more than the tenant has
    assert sorted(ids(everything)) == sorted(added.ids)
    assert harness.store.query("t1", vecs[0], 20_000, NOFILTER)  # beyond Pinecone's top_k cap: clamped


def test_empty_tenant_and_empty_upsert(harness: Harness) -> None:
    assert harness.store.query("nobody", unit_vectors(1)[0], 5, NOFILTER) == []
    added = harness.add("t1", unit_vectors(3, seed=4))
    harness.store.upsert("t1", added.doc.id, [], np.zeros((0, DIM), dtype=np.float32), [])  # no-op
    assert len(harness.store.query("t1", unit_vectors(1)[0], 10, NOFILTER)) == 3


def test_tenant_isolation(harness: Harness) -> None:
    a = harness.add("tenant-a", unit_vectors(10, seed=5))
    b = harness.add("tenant-b", unit_vectors(10, seed=6))
    q = unit_vectors(1, seed=5)[0]  # identical to one of tenant a's vectors
    got_b = ids(harness.store.query("tenant-b", q, 20, NOFILTER))
    assert set(got_b) == set(b.ids) and not set(got_b) & set(a.ids)
    # a filter naming the other tenant's document cannot reach it
    assert harness.store.query("tenant-b", q, 20, SearchFilters(document_ids=[a.doc.id])) == []
    # deleting "a's" document as tenant b touches nothing of a's
    harness.store.delete_document("tenant-b", a.doc.id)
    assert set(ids(harness.store.query("tenant-a", q, 20, NOFILTER))) == set(a.ids)


def test_filters_match_the_sql_semantics(harness: Harness) -> None:
    v1, v2, v3 = unit_vectors(6, seed=7), unit_vectors(6, seed=8), unit_vectors(6, seed=9)
    d1 = harness.add("t1", v1, pages=[1, 2, 3, 4, 5, 6], tags=["alpha", "beta"])
    d2 = harness.add("t1", v2, pages=[1, 1, 2, 2, 3, 3], tags=["gamma"])
    d3 = harness.add("t1", v3, pages=[10, 11, 12, 13, 14, 15], tags=[])
    q = unit_vectors(1, seed=10)[0]

    def got(**f: object) -> set[uuid.UUID]:
        return set(ids(harness.store.query("t1", q, 100, SearchFilters(**f))))  # type: ignore[arg-type]

    assert got(document_ids=[d1.doc.id, d3.doc.id]) == set(d1.ids) | set(d3.ids)
    assert got(tags=["beta", "gamma"]) == set(d1.ids) | set(d2.ids)  # ANY of the tags
    assert got(tags=["nope"]) == set()
    assert got(tags=[]) == set(d1.ids) | set(d2.ids) | set(d3.ids)  # empty list: no filter
    assert got(page_from=3, page_to=5) == set(d1.ids[2:5]) | set(d2.ids[4:6])
    assert got(page_from=12) == set(d3.ids[2:])
    assert got(page_to=1) == {d1.ids[0], d2.ids[0], d2.ids[1]}
    assert got(tags=["alpha"], page_to=2) == set(d1.ids[:2])  # filters combine with AND
    uploaded = sorted([d1.doc.uploaded_at, d2.doc.uploaded_at, d3.doc.uploaded_at])
    assert got(uploaded_after=uploaded[1]) == set(ids_after(uploaded[1], [d1, d2, d3]))  # inclusive
    assert got(uploaded_after=uploaded[2] + dt.timedelta(seconds=1)) == set()
    assert got(uploaded_before=uploaded[0]) == set()  # exclusive
    everything = set(d1.ids) | set(d2.ids) | set(d3.ids)
    assert got(uploaded_after=uploaded[0], uploaded_before=uploaded[2] + dt.timedelta(seconds=1)) == everything
    # a filtered query still ranks: the nearest matching chunk comes first
    top = harness.store.query("t1", v2[3], 3, SearchFilters(document_ids=[d2.doc.id]))
    assert top[0].chunk_id == d2.ids[3]


def ids_after(t: dt.datetime, docs: list) -> list[uuid.UUID]:
    return [cid for d in docs if d.doc.uploaded_at >= t for cid in d.ids]


def test_delete_document_is_scoped_and_idempotent(harness: Harness) -> None:
    keep = harness.add("t1", unit_vectors(5, seed=11))
    gone = harness.add("t1", unit_vectors(5, seed=12))
    harness.store.delete_document("t1", gone.doc.id)
    harness.store.delete_document("t1", gone.doc.id)  # again: no error
    harness.store.delete_document("t1", uuid.uuid4())  # unknown: no error
    assert set(ids(harness.store.query("t1", unit_vectors(1, seed=12)[0], 50, NOFILTER))) == set(keep.ids)


def test_reupsert_overwrites_without_duplicates(harness: Harness) -> None:
    vecs = unit_vectors(8, seed=13)
    added = harness.add("t1", vecs)
    moved = unit_vectors(8, seed=14)
    harness.store.upsert("t1", added.doc.id, added.ids, moved, [{}] * 8)
    refs = harness.store.query("t1", moved[2], 50, NOFILTER)
    assert sorted(ids(refs)) == sorted(added.ids)  # 8 records, not 16
    assert refs[0].chunk_id == added.ids[2] and refs[0].score == pytest.approx(1.0, abs=1e-4)


def test_many_vectors_in_one_upsert(harness: Harness) -> None:
    """2,500 vectors is over Pinecone's 1,000-per-request and 2 MB limits: the adapter batches."""
    vecs = unit_vectors(2500, seed=15)
    added = harness.add("t1", vecs)
    assert len(harness.store.query("t1", vecs[0], 3000, NOFILTER)) == 2500
    assert harness.store.query("t1", vecs[2499], 1, NOFILTER)[0].chunk_id == added.ids[2499]
    if harness.standin is not None:
        upserts = [size for method, path, size in harness.standin.index.requests if path == "/vectors/upsert"]
        assert len(upserts) >= 3 and max(upserts) <= 2_000_000


@pytest.mark.parametrize("bad", ["wide", "narrow", "nan", "rows"])
def test_malformed_vectors_are_rejected(harness: Harness, bad: str) -> None:
    added = harness.add("t1", unit_vectors(3, seed=16))
    vecs = {"wide": unit_vectors(3, dim=DIM + 1), "narrow": unit_vectors(3, dim=DIM - 1),
            "nan": np.full((3, DIM), np.nan, dtype=np.float32), "rows": unit_vectors(2)}[bad]
    with pytest.raises(ValidationFailed):
        harness.store.upsert("t1", added.doc.id, added.ids, vecs, [{}] * 3)
    with pytest.raises(ValidationFailed):
        harness.store.query("t1", vecs[0], 5, NOFILTER) if bad != "rows" else harness.store.query(
            "t1", np.zeros(DIM + 5, dtype=np.float32), 5, NOFILTER)
    # nothing was written: the original vectors still answer
    assert harness.store.query("t1", unit_vectors(3, seed=16)[1], 1, NOFILTER)[0].chunk_id == added.ids[1]
