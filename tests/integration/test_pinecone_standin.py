"""The Pinecone stand-in stays honest: its responses decode into the SDK's own models with no
field the models do not know, it enforces the documented limits, and its filters follow
Pinecone's semantics. (If the stand-in drifts from the API, the adapter tests prove nothing.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from pinecone.models.indexes.index import IndexModel
from pinecone.models.vectors.responses import (
    DescribeIndexStatsResponse,
    FetchResponse,
    ListResponse,
    QueryResponse,
    UpsertResponse,
)

from tests.fixtures.postgres import unit_vectors
from tests.pinecone_standin.fixture import API_KEY, DIM, INDEX, pinecone_standin  # noqa: F401
from tests.pinecone_standin.server import StandinServer, matches, validate_filter

pytestmark = pytest.mark.integration


def assert_exact_model(raw: bytes, model: type) -> Any:
    """Decode strictly into ``model`` and check every key of the JSON is a field of the model
    (msgspec ignores unknown fields, so a misspelt key would otherwise pass unnoticed)."""
    decoded = msgspec.json.decode(raw, type=model, strict=True)
    _check_keys(msgspec.json.decode(raw), msgspec.inspect.type_info(model), "$")
    return decoded


def _check_keys(value: Any, info: msgspec.inspect.Type, where: str) -> None:
    mi = msgspec.inspect
    if isinstance(info, mi.UnionType):
        for member in info.types:
            if isinstance(member, mi.StructType) and isinstance(value, dict):
                tag_ok = member.tag_field is None or value.get(member.tag_field) == member.tag
                if tag_ok:
                    _check_keys(value, member, where)
                    return
            if isinstance(member, mi.DictType | mi.ListType) and isinstance(value, dict | list):
                _check_keys(value, member, where)
                return
        return
    if isinstance(info, mi.StructType) and isinstance(value, dict):
        fields = {f.encode_name: f for f in info.fields}
        unknown = set(value) - set(fields) - ({info.tag_field} if info.tag_field else set())
        assert not unknown, f"{where}: keys {sorted(unknown)} are not fields of {info.cls.__name__}"
        for key, sub in value.items():
            if key in fields:
                _check_keys(sub, fields[key].type, f"{where}.{key}")
    elif isinstance(info, mi.DictType) and isinstance(value, dict):
        for key, sub in value.items():
            _check_keys(sub, info.value_type, f"{where}[{key!r}]")
    elif isinstance(info, mi.ListType) and isinstance(value, list):
        for i, sub in enumerate(value):
            _check_keys(sub, info.item_type, f"{where}[{i}]")


@pytest.fixture
def http(pinecone_standin: StandinServer) -> Iterator[httpx.Client]:  # noqa: F811
    with httpx.Client(base_url=pinecone_standin.url, headers={"Api-Key": API_KEY,
                                                              "X-Pinecone-Api-Version": "2026-07"}) as client:
        yield client


def _vec(i: int) -> list[float]:
    return [float(x) for x in unit_vectors(1, seed=i)[0]]


def test_responses_match_the_sdk_models(http: httpx.Client) -> None:
    r = http.get(f"/indexes/{INDEX}")
    model = assert_exact_model(r.content, IndexModel)
    assert model.schema.fields["embedding"].dimension == DIM
    listed = http.get("/indexes").json()["indexes"]
    assert_exact_model(msgspec.json.encode(listed[0]), IndexModel)

    body = {"namespace": "ns", "vectors": [{"id": f"v{i}", "values": _vec(i), "metadata": {"tags": ["a"], "page": i}}
                                           for i in range(3)]}
    assert assert_exact_model(http.post("/vectors/upsert", json=body).content, UpsertResponse).upserted_count == 3
    q = http.post("/query", json={"namespace": "ns", "topK": 2, "vector": _vec(1), "includeMetadata": True,
                                  "includeValues": True, "filter": {"page": {"$gte": 1}}})
    result = assert_exact_model(q.content, QueryResponse)
    assert [m.id for m in result.matches] == ["v1", "v2"] and result.matches[0].metadata == {"tags": ["a"], "page": 1}
    fetched = assert_exact_model(http.get("/vectors/fetch", params={"ids": ["v0", "nope"], "namespace": "ns"}).content,
                                 FetchResponse)
    assert list(fetched.vectors) == ["v0"]
    stats = assert_exact_model(http.post("/describe_index_stats", json={}).content, DescribeIndexStatsResponse)
    assert stats.namespaces["ns"].vector_count == 3 and stats.dimension == DIM
    page = assert_exact_model(http.get("/vectors/list", params={"namespace": "ns", "limit": 2}).content, ListResponse)
    assert [v.id for v in page.vectors] == ["v0", "v1"] and page.pagination is not None
    last = assert_exact_model(http.get("/vectors/list", params={"namespace": "ns", "limit": 2,
                                                                "paginationToken": page.pagination.next}).content,
                              ListResponse)
    assert [v.id for v in last.vectors] == ["v2"] and last.pagination is None
    assert http.post("/vectors/delete", json={"namespace": "ns", "ids": ["v0"]}).json() == {}


def test_the_checker_catches_an_unknown_field() -> None:
    with pytest.raises(AssertionError, match="upsertedCoun"):
        assert_exact_model(b'{"upsertedCount": 1, "upsertedCoun": 2}', UpsertResponse)


@pytest.mark.parametrize(("path", "body", "status"), [
    ("/vectors/upsert", {"vectors": [{"id": f"v{i}", "values": [1.0] + [0.0] * (DIM - 1)} for i in range(1001)]}, 400),
    ("/vectors/upsert", {"vectors": [{"id": "v", "values": [1.0] + [0.0] * (DIM - 1),
                                      "metadata": {"blob": "x" * 40_001}}]}, 400),
    ("/vectors/upsert", {"vectors": [{"id": "v", "values": [1.0] * 3}]}, 400),
    ("/vectors/upsert", {"vectors": [{"id": "v", "values": [0.0] * DIM}]}, 400),
    ("/vectors/upsert", {"vectors": [{"id": "v", "values": [1.0] * DIM, "metadata": {"k": None}}]}, 400),
    ("/vectors/upsert", {"vectors": [{"id": "x" * 513, "values": [1.0] * DIM}]}, 400),
    ("/query", {"topK": 10_001, "vector": [1.0] * DIM}, 400),
    ("/query", {"topK": 0, "vector": [1.0] * DIM}, 400),
    ("/query", {"topK": 5, "vector": [1.0] * DIM, "filter": {"page": {"$regex": "x"}}}, 400),
    ("/query", {"topK": 5, "vector": [1.0] * DIM, "filter": {"page": {"$gt": "one"}}}, 400),
    ("/query", {"topK": 5, "vector": [1.0] * DIM, "filter": {"tags": {"$in": []}}}, 400),
    ("/vectors/delete", {"ids": [f"v{i}" for i in range(1001)]}, 400),
    ("/vectors/delete", {}, 400),
])
def test_documented_limits_are_enforced(http: httpx.Client, path: str, body: dict[str, Any], status: int) -> None:
    r = http.post(path, json=body)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"code", "message", "details"}


def test_request_size_and_api_key(http: httpx.Client, pinecone_standin: StandinServer) -> None:  # noqa: F811
    big = {"vectors": [{"id": f"v{i}", "values": _vec(i)} for i in range(300)]}  # ~2.3 MB of JSON
    assert http.post("/vectors/upsert", json=big).status_code == 413
    assert http.post("/vectors/upsert", json={"vectors": big["vectors"][:200]}).status_code == 200
    r = httpx.get(f"{pinecone_standin.url}/indexes/{INDEX}", headers={"Api-Key": "wrong"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHENTICATED"
    assert http.get("/indexes/other").status_code == 404


@pytest.mark.parametrize(("meta", "flt", "expected"), [
    ({"tags": ["a", "b"]}, {"tags": {"$in": ["b", "z"]}}, True),  # a list matches $in when ANY element does
    ({"tags": ["a", "b"]}, {"tags": "a"}, True),  # shorthand $eq on a list: any element
    ({"tags": ["a", "b"]}, {"tags": {"$nin": ["b"]}}, False),  # $nin: no element may match
    ({"tags": ["a", "b"]}, {"tags": {"$ne": "c"}}, True),
    ({}, {"tags": {"$ne": "c"}}, True),  # a missing field matches $ne and $nin ...
    ({}, {"tags": {"$nin": ["c"]}}, True),
    ({}, {"tags": {"$in": ["c"]}}, False),  # ... but never $eq, $in or a range
    ({}, {"page": {"$lt": 5}}, False),
    ({"page": 3}, {"page": {"$gte": 3, "$lt": 4}}, True),  # several operators on one field: AND
    ({"page": 3}, {"page": {"$gt": 3}}, False),
    ({"page": 3}, {"page": 3.0}, True),  # numbers are 64-bit floats
    ({"page": 3}, {"page": "3"}, False),  # no string/number coercion
    ({"ok": True}, {"ok": {"$eq": 1}}, False),  # booleans are not numbers
    ({"page": 3}, {"page": {"$exists": True}}, True),
    ({"page": 3}, {"other": {"$exists": False}}, True),
    ({"page": 3, "doc": "d1"}, {"$and": [{"page": {"$lte": 3}}, {"doc": {"$in": ["d1"]}}]}, True),
    ({"page": 3, "doc": "d1"}, {"$or": [{"page": {"$gt": 3}}, {"doc": "d2"}]}, False),
    ({"page": 3, "doc": "d1"}, {"$or": [{"page": {"$gt": 3}}, {"doc": "d1"}], "page": 3}, True),
])
def test_filter_semantics(meta: dict[str, Any], flt: dict[str, Any], expected: bool) -> None:
    validate_filter(flt)
    assert matches(meta, flt) is expected
