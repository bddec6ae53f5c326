"""Retrieval quality on an eval set, in-process, for several search modes and alphas.

  python bench/eval_retrieval.py --data-dir DIR --questions Q.jsonl [--ingest PDF_DIR]

Scores recall@1/3/5/10 and MRR@10 by (document, page) exactly like ../shared/eval/score_querio.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def score(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks)
    out = {f"recall_at_{k}": round(sum(1 for r in ranks if r and r <= k) / n, 3) for k in (1, 3, 5, 10)}
    out["mrr_at_10"] = round(sum(1 / r for r in ranks if r and r <= 10) / n, 3)
    return out


def load_questions(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def rank_of(hits, q: dict) -> int | None:
    """1-based rank of the first hit on the right (document, page), or None."""
    return next((i for i, h in enumerate(hits, 1) if h.filename == q["document"] and h.page in q["pages"]), None)


def evaluate(service, who, qs: list[dict], *, alpha: float | None = None, mode: str | None = None,
             k: int = 10) -> tuple[dict[str, float], list[int | None]]:
    """Score ``qs`` through ``service.search`` (``mode`` "vector"/"text"/"hybrid", or an explicit ``alpha``)."""
    from querio.models import SearchRequest

    ranks: list[int | None] = []
    t = time.perf_counter()
    for q in qs:
        req = SearchRequest(query=q["question"], k=k, alpha=alpha, **({"mode": mode} if mode else {}))
        ranks.append(rank_of(service.search(who, req).results, q))
    out = score(ranks) | {"ms_per_query": round((time.perf_counter() - t) * 1000 / len(qs), 1)}
    return out, ranks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--questions", required=True)
    ap.add_argument("--ingest")
    ap.add_argument("--alphas", default="0,0.3,0.5,0.7,1")
    ap.add_argument("--show-misses", action="store_true")
    args = ap.parse_args()

    from querio.config import load_settings
    from querio.models import Principal, SearchRequest
    from querio.wiring import build_service

    service = build_service(load_settings(data_dir=Path(args.data_dir), result_cache=False))
    who = Principal(tenant_id=service.settings.local_tenant, user_id="bench")
    if args.ingest:
        for pdf in sorted(Path(args.ingest).glob("*.pdf")):
            print(pdf.name, service.ingest(who, pdf.read_bytes(), pdf.name).status, file=sys.stderr)
    qs = load_questions(args.questions)
    results = {}
    for alpha in (float(a) for a in args.alphas.split(",")):
        ranks, misses = [], []
        t = time.perf_counter()
        for q in qs:
            hits = service.search(who, SearchRequest(query=q["question"], k=10, alpha=alpha)).results
            rank = rank_of(hits, q)
            ranks.append(rank)
            if not rank or rank > 5:
                misses.append((q["id"], rank, [(h.filename, h.page) for h in hits[:3]], q["pages"]))
        results[alpha] = score(ranks) | {"ms_per_query": round((time.perf_counter() - t) * 1000 / len(qs), 1)}
        print(f"alpha={alpha}", json.dumps(results[alpha]))
        if args.show_misses:
            for m in misses:
                print("   miss", m)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
