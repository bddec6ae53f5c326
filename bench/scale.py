"""Section 4: pgvector HNSW at 10K / 100K / (1M) synthetic vectors on the embedded PostgreSQL.

Vectors: 384-d, L2-normalised, drawn around ``CLUSTERS`` gaussian cluster centres (real
sentence embeddings are clustered by topic; uniform noise makes ANN look artificially hard
or easy). Queries are fresh draws from the same mixture. Ground truth: exact top-10 by cosine
in numpy. The index uses the product's settings: ``m`` and ``ef_construction`` read from the
migration that creates ``idx_chunks_embedding_hnsw``, ``ef_search`` from ``Settings``.

Everything happens in a scratch PostgreSQL cluster (its own data directory, via the product's
``start_embedded``) in a scratch database; nothing of the product's data is touched.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from percentiles import pct as _pct

DIM = 384
CLUSTERS = 1000
#: per-dimension noise around a unit centre: cosine(point, centre) ~ 0.65, like topic neighbours
SIGMA = 0.06
#: the skewed set: Zipf exponent of the cluster sizes and the range of per-cluster spreads
ZIPF_S = 0.8
SKEWED_SIGMA = (0.04, 0.10)
#: the seed document's pgvector table (ms per query) by corpus size
SEED_TABLE_MS = {1_000: 80, 10_000: 200, 100_000: 800, 1_000_000: 3000}


def product_index_params() -> dict[str, Any]:
    """``m`` / ``ef_construction`` of the product's HNSW index (from its migration) and ``ef_search``."""
    from querio.config import load_settings

    params: dict[str, Any] = {"m": 16, "ef_construction": 64, "source": "pgvector defaults"}
    mig = resources.files("querio.adapters.postgres") / "migrations"
    for entry in sorted(mig.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".sql"):
            continue
        text = entry.read_text()
        for m in re.finditer(r"USING\s+hnsw\s*\([^)]*\)\s*WITH\s*\(([^)]*)\)", text, re.I | re.S):
            opts = dict(re.findall(r"(\w+)\s*=\s*(\d+)", m.group(1)))
            params = {"m": int(opts.get("m", 16)), "ef_construction": int(opts.get("ef_construction", 64)),
                      "source": entry.name}
    params["ef_search"] = load_settings().hnsw_ef_search
    return params


def clustered(n: int, rng: np.random.Generator, centres: np.ndarray, *, weights: np.ndarray | None = None,
              sigmas: np.ndarray | None = None, batch: int = 100_000) -> np.ndarray:
    """``n`` unit vectors around ``centres``: cluster chosen uniformly (or by ``weights``), gaussian
    noise of per-dimension spread ``SIGMA`` (or ``sigmas[cluster]``)."""
    out = np.empty((n, DIM), dtype=np.float32)
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        labels = rng.choice(len(centres), hi - lo, p=weights) if weights is not None \
            else rng.integers(0, len(centres), hi - lo)
        spread = sigmas[labels, None] if sigmas is not None else np.float32(SIGMA)
        x = centres[labels] + rng.normal(0.0, 1.0, (hi - lo, DIM)).astype(np.float32) * spread
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[lo:hi] = x
    return out


def exact_top(x: np.ndarray, q: np.ndarray, k: int = 10, batch: int = 64) -> np.ndarray:
    tops = []
    for lo in range(0, len(q), batch):
        sims = q[lo:lo + batch] @ x.T
        idx = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, idx, axis=1), axis=1)
        tops.append(np.take_along_axis(idx, order, axis=1))
    return np.vstack(tops)


class MemSampler:
    """Peak RSS of a process tree (the PostgreSQL postmaster and its backends), sampled in a thread."""

    def __init__(self, root_pid: int | None, every_s: float = 0.2) -> None:
        self.root_pid, self.every_s = root_pid, every_s
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def current(self) -> dict[str, float]:
        import psutil

        if not self.root_pid:
            return {}
        try:
            root = psutil.Process(self.root_pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return {}
        rss = uss = 0
        for p in procs:
            try:
                info = p.memory_full_info()
                rss += info.rss
                uss += info.uss
            except psutil.Error:
                continue
        return {"rss_mb": round(rss / 2**20, 1), "uss_mb": round(uss / 2**20, 1), "processes": len(procs)}

    def _run(self) -> None:
        while not self._stop.is_set():
            cur = self.current().get("uss_mb", 0.0)
            self.peak_rss = max(self.peak_rss, cur)
            self._stop.wait(self.every_s)

    def __enter__(self) -> MemSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _postmaster_pid(pg_dir: Path) -> int | None:
    try:
        return int((pg_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None




def product_path(admin_dsn_for: Callable[[str], str], label: str, n: int, x: np.ndarray, q: np.ndarray,
                 truth: np.ndarray, n_queries: int, say: Callable[[str], None]) -> dict[str, Any]:
    """The same vectors behind the product's own code: the migrated schema (``document_chunks`` with
    its HNSW index, one tenant owning every row, one completed document) searched through
    ``PgVectorStore.query`` with the product's settings (``ef_search``, ``exact_scan_max_rows``): the
    tenant predicate, the live-document join and the exact-scan fallback included.

    Rows are loaded with COPY while the HNSW index is dropped, then the index is recreated from its
    own definition (building it row by row during the load would take far longer)."""
    import hashlib
    import uuid

    import psycopg
    from pgvector.psycopg import register_vector

    from querio.adapters.postgres.migrate import migrate
    from querio.adapters.postgres.store import PostgresDocumentStore
    from querio.adapters.postgres.vectors import HNSW_INDEX, PgVectorStore
    from querio.config import load_settings
    from querio.models import NewDocument, SearchFilters

    settings = load_settings()
    dsn = admin_dsn_for(f"querio_bench_product_{label}")
    migrate(dsn)
    store = PostgresDocumentStore(dsn)
    tenant = "bench"
    doc_id = uuid.uuid4()
    out: dict[str, Any] = {"ef_search": settings.hnsw_ef_search, "exact_scan_max_rows": settings.exact_scan_max_rows}
    try:
        doc, _ = store.claim_document(NewDocument(
            id=doc_id, tenant_id=tenant, filename="synthetic.pdf", original_filename="synthetic.pdf", file_size=1,
            content_sha256=hashlib.sha256(str(n).encode()).hexdigest(), storage_type="filesystem",
            storage_path=f"tenants/{tenant}/synthetic.pdf"))
        with psycopg.connect(dsn, autocommit=True) as conn:
            register_vector(conn)
            indexdef = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (HNSW_INDEX,)).fetchone()[0]
            conn.execute(f"DROP INDEX {HNSW_INDEX}")
            t = time.perf_counter()
            with conn.cursor() as cur, cur.copy(
                    "COPY document_chunks (document_id, tenant_id, content, chunk_index, page_number, page_end,"
                    " embedding) FROM STDIN WITH (FORMAT BINARY)") as cp:
                cp.set_types(["uuid", "text", "text", "int4", "int4", "int4", "vector"])
                for i in range(n):
                    cp.write_row((doc.id, tenant, f"synthetic chunk {i}", i, 1 + i // 4, 1 + i // 4, x[i]))
            out["load_s"] = round(time.perf_counter() - t, 2)
            conn.execute("UPDATE documents SET processing_status = 'completed', processed = true, chunk_count = %s,"
                         " page_count = %s, processing_completed_at = now() WHERE id = %s", (n, 1 + n // 4, doc.id))
            conn.execute("INSERT INTO tenant_usage (tenant_id, chunk_rows) VALUES (%s, %s) ON CONFLICT (tenant_id)"
                         " DO UPDATE SET chunk_rows = EXCLUDED.chunk_rows", (tenant, n))
            conn.execute("SET maintenance_work_mem = '4GB'" if n > 300_000 else "SET maintenance_work_mem = '2GB'")
            conn.execute("SET max_parallel_maintenance_workers = 1")
            say(f"scale: {label}: product schema: HNSW build ({indexdef.split(' USING ')[-1]})")
            t = time.perf_counter()
            conn.execute(indexdef)
            out["build_s"] = round(time.perf_counter() - t, 2)
            conn.execute("VACUUM ANALYZE document_chunks")
            by_id = {r[0]: r[1] for r in conn.execute(
                "SELECT id, chunk_index FROM document_chunks WHERE document_id = %s", (doc.id,)).fetchall()}
        vectors = PgVectorStore(store, ef_search=settings.hnsw_ef_search,
                                exact_scan_max_rows=settings.exact_scan_max_rows)
        out["plan"] = "hnsw" if n > settings.exact_scan_max_rows else "exact (tenant <= QUERIO_EXACT_SCAN_MAX_ROWS)"
        for k, key in ((10, "k10"), (20, "k20")):  # k 20 = what a k=5 search asks for (x candidate_multiplier)
            for i in range(min(20, n_queries)):
                vectors.query(tenant, q[i], k, SearchFilters())
            lat, recall = [], []
            for i in range(n_queries):
                t = time.perf_counter()
                refs = vectors.query(tenant, q[i], k, SearchFilters())
                lat.append((time.perf_counter() - t) * 1000)
                if k == 10:
                    got = {by_id[r.chunk_id] for r in refs}
                    recall.append(len(got & set(truth[i].tolist())) / 10)
            out[key] = {"p50_ms": round(statistics.median(lat), 3), "p95_ms": _pct(lat, 95), "p99_ms": _pct(lat, 99)}
            if recall:
                out[key]["recall_at_10"] = round(float(np.mean(recall)), 4)
        say(f"scale: {label}: product path (PgVectorStore.query, {out['plan']}): "
            f"p50 {out['k10']['p50_ms']} ms, recall@10 {out['k10'].get('recall_at_10')}")
    finally:
        store.close()
    return out


def run_scale(sizes: list[int], n_queries: int, work_dir: Path, say: Callable[[str], None], *,
              ef_sweep: tuple[int, ...] = (40, 100, 200), exact_queries: int = 10, seed: int = 7,
              product: bool = True, skewed: bool = True) -> dict[str, Any]:
    import psutil
    import psycopg
    from pgvector.psycopg import register_vector

    from querio.adapters.postgres.embedded import start_embedded, stop_embedded

    params = product_index_params()
    pg_dir = work_dir / "pg_scale"
    t = time.perf_counter()
    dsn = start_embedded(pg_dir, database="querio_bench_scale")

    def dsn_for(database: str) -> str:
        return start_embedded(pg_dir, database=database)  # the running server; creates the database
    out: dict[str, Any] = {"index_params": params, "clusters": CLUSTERS, "sigma": SIGMA, "dim": DIM,
                           "skewed": {"zipf_s": ZIPF_S, "sigma_range": list(SKEWED_SIGMA)} if skewed else None,
                           "queries": n_queries, "seed_table_ms": {str(k): v for k, v in SEED_TABLE_MS.items()},
                           "server_start_s": round(time.perf_counter() - t, 2), "sizes": {}}
    sampler = MemSampler(_postmaster_pid(pg_dir))
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (CLUSTERS, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    me = psutil.Process()
    # balanced: equal-sized clusters, one spread; skewed: Zipf(0.8) cluster sizes (the largest holds ~6% of
    # the rows) and a spread per cluster in [0.04, 0.10]: big, loose clusters make ANN search harder
    zipf = 1.0 / np.arange(1, CLUSTERS + 1) ** ZIPF_S
    distributions: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = {"balanced": (None, None)}
    if skewed:
        distributions["skewed"] = ((zipf / zipf.sum()),
                                   np.random.default_rng(seed + 1).uniform(*SKEWED_SIGMA, CLUSTERS).astype(np.float32))
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            register_vector(conn)
            out["pgvector"] = conn.execute("SELECT extversion FROM pg_extension WHERE extname='vector'").fetchone()[0]
            out["postgres"] = conn.execute("SHOW server_version").fetchone()[0]
            out["shared_buffers"] = conn.execute("SHOW shared_buffers").fetchone()[0]
            for n in sizes:
                per_dist: dict[str, Any] = {}
                for dist, (weights, sigmas) in distributions.items():
                    say(f"scale: {n:,} vectors ({dist}): generating")
                    res: dict[str, Any] = {}
                    t = time.perf_counter()
                    x = clustered(n, rng, centres, weights=weights, sigmas=sigmas)
                    q = clustered(n_queries, rng, centres, weights=weights, sigmas=sigmas)
                    res["generate_s"] = round(time.perf_counter() - t, 2)
                    t = time.perf_counter()
                    truth = exact_top(x, q)
                    res["numpy_exact_s"] = round(time.perf_counter() - t, 2)
                    table = f"items_{dist}_{n}"
                    conn.execute(f"DROP TABLE IF EXISTS {table}")
                    conn.execute(f"CREATE TABLE {table} (id int8 PRIMARY KEY, embedding vector({DIM}))")
                    say(f"scale: {n:,} vectors ({dist}): COPY")
                    t = time.perf_counter()
                    copy_sql = f"COPY {table} (id, embedding) FROM STDIN WITH (FORMAT BINARY)"
                    with conn.cursor() as cur, cur.copy(copy_sql) as cp:
                        cp.set_types(["int8", "vector"])
                        for i in range(n):
                            cp.write_row((i, x[i]))
                    res["load_s"] = round(time.perf_counter() - t, 2)
                    res["load_rows_per_s"] = round(n / max(res["load_s"], 1e-9))
                    conn.execute(f"VACUUM ANALYZE {table}")
                    say(f"scale: {n:,} vectors ({dist}): HNSW build (m={params['m']}, "
                        f"ef_construction={params['ef_construction']})")
                    # the graph must fit in maintenance_work_mem or the build falls back to a much slower path
                    mwm = "4GB" if n > 300_000 else "2GB"
                    res["maintenance_work_mem"] = mwm
                    conn.execute(f"SET maintenance_work_mem = '{mwm}'")
                    conn.execute("SET max_parallel_maintenance_workers = 1")  # 2 cores: leader + 1 worker
                    before = sampler.current()
                    with MemSampler(sampler.root_pid) as build_mem:
                        t = time.perf_counter()
                        conn.execute(
                            f"CREATE INDEX {table}_hnsw ON {table} USING hnsw (embedding vector_cosine_ops)"
                            f" WITH (m = {params['m']}, ef_construction = {params['ef_construction']})")
                        res["build_s"] = round(time.perf_counter() - t, 2)
                    index_bytes = conn.execute("SELECT pg_relation_size(%s)", (f"{table}_hnsw",)).fetchone()[0]
                    res["index_mb"] = round(index_bytes / 2**20, 1)
                    res["table_mb"] = round(conn.execute("SELECT pg_table_size(%s)", (table,)).fetchone()[0] / 2**20, 1)
                    res["pg_memory_before_build"] = before
                    res["pg_memory_peak_build_uss_mb"] = build_mem.peak_rss
                    res["pg_memory_after_build"] = sampler.current()
                    res["bench_process_rss_mb"] = round(me.memory_info().rss / 2**20, 1)
                    stmt = f"SELECT id FROM {table} ORDER BY embedding <=> %s LIMIT 10"
                    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + stmt, (q[0],)).fetchall())
                    res["uses_index"] = "hnsw" in plan.lower()
                    sweep = {}
                    for ef in sorted({*ef_sweep, params["ef_search"]}):
                        conn.execute(f"SET hnsw.ef_search = {int(ef)}")
                        for i in range(min(20, n_queries)):  # warm the index pages
                            conn.execute(stmt, (q[i],), prepare=True).fetchall()
                        lat, recall = [], []
                        for i in range(n_queries):
                            t = time.perf_counter()
                            ids = [r[0] for r in conn.execute(stmt, (q[i],), prepare=True).fetchall()]
                            lat.append((time.perf_counter() - t) * 1000)
                            recall.append(len(set(ids) & set(truth[i].tolist())) / 10)
                        sweep[str(ef)] = {"p50_ms": round(statistics.median(lat), 3), "p95_ms": _pct(lat, 95),
                                          "p99_ms": _pct(lat, 99), "recall_at_10": round(float(np.mean(recall)), 4)}
                        say(f"scale: {n:,} vectors ({dist}): ef_search={ef}: p50 {sweep[str(ef)]['p50_ms']} ms, "
                            f"recall@10 {sweep[str(ef)]['recall_at_10']}")
                    res["ef_search"] = sweep
                    res["hnsw"] = sweep[str(params["ef_search"])] | {"ef_search": params["ef_search"]}
                    # the exact scan (what the product uses for tenants <= QUERIO_EXACT_SCAN_MAX_ROWS chunks)
                    # (another statement text and no prepared statement: a cached plan would keep the index)
                    conn.execute("SET enable_indexscan = off")
                    exact = f"SELECT id FROM {table} ORDER BY embedding <=> %s LIMIT 10 /* exact */"
                    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + exact, (q[0],)).fetchall())
                    lat, recall = [], []
                    for i in range(min(exact_queries, n_queries)):
                        t = time.perf_counter()
                        ids = [r[0] for r in conn.execute(exact, (q[i],), prepare=False).fetchall()]
                        lat.append((time.perf_counter() - t) * 1000)
                        recall.append(len(set(ids) & set(truth[i].tolist())) / 10)
                    conn.execute("SET enable_indexscan = on")
                    res["exact_scan"] = {"queries": len(lat), "p50_ms": round(statistics.median(lat), 3),
                                         "recall_at_10": round(float(np.mean(recall)), 4),
                                         "uses_index": "hnsw" in plan.lower()}
                    seed_ms = SEED_TABLE_MS.get(n)
                    if seed_ms:
                        res["seed_table_ms"] = seed_ms
                        res["speedup_vs_seed_table"] = round(seed_ms / max(res["hnsw"]["p50_ms"], 1e-9), 1)
                    conn.execute(f"DROP TABLE {table}")
                    if product:
                        try:
                            res["product"] = product_path(dsn_for, f"{dist}_{n}", n, x, q, truth, n_queries, say)
                        except Exception as exc:  # recorded; the raw numbers above still stand
                            res["product"] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
                    per_dist[dist] = res
                    del x, q, truth
                res = per_dist["balanced"]
                if "skewed" in per_dist:
                    res["skewed"] = per_dist["skewed"]
                out["sizes"][str(n)] = res
    finally:
        stop_embedded(pg_dir)
    return out
