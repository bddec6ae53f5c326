"""A local stand-in for the part of Pinecone's REST API that Querio's adapter uses.

Built from Pinecone's API reference (API version 2026-07, the one ``pinecone`` 10.x sends) and
its "Operation limits" and "Filter by metadata" pages. It is one serverless dense index per
server, held in memory, searched exactly (brute force), so its recall is 1.0: it tests the
adapter's protocol, limits and filter mapping, never Pinecone's ANN quality.

Control plane (the same port): ``GET /indexes``, ``GET /indexes/{name}``.
Data plane: ``POST /vectors/upsert``, ``POST /query``, ``GET /vectors/fetch``,
``POST /vectors/delete`` (by ids, by filter, or all), ``POST /describe_index_stats``,
``GET /vectors/list``.

Documented limits enforced (400 unless noted; "MB"/"KB" read as the stricter decimal units):

* upsert: at most 1,000 vectors and 2 MB (2,000,000 bytes) per request (413 for the size);
* metadata: at most 40 KB (40,000 bytes of JSON) per vector; values are strings, numbers,
  booleans or lists of strings; null values are rejected;
* dense values: the index dimension, finite, not all zero;
* ids: 1 to 512 characters; fetch and delete: at most 1,000 ids per request;
* query: ``topK`` from 1 to 10,000; list: ``limit`` from 1 to 100 (default 100);
* filters: operators ``$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or``; ``$in``/``$nin``
  take a non-empty array of at most 10,000 strings or numbers; comparison operators numbers.

Filter semantics (Pinecone's, MongoDB-like): a list-of-strings field matches ``$eq``/``$in``
when ANY element matches, and ``$ne``/``$nin`` when NO element does; a record without the
field never matches ``$eq``, ``$in`` or a range, and does match ``$ne``/``$nin``.

Errors: data-plane bodies are ``{"code", "message", "details"}`` (gRPC status codes: 3 invalid
argument, 5 not found, 16 unauthenticated); control-plane bodies are
``{"error": {"code", "message"}, "status"}``. A missing or wrong ``Api-Key`` gives 401.
"""

from __future__ import annotations

import json
import math
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

MAX_UPSERT_VECTORS = 1000
MAX_REQUEST_BYTES = 2_000_000  # "2 MB"
MAX_METADATA_BYTES = 40_000  # "40 KB" per vector
MAX_ID_CHARS = 512
MAX_IDS_PER_REQUEST = 1000  # fetch and delete
MAX_TOP_K = 10_000
MAX_LIST_LIMIT = 100
MAX_IN_VALUES = 10_000
FIELD_OPS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"}
LOGICAL_OPS = {"$and", "$or"}

# gRPC status codes the data plane reports in its error bodies
INVALID_ARGUMENT, NOT_FOUND, UNAUTHENTICATED = 3, 5, 16


class ApiFailure(Exception):
    def __init__(self, status: int, message: str, *, grpc_code: int = INVALID_ARGUMENT) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.grpc_code = grpc_code


@dataclass
class Record:
    values: list[float]
    metadata: dict[str, Any] | None
    norm: float


@dataclass
class StandinIndex:
    """One serverless dense index: namespaces of records, guarded by one lock."""

    name: str
    dimension: int
    metric: str = "cosine"
    namespaces: dict[str, dict[str, Record]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, body bytes)

    def count(self, namespace: str) -> int:
        with self.lock:
            return len(self.namespaces.get(_ns(namespace), {}))


def _ns(namespace: Any) -> str:
    if namespace is None or namespace == "":
        return "__default__"
    if not isinstance(namespace, str):
        raise ApiFailure(400, "namespace must be a string")
    return namespace


# --- validation -------------------------------------------------------------------------------


def _check_id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ApiFailure(400, "Vector ID must be a non-empty string")
    if len(value) > MAX_ID_CHARS:
        raise ApiFailure(400, f"Vector ID exceeds the maximum length of {MAX_ID_CHARS} characters")
    return value


def _check_values(values: Any, dimension: int) -> list[float]:
    if not isinstance(values, list) or not all(isinstance(x, int | float) and not isinstance(x, bool)
                                               for x in values):
        raise ApiFailure(400, "values must be an array of numbers")
    if len(values) != dimension:
        raise ApiFailure(400, f"Vector dimension {len(values)} does not match the dimension of the index {dimension}")
    floats = [float(x) for x in values]
    if not all(math.isfinite(x) for x in floats):
        raise ApiFailure(400, "Vector values must be finite")
    if not any(floats):
        raise ApiFailure(400, "Dense vectors must contain at least one non-zero value")
    return floats


def _check_metadata(metadata: Any) -> dict[str, Any] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise ApiFailure(400, "metadata must be an object")
    size = len(json.dumps(metadata, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise ApiFailure(400, f"Metadata size is {size} bytes, which exceeds the limit of {MAX_METADATA_BYTES} bytes"
                              " per vector")
    for key, value in metadata.items():
        if value is None:
            raise ApiFailure(400, f"Metadata value for field {key!r} is null; remove the key instead")
        if isinstance(value, list):
            if not all(isinstance(x, str) for x in value):
                raise ApiFailure(400, f"Metadata list field {key!r} must hold strings only")
        elif not isinstance(value, str | int | float | bool):
            raise ApiFailure(400, f"Metadata field {key!r} has an unsupported type")
    return metadata


def validate_filter(flt: Any) -> None:
    """Raise ``ApiFailure`` (400) unless ``flt`` is a well-formed Pinecone filter."""
    if not isinstance(flt, dict):
        raise ApiFailure(400, "filter must be an object")
    for key, cond in flt.items():
        if key in LOGICAL_OPS:
            if not isinstance(cond, list) or not cond:
                raise ApiFailure(400, f"{key} requires a non-empty array of filters")
            for sub in cond:
                validate_filter(sub)
        elif key.startswith("$"):
            raise ApiFailure(400, f"unknown top-level operator {key}")
        elif isinstance(cond, dict):
            if not cond:
                raise ApiFailure(400, f"empty condition for field {key!r}")
            for op, arg in cond.items():
                _validate_op(key, op, arg)
        else:
            _validate_op(key, "$eq", cond)  # {"field": value} is shorthand for $eq


def _validate_op(name: str, op: str, arg: Any) -> None:
    if op not in FIELD_OPS:
        raise ApiFailure(400, f"unknown operator {op} on field {name!r}")
    if op in ("$eq", "$ne"):
        if not isinstance(arg, str | int | float | bool):
            raise ApiFailure(400, f"{op} on {name!r} takes a string, number or boolean")
    elif op in ("$gt", "$gte", "$lt", "$lte"):
        if isinstance(arg, bool) or not isinstance(arg, int | float):
            raise ApiFailure(400, f"{op} on {name!r} takes a number")
    elif op in ("$in", "$nin"):
        if not isinstance(arg, list) or not arg:
            raise ApiFailure(400, f"{op} on {name!r} takes a non-empty array")
        if len(arg) > MAX_IN_VALUES:
            raise ApiFailure(400, f"{op} on {name!r} takes at most {MAX_IN_VALUES} values")
        if not all(isinstance(x, str | int | float) and not isinstance(x, bool) for x in arg):
            raise ApiFailure(400, f"{op} on {name!r} takes strings or numbers")
    elif op == "$exists" and not isinstance(arg, bool):
        raise ApiFailure(400, f"$exists on {name!r} takes a boolean")


# --- filter evaluation ------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)  # numbers are 64-bit floats in Pinecone
    return bool(a == b)


def matches(metadata: dict[str, Any] | None, flt: dict[str, Any]) -> bool:
    """Whether a record's metadata satisfies an (already validated) filter."""
    meta = metadata or {}
    for key, cond in flt.items():
        if key == "$and":
            if not all(matches(meta, sub) for sub in cond):
                return False
        elif key == "$or":
            if not any(matches(meta, sub) for sub in cond):
                return False
        else:
            ops = cond if isinstance(cond, dict) else {"$eq": cond}
            if not all(_field_matches(meta, key, op, arg) for op, arg in ops.items()):
                return False
    return True


def _field_matches(meta: dict[str, Any], name: str, op: str, arg: Any) -> bool:
    present = name in meta
    if op == "$exists":
        return present is arg
    if not present:
        return op in ("$ne", "$nin")
    value = meta[name]
    items = value if isinstance(value, list) else [value]
    if op == "$eq":
        return any(_same(v, arg) for v in items)
    if op == "$ne":
        return not any(_same(v, arg) for v in items)
    if op == "$in":
        return any(_same(v, a) for v in items for a in arg)
    if op == "$nin":
        return not any(_same(v, a) for v in items for a in arg)
    numbers = [float(v) for v in items if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numbers:
        return False
    x = numbers[0]
    return {"$gt": x > arg, "$gte": x >= arg, "$lt": x < arg, "$lte": x <= arg}[op]


# --- the operations ---------------------------------------------------------------------------------


class Operations:
    def __init__(self, index: StandinIndex, host: str) -> None:
        self.index = index
        self.host = host

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.index.name,
            "host": self.host,
            "status": {"ready": True, "state": "Ready"},
            "schema": {"fields": {"embedding": {"type": "dense_vector", "dimension": self.index.dimension,
                                                "metric": self.index.metric}}},
            "deployment": {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
            "read_capacity": {"mode": "OnDemand", "status": {"state": "Ready"}},
            "deletion_protection": "disabled",
            "tags": None,
        }

    def upsert(self, body: dict[str, Any]) -> dict[str, Any]:
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not vectors:
            raise ApiFailure(400, "vectors must be a non-empty array")
        if len(vectors) > MAX_UPSERT_VECTORS:
            raise ApiFailure(400, f"Upsert request has {len(vectors)} vectors; the maximum is {MAX_UPSERT_VECTORS}")
        staged: dict[str, Record] = {}
        for v in vectors:
            if not isinstance(v, dict):
                raise ApiFailure(400, "each vector must be an object")
            vid = _check_id(v.get("id"))
            values = _check_values(v.get("values"), self.index.dimension)
            meta = _check_metadata(v.get("metadata"))
            staged[vid] = Record(values, meta, math.sqrt(sum(x * x for x in values)))
        with self.index.lock:  # all or nothing: a bad vector rejects the whole request
            self.index.namespaces.setdefault(_ns(body.get("namespace")), {}).update(staged)
        return {"upsertedCount": len(vectors)}

    def query(self, body: dict[str, Any]) -> dict[str, Any]:
        top_k = body.get("topK")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise ApiFailure(400, f"topK must be an integer from 1 to {MAX_TOP_K}")
        flt = body.get("filter")
        if flt is not None:
            validate_filter(flt)
        ns = _ns(body.get("namespace"))
        with self.index.lock:
            records = dict(self.index.namespaces.get(ns, {}))
        if "id" in body:
            if "vector" in body:
                raise ApiFailure(400, "Cannot provide both vector and id")
            rec = records.get(_check_id(body["id"]))
            if rec is None:
                return {"matches": [], "namespace": body.get("namespace") or "", "usage": {"readUnits": 1}}
            vector = rec.values
        else:
            vector = _check_values(body.get("vector"), self.index.dimension)
        candidates = [(vid, rec) for vid, rec in records.items() if flt is None or matches(rec.metadata, flt)]
        scored = []
        if candidates:
            # exact cosine similarity (numpy only for speed; the maths is the plain definition)
            matrix = np.array([rec.values for _, rec in candidates], dtype=np.float64)
            norms = np.array([rec.norm for _, rec in candidates])
            q = np.asarray(vector, dtype=np.float64)
            sims = matrix @ q / (norms * float(np.linalg.norm(q)))
            scored = [(float(s), vid, rec) for s, (vid, rec) in zip(sims, candidates, strict=True)]
        scored.sort(key=lambda t: (-t[0], t[1]))
        out = []
        for score, vid, rec in scored[:top_k]:
            match: dict[str, Any] = {"id": vid, "score": score, "values": list(rec.values) if body.get(
                "includeValues") else []}
            if body.get("includeMetadata") and rec.metadata is not None:
                match["metadata"] = rec.metadata
            out.append(match)
        return {"matches": out, "namespace": body.get("namespace") or "",
                "usage": {"readUnits": max(1, len(records) // 1000)}}

    def fetch(self, params: dict[str, list[str]]) -> dict[str, Any]:
        ids = params.get("ids") or []
        if not ids:
            raise ApiFailure(400, "ids must be a non-empty array")
        if len(ids) > MAX_IDS_PER_REQUEST:
            raise ApiFailure(400, f"fetch takes at most {MAX_IDS_PER_REQUEST} ids")
        namespace = (params.get("namespace") or [""])[0]
        with self.index.lock:
            records = self.index.namespaces.get(_ns(namespace), {})
            found = {vid: records[vid] for vid in map(_check_id, ids) if vid in records}
        vectors = {}
        for vid, rec in found.items():
            item: dict[str, Any] = {"id": vid, "values": rec.values}
            if rec.metadata is not None:
                item["metadata"] = rec.metadata
            vectors[vid] = item
        return {"vectors": vectors, "namespace": namespace, "usage": {"readUnits": 1}}

    def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        ids, delete_all, flt = body.get("ids"), bool(body.get("deleteAll")), body.get("filter")
        if sum(x is not None and x is not False for x in (ids, delete_all or None, flt)) != 1:
            raise ApiFailure(400, "exactly one of ids, deleteAll or filter is required")
        ns = _ns(body.get("namespace"))
        if ids is not None:
            if not isinstance(ids, list) or not ids:
                raise ApiFailure(400, "ids must be a non-empty array")
            if len(ids) > MAX_IDS_PER_REQUEST:
                raise ApiFailure(400, f"delete takes at most {MAX_IDS_PER_REQUEST} ids")
            checked = [_check_id(i) for i in ids]
        if flt is not None:
            validate_filter(flt)
            if not flt:
                raise ApiFailure(400, "filter must not be empty")
        with self.index.lock:
            records = self.index.namespaces.get(ns)
            if records is None:
                return {}
            if delete_all:
                records.clear()
            elif ids is not None:
                for vid in checked:
                    records.pop(vid, None)
            else:
                for vid in [vid for vid, rec in records.items() if matches(rec.metadata, flt)]:
                    del records[vid]
            if not records:
                del self.index.namespaces[ns]  # an emptied serverless namespace disappears
        return {}

    def stats(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("filter"):
            raise ApiFailure(400, "describe_index_stats does not support a filter on serverless indexes")
        with self.index.lock:
            namespaces = {ns: {"vectorCount": len(r)} for ns, r in self.index.namespaces.items() if r}
        return {"namespaces": namespaces, "dimension": self.index.dimension, "indexFullness": 0.0,
                "totalVectorCount": sum(n["vectorCount"] for n in namespaces.values()),
                "metric": self.index.metric, "vectorType": "dense"}

    def list_ids(self, params: dict[str, list[str]]) -> dict[str, Any]:
        namespace = (params.get("namespace") or [""])[0]
        prefix = (params.get("prefix") or [""])[0]
        raw_limit = (params.get("limit") or [str(MAX_LIST_LIMIT)])[0]
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIST_LIMIT:
            raise ApiFailure(400, f"limit must be an integer from 1 to {MAX_LIST_LIMIT}")
        limit = int(raw_limit)
        after = (params.get("paginationToken") or [""])[0]
        with self.index.lock:
            ids = sorted(vid for vid in self.index.namespaces.get(_ns(namespace), {}) if vid.startswith(prefix))
        page = [vid for vid in ids if vid > after][:limit]
        out: dict[str, Any] = {"vectors": [{"id": vid} for vid in page], "namespace": namespace,
                               "usage": {"readUnits": 1}}
        if page and page[-1] != ids[-1]:
            # the token is the last id served: ids are listed in order, so this resumes exactly
            out["pagination"] = {"next": page[-1]}
        return out


# --- HTTP ---------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects
    server: StandinServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet in tests
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        path, params = url.path, urllib.parse.parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ops = self.server.ops
        ops.index.requests.append((method, path, len(raw)))
        control = path.startswith("/indexes")
        try:
            if self.headers.get("Api-Key") != self.server.api_key:
                raise ApiFailure(401, "Invalid API Key", grpc_code=UNAUTHENTICATED)
            if length > MAX_REQUEST_BYTES:
                raise ApiFailure(413, f"Request size {length} bytes exceeds the limit of {MAX_REQUEST_BYTES} bytes")
            body = json.loads(raw) if raw else {}
            if method == "GET" and path == "/indexes":
                result: dict[str, Any] = {"indexes": [ops.describe()]}
            elif method == "GET" and path.startswith("/indexes/"):
                name = urllib.parse.unquote(path.removeprefix("/indexes/"))
                if name != ops.index.name:
                    raise ApiFailure(404, f"Resource {name} not found", grpc_code=NOT_FOUND)
                result = ops.describe()
            elif method == "POST" and path == "/vectors/upsert":
                result = ops.upsert(body)
            elif method == "POST" and path == "/query":
                result = ops.query(body)
            elif method == "GET" and path == "/vectors/fetch":
                result = ops.fetch(params)
            elif method == "POST" and path == "/vectors/delete":
                result = ops.delete(body)
            elif method == "POST" and path == "/describe_index_stats":
                result = ops.stats(body)
            elif method == "GET" and path == "/vectors/list":
                result = ops.list_ids(params)
            else:
                raise ApiFailure(404, f"no route for {method} {path}", grpc_code=NOT_FOUND)
            self._send(200, result)
        except ApiFailure as exc:
            if control:
                code = {401: "UNAUTHENTICATED", 404: "NOT_FOUND"}.get(exc.status, "INVALID_ARGUMENT")
                self._send(exc.status, {"error": {"code": code, "message": exc.message}, "status": exc.status})
            else:
                self._send(exc.status, {"code": exc.grpc_code, "message": exc.message, "details": []})
        except json.JSONDecodeError:
            self._send(400, {"code": INVALID_ARGUMENT, "message": "request body is not JSON", "details": []})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, index: StandinIndex, *, api_key: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.api_key = api_key
        self.ops = Operations(index, f"http://{host}:{self.server_port}")

    @property
    def url(self) -> str:
        return self.ops.host

    @property
    def index(self) -> StandinIndex:
        return self.ops.index


@contextmanager
def running(index: StandinIndex, *, api_key: str, port: int = 0) -> Iterator[StandinServer]:
    """Serve ``index`` on 127.0.0.1 (a free port unless given) in a thread; stop and close after."""
    server = StandinServer(index, api_key=api_key, port=port)
    # a short poll interval: shutdown() waits up to one interval, once per test
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="pinecone-standin",
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
