"""Benchmark results (the JSON written by ``bench/run.py``) → targets, Markdown tables and a PNG.

Pure functions of the results dict, so they can be re-run on any saved JSON:

  python bench/report.py bench/results/2026-11-29.json   # rewrites the .md and .png beside it
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: The issue's targets (goals for the product, not test assertions).
TARGETS_TEXT = {
    "ingest_speedup": "ingest ≥ 5x the seed baseline's pages/s",
    "ingest_speedup_issue13": "ingest ≥ 2x the seed baseline's pages/s (issue 13; stretch 2.5x)",
    "recall_at_5": "hybrid recall@5 ≥ 0.97",
    "mrr_at_10": "hybrid MRR@10 ≥ 0.85",
    "quality_issue13": "quality held (issue 13): hybrid recall@5 ≥ 0.938, MRR@10 ≥ 0.806, vector recall@10 ≥ 0.979",
    "query_p50": "warm query p50 ≤ 1/3 of the baseline's similarity_search p50",
    "vector_100k": "vector search at 100K: p50 ≤ 5 ms with recall@10 ≥ 0.95",
    "vector_1m": "vector search at 1M: p50 ≤ 10 ms with recall@10 ≥ 0.95",
    "cached_p50": "cached query p50 ≤ 2 ms through the router (Redis)",
    "cold_start": "cold start to first answer ≤ 1.5 s",
    "concurrency_errors": "no errors under load (1, 4, 16 connections)",
    "health_during_upload": "/api/health p99 < 50 ms while a long upload runs",
    "search_throughput_4": "4 connections give more search throughput than 1",
    "search_10k": "hybrid at 10K chunks: p50 ≤ 8 ms, p99 ≤ 20 ms, vector recall@10 ≥ 0.98, BM25 recall@10 ≥ 0.98",
    "search_100k": "hybrid at 100K chunks: p50 ≤ 12 ms, p99 ≤ 30 ms, vector recall@10 ≥ 0.95, BM25 recall@10 ≥ 0.98",
    "search_1m": "hybrid at 1M chunks (one tenant among others): p50 ≤ 25 ms, p99 ≤ 60 ms, recall@10 ≥ 0.95 / 0.98",
    "search_1pct": "hybrid for a 1% tenant inside the 1M table: p50 ≤ 25 ms, p99 ≤ 60 ms, recall@10 ≥ 0.95 / 0.98",
    "search_filtered": "hybrid with a selective filter (document, pages, tag): k rows, p50 ≤ 25 ms, p99 ≤ 60 ms",
    "search_vs_seed_10k": "hybrid p50 at 10K ≥ 2x faster than the seed's Chroma similarity_search (same corpus)",
}

#: (tenant key in the section's JSON, size key, target name, p50 ms, p99 ms, vector recall floor)
SEARCH_GOALS = [("t10k", "10000", "search_10k", 8.0, 20.0, 0.98), ("t100k", "100000", "search_100k", 12.0, 30.0, 0.95),
                ("t1000k", "1000000", "search_1m", 25.0, 60.0, 0.95), ("t1pct", "1000000", "search_1pct", 25.0, 60.0,
                                                                          0.95)]
TEXT_RECALL_FLOOR = 0.98


def _ok(sections: dict[str, Any], name: str) -> dict[str, Any] | None:
    s = sections.get(name)
    return s if isinstance(s, dict) and s.get("status") == "ok" else None


def _get(d: Any, *path: Any) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def compute_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target: ``name``, ``target`` (text), ``measured`` (text), ``met`` (True/False/None)."""
    s = results.get("sections", {})
    rows: list[dict[str, Any]] = []

    def add(name: str, measured: str | None, met: bool | None) -> None:
        rows.append({"name": name, "target": TARGETS_TEXT[name], "measured": measured or "not measured",
                     "met": met})

    ing, base = _ok(s, "ingest"), _ok(s, "baseline")
    ours = _get(ing, "pipeline", "pages_per_s")
    theirs = _get(base, "seed", "ingest_pages_per_s")
    if ours and theirs:
        ratio = ours / theirs
        add("ingest_speedup", f"{ours:.1f} vs {theirs:.1f} pages/s = {ratio:.2f}x", ratio >= 5)
        add("ingest_speedup_issue13", f"{ratio:.2f}x" + (" (stretch met)" if ratio >= 2.5 else ""), ratio >= 2)
    else:
        add("ingest_speedup", None, None)
        add("ingest_speedup_issue13", None, None)

    hybrid = _get(_ok(s, "quality"), "modes", "hybrid")
    if hybrid:
        add("recall_at_5", f"{hybrid['recall_at_5']:.3f}", hybrid["recall_at_5"] >= 0.97)
        add("mrr_at_10", f"{hybrid['mrr_at_10']:.3f}", hybrid["mrr_at_10"] >= 0.85)
    else:
        add("recall_at_5", None, None)
        add("mrr_at_10", None, None)
    vector = _get(_ok(s, "quality"), "modes", "vector")
    if hybrid and vector:
        add("quality_issue13", f"hybrid {hybrid['recall_at_5']:.3f} / {hybrid['mrr_at_10']:.3f},"
            f" vector recall@10 {vector['recall_at_10']:.3f}",
            hybrid["recall_at_5"] >= 0.938 and hybrid["mrr_at_10"] >= 0.806 and vector["recall_at_10"] >= 0.979)
    else:
        add("quality_issue13", None, None)

    lat = _ok(s, "query_latency")
    ours = _get(lat, "router", "p50_ms")
    theirs = _get(base, "latency", "p50_ms")
    if ours is not None and theirs:
        add("query_p50", f"{ours:.2f} ms vs baseline {theirs:.2f} ms (≤ {theirs / 3:.2f} ms) = "
            f"{theirs / ours:.2f}x faster", ours <= theirs / 3)
    else:
        add("query_p50", f"{ours:.2f} ms (no baseline)" if ours is not None else None, None)

    scale = _ok(s, "scale")
    for name, size, limit in (("vector_100k", "100000", 5.0), ("vector_1m", "1000000", 10.0)):
        h = _get(scale, "sizes", size, "hnsw")
        prods = [(d, _get(r, "product", "k10"), _get(r, "hnsw")) for d, r in
                 (("balanced", _get(scale, "sizes", size)), ("skewed", _get(scale, "sizes", size, "skewed")))]
        prods = [(d, pr, hw) for d, pr, hw in prods if pr and "recall_at_10" in pr]
        if prods:  # judged on the product's own query path, every data set; the bare index query beside it
            parts = []
            for d, pr, hw in prods:
                raw = f" (bare HNSW {hw['p50_ms']:.2f} ms, {hw['recall_at_10']:.3f})" if hw else ""
                parts.append(f"{d}: p50 {pr['p50_ms']:.2f} ms, recall@10 {pr['recall_at_10']:.3f}{raw}")
            add(name, "PgVectorStore.query " + "; ".join(parts),
                all(pr["p50_ms"] <= limit and pr["recall_at_10"] >= 0.95 for _, pr, _ in prods))
        elif h:
            add(name, f"p50 {h['p50_ms']:.2f} ms, recall@10 {h['recall_at_10']:.3f} (ef_search {h['ef_search']})",
                h["p50_ms"] <= limit and h["recall_at_10"] >= 0.95)
        else:
            add(name, None, None)

    hit = _get(_ok(s, "cache"), "redis", "hit", "p50_ms")
    add("cached_p50", f"{hit:.2f} ms" if hit is not None else None, None if hit is None else hit <= 2.0)

    cold = _get(_ok(s, "cold_start"), "querio", "median", "total_s")
    seed_cold = _get(_ok(s, "cold_start"), "baseline", "median", "import_and_model_load_s")
    if cold is not None:
        extra = f" (baseline import + model load {seed_cold:.2f} s)" if seed_cold else ""
        add("cold_start", f"{cold:.2f} s{extra}", cold <= 1.5)
    else:
        add("cold_start", None, None)

    conc = _ok(s, "concurrency")
    if conc and conc.get("levels"):
        errs = sum(int(lv.get("errors", 0)) for lv in conc["levels"])
        add("concurrency_errors", f"{errs} errors", errs == 0)
        by = {lv["connections"]: lv for lv in conc["levels"]}
        if 1 in by and 4 in by:
            one, four = by[1]["throughput_rps"], by[4]["throughput_rps"]
            add("search_throughput_4", f"{one} → {four} req/s ({four / max(one, 1e-9):.2f}x)", four > one)
        else:
            add("search_throughput_4", None, None)
    else:
        add("concurrency_errors", None, None)
        add("search_throughput_4", None, None)
    hu = _get(conc, "health_during_upload")
    if hu and hu.get("p99_ms") is not None:
        add("health_during_upload", f"p99 {hu['p99_ms']:.1f} ms, p50 {hu['p50_ms']:.1f} ms over {hu['requests']} "
            f"checks during a {hu['upload_s']:.0f} s upload ({hu.get('pages')} pages)", hu["p99_ms"] < 50)
    else:
        add("health_during_upload", None, None)

    ss = _ok(s, "search_scale")
    for tenant, size, name, p50, p99, vfloor in SEARCH_GOALS:
        r = _get(ss, "sizes", size, tenant)
        if not r:
            add(name, None, None)
            continue
        h, rec = r["hybrid"], _get(r, "recall_at_10", "none") or {}
        text = rec.get("text")
        add(name, f"p50 {h['p50_ms']:.1f} ms, p99 {h['p99_ms']:.1f} ms; recall@10 vector {rec.get('vector')}, "
            f"BM25 {text}; vector leg p50 {r['vector']['p50_ms']:.1f} ms, text leg p50 {r['text']['p50_ms']:.1f} ms",
            h["p50_ms"] <= p50 and h["p99_ms"] <= p99 and rec.get("vector", 0) >= vfloor
            and (text is None or text >= TEXT_RECALL_FLOOR))
    filtered = [(size, tenant, f, v) for tenant, size, *_ in SEARCH_GOALS
                for f, v in (_get(ss, "sizes", size, tenant, "filtered") or {}).items()]
    big = [x for x in filtered if x[0] == max((x[0] for x in filtered), key=int)] if filtered else []
    if big:
        add("search_filtered", "; ".join(f"{t} {f}: p50 {v['p50_ms']:.1f} / p99 {v['p99_ms']:.1f} ms, "
                                         f"{v['min_results']}-{v['max_results']} rows" for _, t, f, v in big),
            all(v["p50_ms"] <= 25 and v["p99_ms"] <= 60 and v["min_results"] >= 10 for *_, v in big))
    else:
        add("search_filtered", None, None)
    seed10 = _get(ss, "sizes", "10000", "seed_chroma", "p50_ms")
    ours10 = _get(ss, "sizes", "10000", "t10k", "hybrid", "p50_ms")
    if seed10 and ours10:
        add("search_vs_seed_10k", f"{ours10:.1f} ms vs Chroma {seed10:.1f} ms = {seed10 / ours10:.2f}x faster",
            seed10 / ours10 >= 2)
    else:
        add("search_vs_seed_10k", None, None)
    return rows


# --- Markdown ----------------------------------------------------------------------------------------

def _f(v: Any, nd: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(_f(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return [*out, ""]


def _failed(lines: list[str], sec: dict[str, Any] | None) -> bool:
    if sec is None:
        lines += ["*not run*", ""]
        return True
    if sec.get("status") != "ok":
        lines += [f"**failed**: `{sec.get('error', 'unknown error')}`", ""]
        return True
    return False


def to_markdown(results: dict[str, Any]) -> str:
    meta = results.get("meta", {})
    m = meta.get("machine", {})
    s = results.get("sections", {})
    base = _ok(s, "baseline")
    lines = [f"# Querio benchmark, {meta.get('date', '?')} ({meta.get('mode', '?')} mode)", ""]
    lines += [f"Machine: {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores, "
              f"{m.get('memory_gb', '?')} GB RAM, {m.get('os', '?')}, Python {m.get('python', '?')}. "
              f"Embedder: `{meta.get('embedder', '?')}`. Commit `{str(meta.get('git_commit', '?'))[:10]}`"
              f"{' (dirty tree)' if meta.get('git_dirty') else ''}. Load average at start / end: "
              f"{meta.get('loadavg_start', '?')} / {meta.get('loadavg_end', '?')}. "
              f"Run took {_f(meta.get('duration_s'), 0)} s.", ""]

    lines += ["## Targets", ""]
    rows = [[r["target"], r["measured"], "✅ met" if r["met"] else ("❌ missed" if r["met"] is False else "-")]
            for r in results.get("targets") or compute_targets(results)]
    lines += _table(["target", "measured", "status"], rows)

    lines += ["## 1. Ingest throughput", ""]
    ing = s.get("ingest")
    if not _failed(lines, ing):
        assert ing is not None
        p, st = ing.get("pipeline", {}), ing.get("staged", {})
        seed = _get(base, "seed") or {}
        seed_rate = seed.get("ingest_pages_per_s")

        def vs_seed(rate: Any) -> str:
            return f"{rate / seed_rate:.2f}x" if rate and seed_rate else ""

        label = f"Querio, whole pipeline (querio ingest: service.ingest, {p.get('workers', 1)} files in flight)"
        rows = [[label, p.get("pdfs"), p.get("pages"), p.get("chunks"), p.get("seconds"), p.get("pages_per_s"),
                 p.get("chunks_per_s"), vs_seed(p.get("pages_per_s"))]]
        if st:
            rows.append(["Querio, stages called directly", st.get("pdfs"), st.get("pages"), st.get("chunks"),
                         st.get("seconds"), st.get("pages_per_s"), st.get("chunks_per_s"),
                         vs_seed(st.get("pages_per_s"))])
        if seed:
            rows.append(["seed baseline (LangChain + Chroma)", seed.get("pdfs"), seed.get("pages"), seed.get("chunks"),
                         seed.get("ingest_s"), seed_rate,
                         round(seed["chunks"] / seed["ingest_s"], 2) if seed.get("ingest_s") else None, "1x"])
        lines += _table(["system", "PDFs", "pages", "chunks", "seconds", "pages/s", "chunks/s", "pages/s vs seed"],
                        rows)
        if ing.get("speedup_vs_baseline"):
            lines += [f"Speed-up over the baseline: **{ing['speedup_vs_baseline']:.2f}x** pages/s.", ""]
        pph, sph = p.get("phases_s") or {}, st.get("phases_s") or {}
        names = list(dict.fromkeys([*pph, *sph]))
        if names:
            # busy seconds summed over the files in flight (p["workers"] at once): more than the wall time
            ptot = sum(pph.values()) or 1.0
            stot = sum(sph.values()) or 1.0
            header = ["phase", f"whole pipeline s (busy, {p.get('workers', 1)} files in flight)",
                      "share of busy time"] + (["stages called directly s", "share"] if sph else [])
            rows = []
            for k in names:
                row: list[Any] = [k, pph.get(k), f"{100 * pph[k] / ptot:.1f}%" if k in pph else ""]
                if sph:
                    row += [sph.get(k), f"{100 * sph[k] / stot:.1f}%" if k in sph else ""]
                rows.append(row)
            if seed:
                rows.append(["baseline: parse (PyPDFLoader)", seed.get("parse_s"), ""] + (["", ""] if sph else []))
                rows.append(["baseline: split + embed + store (Chroma.from_documents)", seed.get("embed_and_store_s"),
                             ""] + (["", ""] if sph else []))
            lines += [f"Phases (model loaded beforehand in {_f(p.get('model_load_s'))} s; embedder "
                      f"`{p.get('embedder', '?')}`; parse {_f(p.get('parse_pages_per_s'), 1)} pages/s, embed "
                      f"{_f(p.get('embed_chunks_per_s'), 1)} chunks/s):", ""]
            lines += _table(header, rows)

    lines += ["## 2. Retrieval quality (by document and page, k = 10)", ""]
    q = s.get("quality")
    if not _failed(lines, q):
        assert q is not None
        keys = ["recall_at_1", "recall_at_3", "recall_at_5", "recall_at_10", "mrr_at_10"]
        rows = [[f"Querio {mode}" + (f" (alpha {v.get('alpha')})" if v.get("alpha") is not None else "")]
                + [v.get(k) for k in keys] for mode, v in q.get("modes", {}).items()]
        bq = _get(base, "quality")
        if bq:
            rows.append(["seed baseline (Chroma similarity_search)"] + [bq.get(k) for k in keys])
        lines += [f"{q.get('questions')} questions from `{q.get('questions_file')}`.", ""]
        lines += _table(["system", "recall@1", "recall@3", "recall@5", "recall@10", "MRR@10"],
                        [[r[0], *[_f(x, 3) for x in r[1:]]] for r in rows])

    lines += ["## 3. Warm query latency (router in-process, query embedding included, every query a cache miss)", ""]
    lat = s.get("query_latency")
    if not _failed(lines, lat):
        assert lat is not None
        r = lat.get("router", {})
        rows = [["Querio POST /api/search (router)", r.get("queries"), r.get("p50_ms"), r.get("p95_ms"),
                 r.get("p99_ms")],
                ["  of which service.search (took_ms)", "", _get(lat, "service_took", "p50_ms"),
                 _get(lat, "service_took", "p95_ms"), _get(lat, "service_took", "p99_ms")],
                ["  of which query embedding alone", _get(lat, "embed_only", "queries"),
                 _get(lat, "embed_only", "p50_ms"), _get(lat, "embed_only", "p95_ms"), None]]
        bl = _get(base, "latency")
        if bl:
            rows.append(["seed baseline similarity_search", bl.get("queries"), bl.get("p50_ms"), bl.get("p95_ms"),
                         bl.get("p99_ms")])
            rows.append(["  of which query embedding alone", 50, bl.get("embed_only_p50_ms"), None, None])
        lines += [f"k = {lat.get('k')}, mode {lat.get('mode')}, {lat.get('warmup')} warm-up queries.", ""]
        lines += _table(["system", "queries", "p50 ms", "p95 ms", "p99 ms"], rows)
        if lat.get("speedup_vs_baseline"):
            lines += [f"Baseline p50 / Querio p50: **{lat['speedup_vs_baseline']:.2f}x** (target ≥ 3x).", ""]

    lines += ["## 4. Scale: pgvector HNSW on synthetic clustered vectors", ""]
    sc = s.get("scale")
    if not _failed(lines, sc):
        assert sc is not None
        ip = sc.get("index_params", {})
        lines += [f"{sc.get('dim')}-d normalised vectors around {sc.get('clusters')} gaussian clusters; "
                  f"{sc.get('queries')} queries; PostgreSQL {sc.get('postgres')}, pgvector {sc.get('pgvector')}; "
                  f"HNSW m = {ip.get('m')}, ef_construction = {ip.get('ef_construction')} (from "
                  f"`{ip.get('source')}`), ef_search = {ip.get('ef_search')} (QUERIO_HNSW_EF_SEARCH). "
                  "Latency is one client round trip over the Unix socket.", ""]
        def each() -> list[tuple[str, str, dict[str, Any]]]:
            out = []
            for n, r in sc.get("sizes", {}).items():
                out.append((n, "balanced", r))
                if isinstance(r.get("skewed"), dict):
                    out.append((n, "skewed", r["skewed"]))
            return out

        sk = sc.get("skewed") or {}
        lines += [f"Data sets: *balanced* = equal-sized clusters, spread {sc.get('sigma')}; *skewed* = Zipf("
                  f"{sk.get('zipf_s', '?')}) cluster sizes and a spread per cluster in {sk.get('sigma_range', '?')}"
                  " (big, loose clusters: harder for HNSW).", ""]
        rows = []
        for n, dist, r in each():
            h = r.get("hnsw", {})
            rows.append([f"{int(n):,}", dist, r.get("load_rows_per_s"), r.get("build_s"), r.get("index_mb"),
                         r.get("pg_memory_peak_build_uss_mb"), h.get("p50_ms"), h.get("p99_ms"),
                         _f(h.get("recall_at_10"), 3), _get(r, "exact_scan", "p50_ms"), r.get("seed_table_ms"),
                         _f(r.get("speedup_vs_seed_table"), 1)])
        lines += ["Bare table `(id, embedding vector(384))`, `ORDER BY embedding <=> $1 LIMIT 10`:", ""]
        lines += _table(["vectors", "data", "COPY rows/s", "build s", "index MB", "PG peak MB (USS) in build",
                         "HNSW p50 ms", "HNSW p99 ms", "recall@10", "exact scan p50 ms", "seed table ms",
                         "x faster (HNSW)"], rows)
        prows = []
        for n, dist, r in each():
            pr = r.get("product")
            if not pr:
                continue
            if pr.get("error"):
                prows.append([f"{int(n):,}", dist, f"failed: {pr['error'][:120]}", "", "", "", "", "", ""])
                continue
            k10, k20 = pr.get("k10", {}), pr.get("k20", {})
            prows.append([f"{int(n):,}", dist, pr.get("plan"), pr.get("build_s"), k10.get("p50_ms"),
                          k10.get("p99_ms"), _f(k10.get("recall_at_10"), 3), k20.get("p50_ms"),
                          r.get("seed_table_ms")])
        if prows:
            lines += ["The product's query path: the migrated schema, one tenant owning all rows, "
                      "`PgVectorStore.query` (tenant predicate, live-document join, exact scan for tenants with "
                      "at most `QUERIO_EXACT_SCAN_MAX_ROWS` chunks, HNSW above):", ""]
            lines += _table(["vectors", "data", "plan", "index build s", "p50 ms (k 10)", "p99 ms (k 10)", "recall@10",
                             "p50 ms (k 20, a k=5 search's candidates)", "seed table ms"], prows)
        sweep_rows = []
        for n, dist, r in each():
            for ef, v in r.get("ef_search", {}).items():
                sweep_rows.append([f"{int(n):,}", dist, ef, v.get("p50_ms"), _f(v.get("recall_at_10"), 3)])
        if sweep_rows:
            lines += ["ef_search sweep (bare table):", ""]
            lines += _table(["vectors", "data", "ef_search", "p50 ms", "recall@10"], sweep_rows)

    lines += ["## 4b. Search at scale: real text through the router (k = 10, result cache off)", ""]
    ss = s.get("search_scale")
    if not _failed(lines, ss):
        assert ss is not None
        st = ss.get("settings", {})
        lines += [f"Base corpus: {ss.get('base_chunks')} chunks of {', '.join(ss.get('manuals', []))}; bigger "
                  "tenants add variants of those chunks (two thirds of a chunk's sentences shuffled with two of a "
                  f"donor chunk of the same manual, {int(100 * ss.get('word_swap', 0))}% of words replaced by words "
                  "of that manual). Vectors: real embeddings at 10K; beyond, the source's and the donor's real "
                  f"vectors mixed like the text, plus noise (sigma {ss.get('sigma')}), re-normalised. "
                  f"{ss.get('queries')} perturbed eval questions per tenant, each embedded (cache miss). Settings: "
                  + ", ".join(f"{k} {v}" for k, v in st.items()) + ".", ""]
        rows = []
        for size, res in ss.get("sizes", {}).items():
            for tenant, r in res.items():
                if not isinstance(r, dict) or "hybrid" not in r:
                    continue
                rec = _get(r, "recall_at_10", "none") or {}
                rows.append([f"{tenant} ({_f(r['chunks'])} of a {_f(int(size))}-chunk table)", r["hybrid"]["p50_ms"],
                             r["hybrid"]["p99_ms"], r["vector"]["p50_ms"], r["text"]["p50_ms"], rec.get("vector"),
                             rec.get("text"), _get(r, "text_leg_sql", "product_p50_ms"),
                             _get(r, "text_leg_sql", "every_posting_p50_ms"), res.get("loadavg_start")])
        lines += _table(["tenant", "hybrid p50 ms", "hybrid p99 ms", "vector-only p50 ms", "text-only p50 ms",
                         "vector recall@10", "BM25 recall@10", "BM25 SQL p50 ms", "exact BM25 SQL p50 ms",
                         "load avg"], rows)
        rows = []
        for res in ss.get("sizes", {}).values():
            for tenant, r in res.items():
                for f, v in (r.get("filtered") or {}).items() if isinstance(r, dict) else ():
                    rows.append([tenant, f, v["rows_matching"], v["p50_ms"], v["p99_ms"],
                                 f"{v['min_results']}-{v['max_results']}", _get(r, "recall_at_10", f, "vector"),
                                 _get(r, "recall_at_10", f, "text")])
        if rows:
            lines += ["Selective filters (hybrid):", ""]
            lines += _table(["tenant", "filter", "matching chunks", "p50 ms", "p99 ms", "results", "vector recall@10",
                             "BM25 recall@10"], rows)
        seed = _get(ss, "sizes", "10000", "seed_chroma")
        if seed:
            lines += ["Seed's Chroma `similarity_search` on the same 10K chunks and vectors: "
                      + (f"p50 {seed['p50_ms']} ms, p99 {seed['p99_ms']} ms." if "p50_ms" in seed
                         else f"failed: `{seed.get('error')}`"), ""]

    lines += ["## 5. Result cache through the router (real Redis)", ""]
    c = s.get("cache")
    if not _failed(lines, c):
        assert c is not None
        rows = []
        for name, key in (("Redis", "redis"), ("in-process (no REDIS_URL)", "memory")):
            v = c.get(key)
            if v:
                rows.append([f"{name}: miss (embed + search + set)", v["miss"].get("queries"), v["miss"].get("p50_ms"),
                             v["miss"].get("p95_ms")])
                rows.append([f"{name}: hit", v["hit"].get("queries"), v["hit"].get("p50_ms"), v["hit"].get("p95_ms")])
        lines += [f"Redis {c.get('redis_version', '?')} at `{c.get('redis_url', '?')}` (keys deleted afterwards: "
                  f"{c.get('keys_deleted', '?')}). Each fresh query is sent twice: a miss, then a hit. Repeats "
                  f"not answered from the cache (Redis adapter back-off after a 0.25 s timeout): "
                  f"{_get(c, 'redis', 'repeats_not_cached')}.", ""]
        lines += _table(["path", "queries", "p50 ms", "p95 ms"], rows)

    lines += ["## 6. Cold start (fresh process → first answer)", ""]
    cs = s.get("cold_start")
    if not _failed(lines, cs):
        assert cs is not None
        qm = _get(cs, "querio", "median") or {}
        bm = _get(cs, "baseline", "median") or {}
        rows = [[k, v] for k, v in qm.items() if isinstance(v, (int, float)) and k.endswith("_s")]
        lines += [f"Querio (median of {_get(cs, 'querio', 'runs') or '?'} runs, query handler → "
                  f"`{qm.get('embedder', cs.get('embedder', '?'))}`):", ""]
        lines += _table(["phase", "seconds"], rows)
        if bm:
            lines += [f"Seed baseline (median of {_get(cs, 'baseline', 'runs')} runs):", ""]
            lines += _table(["phase", "seconds"], [[k, v] for k, v in bm.items() if k.endswith("_s")])
        elif _get(cs, "baseline", "error"):
            lines += [f"Baseline cold start failed: `{_get(cs, 'baseline', 'error')}`", ""]

    lines += ["## 7. Concurrency (`querio serve` on 127.0.0.1, closed-loop Python client)", ""]
    cc = s.get("concurrency")
    if not _failed(lines, cc):
        assert cc is not None
        rows = [[lv.get("connections"), lv.get("duration_s"), lv.get("requests"), lv.get("throughput_rps"),
                 lv.get("p50_ms"), lv.get("p99_ms"), lv.get("errors")] for lv in cc.get("levels", [])]
        lines += [f"POST /api/search, k = {cc.get('k')}, unique queries (result cache off), "
                  f"{cc.get('duration_s')} s per level.", ""]
        lines += _table(["connections", "seconds", "requests", "req/s", "p50 ms", "p99 ms", "errors"], rows)
        hu = cc.get("health_during_upload") or {}
        if "p99_ms" in hu:
            lines += [f"`GET /api/health` every 50 ms while `{hu['file']}` ({hu['pages']} pages) was uploaded and "
                      f"ingested ({hu['upload_s']} s, {hu['status']}): {hu['requests']} checks, p50 {hu['p50_ms']} ms, "
                      f"p99 {hu['p99_ms']} ms, max {hu['max_ms']} ms.", ""]
        elif hu:
            lines += [f"Health during an upload: failed: `{hu.get('error')}`", ""]

    runs = [[f"`{n}`", v.get("status"), v.get("seconds"),
             f"{_get(v, 'loadavg', 'start') or '?'} → {_get(v, 'loadavg', 'end') or '?'}"]
            for n, v in s.items() if isinstance(v, dict)]
    if runs:
        lines += ["## Sections run", "", "Load average (1, 5, 15 min) on this shared machine at each section's start"
                  " and end: timings taken under a high load are slower, for both systems.", ""]
        lines += _table(["section", "status", "seconds", "load average"], runs)
    errors = [(n, v.get("error")) for n, v in s.items() if isinstance(v, dict) and v.get("status") != "ok"]
    if errors:
        lines += ["## Failed sections", ""] + [f"- `{n}`: {e}" for n, e in errors] + [""]
    pk = meta.get("packages", {})
    if pk:
        lines += ["## Versions", "", ", ".join(f"{k} {v}" for k, v in sorted(pk.items())), ""]
        sp = _get(base, "packages")
        if sp:
            lines += ["Baseline venv: " + ", ".join(f"{k} {v}" for k, v in sorted(sp.items())), ""]
    return "\n".join(lines)


# --- PNG ---------------------------------------------------------------------------------------------

def to_png(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = results.get("sections", {})
    base = _ok(s, "baseline")
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    meta = results.get("meta", {})
    emb = f", embedder {str(meta['embedder']).split('.')[-1]}" if meta.get("embedder") else ""
    fig.suptitle(f"Querio vs seed baseline, {meta.get('date', '')} ({meta.get('mode', '')}), "
                 f"{_get(meta, 'machine', 'cores')} cores{emb}")

    def empty(ax: Any, title: str, why: str = "not measured") -> None:
        ax.set_title(title)
        ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.set_xticks([])
        ax.set_yticks([])

    def bars(ax: Any, labels: list[str], values: list[float], title: str, ylabel: str,
             colors: list[str] | None = None) -> None:
        b = ax.bar(labels, values, color=colors or ["tab:blue"] * len(values))
        ax.bar_label(b, fmt="%.4g")
        ax.set_title(title)
        ax.set_ylabel(ylabel)

    ax = axes[0][0]
    ours = _get(_ok(s, "ingest"), "pipeline", "pages_per_s")
    theirs = _get(base, "seed", "ingest_pages_per_s")
    if ours or theirs:
        labels, vals, cols = [], [], []
        if ours:
            labels, vals, cols = ["Querio"], [ours], ["tab:blue"]
        if theirs:
            labels += ["seed", "target (5x seed)"]
            vals += [theirs, 5 * theirs]
            cols += ["tab:orange", "lightgrey"]
        bars(ax, labels, vals, "1. Ingest throughput", "pages / s", cols)
    else:
        empty(ax, "1. Ingest throughput")

    ax = axes[0][1]
    q = _ok(s, "quality")
    if q:
        systems = {f"Querio {k}": v for k, v in q.get("modes", {}).items()}
        if _get(base, "quality"):
            systems["seed"] = base["quality"]
        keys = ["recall_at_1", "recall_at_5", "recall_at_10", "mrr_at_10"]
        width = 0.8 / max(len(systems), 1)
        for i, (name, v) in enumerate(systems.items()):
            ax.bar([j + i * width for j in range(len(keys))], [v.get(k) or 0 for k in keys], width, label=name)
        ax.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(keys))],
                      ["R@1", "R@5", "R@10", "MRR@10"])
        ax.axhline(0.97, color="grey", ls="--", lw=0.8)
        ax.axhline(0.85, color="grey", ls=":", lw=0.8)
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=7, loc="lower right")
        ax.set_title("2. Retrieval quality (targets: R@5 0.97, MRR 0.85)")
    else:
        empty(ax, "2. Retrieval quality")

    ax = axes[0][2]
    lat = _ok(s, "query_latency")
    bl = _get(base, "latency")
    if lat or bl:
        pcts = ["p50_ms", "p95_ms", "p99_ms"]
        series = {}
        if lat:
            series["Querio router"] = [lat["router"].get(p) or 0 for p in pcts]
        if bl:
            series["seed similarity_search"] = [bl.get(p) or 0 for p in pcts]
        for i, (name, vals) in enumerate(series.items()):
            b = ax.bar([j + i * 0.4 for j in range(3)], vals, 0.4, label=name)
            ax.bar_label(b, fmt="%.1f", fontsize=7)
        ax.set_xticks([j + 0.2 for j in range(3)], ["p50", "p95", "p99"])
        if bl and bl.get("p50_ms"):
            ax.axhline(bl["p50_ms"] / 3, color="grey", ls="--", lw=0.8, label="target p50")
        ax.set_ylabel("ms")
        ax.legend(fontsize=7)
        ax.set_title("3. Warm query latency (with embedding)")
    else:
        empty(ax, "3. Warm query latency")

    ax = axes[1][0]
    sc = _ok(s, "scale")
    if sc and sc.get("sizes"):
        ns = [int(n) for n in sc["sizes"]]
        ax.plot(ns, [sc["sizes"][str(n)]["hnsw"]["p50_ms"] for n in ns], "o-", label="HNSW p50 (bare table)")
        ax.plot(ns, [_get(sc["sizes"][str(n)], "exact_scan", "p50_ms") for n in ns], "s--", color="tab:gray",
                label="exact scan p50 (bare table)")
        for keys, style, color, label in ((("product", "k10", "p50_ms"), "D-", "tab:green",
                                           "PgVectorStore.query p50 (product path)"),
                                          (("skewed", "product", "k10", "p50_ms"), "D:", "tab:olive",
                                           "PgVectorStore.query p50, skewed data"),
                                          (("skewed", "hnsw", "p50_ms"), "o:", "tab:cyan",
                                           "HNSW p50 (bare table), skewed data")):
            pts = [(n, _get(sc["sizes"][str(n)], *keys)) for n in ns]
            pts = [(n, v) for n, v in pts if v is not None]
            if pts:
                ax.plot([n for n, _ in pts], [v for _, v in pts], style, color=color, label=label)
        seed_tab = {int(k): v for k, v in (sc.get("seed_table_ms") or {}).items()}
        ax.plot(list(seed_tab), list(seed_tab.values()), "^-", color="tab:orange", label="seed's table")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("vectors")
        ax.set_ylabel("ms per query")
        for n in ns:
            r = sc["sizes"][str(n)]["hnsw"]
            ax.annotate(f"R@10 {r['recall_at_10']:.3f}", (n, r["p50_ms"]), fontsize=7, xytext=(4, -10),
                        textcoords="offset points")
        ax.legend(fontsize=7)
        ax.set_title("4. Vector search at scale")
    else:
        empty(ax, "4. Vector search at scale")

    ax = axes[1][1]
    c = _ok(s, "cache")
    cs = _ok(s, "cold_start")
    if c or cs:
        labels, vals, cols = [], [], []
        if c and c.get("redis"):
            labels += ["miss (Redis)", "hit (Redis)"]
            vals += [c["redis"]["miss"]["p50_ms"], c["redis"]["hit"]["p50_ms"]]
            cols += ["tab:blue", "tab:green"]
        if cs:
            qm = _get(cs, "querio", "median", "total_s")
            bm = _get(cs, "baseline", "median", "total_s")
            if qm:
                labels.append("cold start\nQuerio")
                vals.append(qm * 1000)
                cols.append("tab:purple")
            if bm:
                labels.append("cold start\nseed")
                vals.append(bm * 1000)
                cols.append("tab:orange")
        bars(ax, labels, vals, "5-6. Cache hit/miss p50 and cold start", "ms (log)", cols)
        ax.axhline(2, color="grey", ls=":", lw=0.8, label="cache hit target 2 ms")
        ax.axhline(1500, color="grey", ls="--", lw=0.8, label="cold start target 1.5 s")
        ax.set_yscale("log")
        ax.legend(fontsize=7, loc="upper left")
    else:
        empty(ax, "5-6. Cache and cold start")

    ax = axes[1][2]
    cc = _ok(s, "concurrency")
    if cc and cc.get("levels"):
        lv = cc["levels"]
        xs = [v["connections"] for v in lv]
        ax.plot(xs, [v["throughput_rps"] for v in lv], "o-", label="req/s")
        ax.set_xlabel("connections")
        ax.set_ylabel("requests / s")
        ax2 = ax.twinx()
        ax2.plot(xs, [v.get("p99_ms") or 0 for v in lv], "s--", color="tab:red", label="p99 ms")
        ax2.plot(xs, [v.get("p50_ms") or 0 for v in lv], "^:", color="tab:pink", label="p50 ms")
        ax2.set_ylabel("ms")
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left")
        errs = sum(v.get("errors", 0) for v in lv)
        ax.set_title(f"7. querio serve under load ({errs} errors)")
    else:
        empty(ax, "7. Concurrency")

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def search_scale_png(results: dict[str, Any], path: Path) -> None:
    """p50 against tenant size for each leg (hybrid, vector only, text only), log-log, with targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ss = results["sections"]["search_scale"]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    points: dict[str, list[tuple[int, float]]] = {"hybrid": [], "vector": [], "text": []}
    for res in ss.get("sizes", {}).values():
        for r in res.values():
            if isinstance(r, dict) and "hybrid" in r:
                for leg in points:
                    points[leg].append((int(r["chunks"]), float(r[leg]["p50_ms"])))
    for (leg, pts), style in zip(points.items(), ("o-", "s--", "^:"), strict=True):
        pts.sort()
        ax.plot([n for n, _ in pts], [v for _, v in pts], style, label=f"{leg} p50 (router, embedding included)")
    goals = [(10_000, 8), (100_000, 12), (1_000_000, 25)]
    ax.plot([n for n, _ in goals], [v for _, v in goals], "k_", markersize=20, label="hybrid p50 target")
    seed = _get(ss, "sizes", "10000", "seed_chroma", "p50_ms")
    if seed:
        ax.plot([10_000], [seed], "*", color="tab:orange", markersize=12, label="seed Chroma similarity_search")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tenant size (chunks)")
    ax.set_ylabel("ms per search (p50)")
    ax.set_title(f"Search at scale, {results.get('meta', {}).get('date', '')}: p50 by tenant size and leg")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_reports(results: dict[str, Any], json_path: Path) -> dict[str, str]:
    """Write ``<stem>.md`` and ``<stem>.png`` beside ``json_path``; returns what was written or why not."""
    out: dict[str, str] = {}
    md = json_path.with_suffix(".md")
    md.write_text(to_markdown(results))
    out["markdown"] = str(md)
    png = json_path.with_suffix(".png")
    try:
        to_png(results, png)
        out["png"] = str(png)
        if _ok(results.get("sections", {}), "search_scale"):
            scale_png = json_path.with_name(json_path.stem + "-search-scale.png")
            search_scale_png(results, scale_png)
            out["search_scale_png"] = str(scale_png)
    except ImportError as exc:
        out["png_error"] = f"matplotlib missing ({exc}); install the bench extra: pip install -e '.[bench]'"
    except Exception as exc:  # a plotting bug must not lose the run: the JSON and Markdown are written
        out["png_error"] = f"{type(exc).__name__}: {exc}"
    return out


def main() -> None:
    path = Path(sys.argv[1])
    results = json.loads(path.read_text())
    results["targets"] = compute_targets(results)
    print(json.dumps(write_reports(results, path)))


if __name__ == "__main__":
    main()
