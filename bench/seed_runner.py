#!/usr/bin/env python3
"""Run the seed baseline (``../shared/bench/seed_baseline.py``) unchanged, then measure more on its index.

Runs inside the baseline's own virtual environment (``bench/.venv-seed``, made by ``bench/run.py``).

1. ``seed_baseline.main()`` runs as is (its own argv: PDF_DIR --questions Q --k 10): LangChain
   PyPDFLoader -> RecursiveCharacterTextSplitter(1000/200) -> HuggingFaceEmbeddings
   all-MiniLM-L6-v2 -> Chroma.from_documents. Its JSON is kept verbatim under ``"seed"``.
2. The Chroma store it built is captured (``Chroma.from_documents`` is wrapped, the final
   ``shutil.rmtree`` of the persist directory is deferred) and then used for:
   - ranks by (document, page) at k=10 -> recall@1/3/5/10 and MRR@10 (the seed only reports one k);
   - ``similarity_search`` latency over the same perturbed query list Querio is timed on.

  python seed_runner.py --seed-script PATH --pdfs DIR --questions Q.jsonl --queries QUERIES.json \
      --latency-k 5 --out OUT.json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from percentiles import pct

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")




def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed-script", required=True)
    ap.add_argument("--pdfs", required=True)
    ap.add_argument("--questions", required=True)
    ap.add_argument("--queries", help="JSON list of query strings to time similarity_search on")
    ap.add_argument("--latency-k", type=int, default=5)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    spec = importlib.util.spec_from_file_location("seed_baseline", args.seed_script)
    assert spec and spec.loader
    seed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seed)

    from langchain_chroma import Chroma

    captured: dict = {}
    original = Chroma.from_documents.__func__  # classmethod's function

    def from_documents(cls, *a, **kw):
        db = original(cls, *a, **kw)
        captured["db"] = db
        captured["persist"] = kw.get("persist_directory")
        return db

    Chroma.from_documents = classmethod(from_documents)
    deferred: list[str] = []
    real_rmtree = shutil.rmtree

    def rmtree(path, *a, **kw):  # keep the index alive until we are done with it
        deferred.append(str(path))

    shutil.rmtree = rmtree
    seed_out = Path(args.out).with_suffix(".seed.json")
    sys.argv = ["seed_baseline.py", args.pdfs, "--questions", args.questions, "--k", "10",
                "--out", str(seed_out)]
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            seed.main()
    finally:
        shutil.rmtree = real_rmtree
    result: dict = {"seed": json.loads(seed_out.read_text())}
    seed_out.unlink(missing_ok=True)

    db = captured["db"]
    qs = [json.loads(line) for line in Path(args.questions).read_text().splitlines() if line.strip()]
    ranks: list[int | None] = []
    for q in qs:
        docs = db.similarity_search(q["question"], k=10)
        rank = None
        for i, d in enumerate(docs, 1):
            src = Path(d.metadata.get("source", "")).name
            page = int(d.metadata.get("page", -1)) + 1  # PyPDFLoader pages are 0-based
            if src == q["document"] and page in q["pages"]:
                rank = i
                break
        ranks.append(rank)
    n = len(qs)
    quality = {f"recall_at_{k}": round(sum(1 for r in ranks if r and r <= k) / n, 3) for k in (1, 3, 5, 10)}
    quality["mrr_at_10"] = round(sum(1 / r for r in ranks if r) / n, 3)
    quality["ranks"] = ranks
    result["quality"] = quality

    if args.queries:
        queries = json.loads(Path(args.queries).read_text())
        for q in queries[:10]:  # warm-up
            db.similarity_search(q + " warm", k=args.latency_k)
        lat = []
        for q in queries:
            t = time.perf_counter()
            db.similarity_search(q, k=args.latency_k)
            lat.append((time.perf_counter() - t) * 1000)
        emb = db.embeddings
        embed_lat = []
        for q in queries[:50]:
            t = time.perf_counter()
            emb.embed_query(q + " e")
            embed_lat.append((time.perf_counter() - t) * 1000)
        result["latency"] = {
            "queries": len(queries), "k": args.latency_k,
            "p50_ms": round(statistics.median(lat), 3), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99),
            "mean_ms": round(statistics.fmean(lat), 3), "embed_only_p50_ms": round(statistics.median(embed_lat), 3),
            "samples_ms": [round(x, 3) for x in lat],
        }

    import importlib.metadata as md

    result["packages"] = {}
    for name in ("torch", "sentence-transformers", "transformers", "langchain-core", "langchain-community",
                 "langchain-chroma", "langchain-huggingface", "langchain-text-splitters", "chromadb", "pypdf",
                 "numpy"):
        with contextlib.suppress(md.PackageNotFoundError):
            result["packages"][name] = md.version(name)
    result["python"] = sys.version.split()[0]
    for path in deferred:
        real_rmtree(path, ignore_errors=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
