#!/usr/bin/env python3
"""Where a warm query's time goes: pyinstrument over POST /api/search through the router, in-process.

  .venv/bin/pip install pyinstrument
  .venv/bin/python bench/run.py --quick --only ingest --keep-work     # prints the scratch dir; corpus/ is in it
  .venv/bin/python bench/profile_query.py --data-dir /tmp/querio_bench_XXXX/corpus [--n 200] [--html out.html]

Also prints a manual split per query: embedding, vector search, full-text search, the rest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--questions", default=str(Path(__file__).resolve().parents[2] / "shared/eval/questions.jsonl"))
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--html")
    args = ap.parse_args()

    from eval_retrieval import load_questions
    from router_client import RouterClient
    from run import perturbed, warm_embedder

    from querio.config import load_settings
    from querio.models import SearchFilters
    from querio.wiring import build_service

    svc = build_service(load_settings(data_dir=Path(args.data_dir), result_cache=False,
                                      rate_limit_per_minute=1_000_000, redis_url=None))
    warm_embedder(svc.embedder)
    qs = load_questions(args.questions)
    client = RouterClient(svc)
    for q in perturbed(qs, 10, "pw"):
        client.search(q, args.k)
    queries = perturbed(qs, args.n, "prof")

    # manual split (separate pass, same kind of queries)
    tenant = svc.settings.local_tenant
    n = args.k * svc.settings.candidate_multiplier
    split: dict[str, list[float]] = {"embed": [], "vector": [], "fulltext": [], "router_total": []}
    for q in perturbed(qs, min(args.n, 100), "split"):
        t = time.perf_counter()
        vec = svc.embedder.embed_query(q)
        split["embed"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        svc.vectors.query(tenant, vec, n, SearchFilters())
        split["vector"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        svc.documents.fulltext_search(tenant, q, n, SearchFilters())
        split["fulltext"].append((time.perf_counter() - t) * 1000)
        ms, _ = client.search(q + " r", args.k)
        split["router_total"].append(ms)
    for name, v in split.items():
        print(f"{name:>13}: p50 {statistics.median(v):7.2f} ms")

    try:
        from pyinstrument import Profiler
    except ImportError:
        print("pyinstrument is not installed: .venv/bin/pip install pyinstrument", file=sys.stderr)
        return
    prof = Profiler(interval=0.0005)
    prof.start()
    for q in queries:
        client.search(q, args.k)
    prof.stop()
    client.close()
    print(prof.output_text(unicode=True, color=False, show_all=False))
    if args.html:
        Path(args.html).write_text(prof.output_html())


if __name__ == "__main__":
    main()
