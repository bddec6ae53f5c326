#!/usr/bin/env python3
"""Querio cold start, in a fresh process: import the query Lambda handler, build the service
(settings, connect to PostgreSQL, migrations check), load the embedder, answer one
``POST /api/search`` through the handler. Each phase is timed; ``total_s`` runs from the
parent's spawn to the answer. Uses the product's default wiring (``QUERIO_*`` from the env).

  python bench/coldstart.py REPO_ROOT OUT.json SPAWN_EPOCH [QUERY]
"""

import json
import sys
import time

T_MAIN = time.time()


def main() -> None:
    root, out, spawned = sys.argv[1], sys.argv[2], float(sys.argv[3])
    query = sys.argv[4] if len(sys.argv) > 4 else "How do I install R packages into a personal library?"
    import importlib.util

    t0 = time.perf_counter()
    spec = importlib.util.spec_from_file_location("querio_query_handler", f"{root}/functions/query/handler.py")
    assert spec and spec.loader
    handler_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler_mod)
    from querio.api.local_server import LocalContext, build_event

    t1 = time.perf_counter()
    from querio.wiring import get_service

    service = get_service()  # what the first request would do: settings, DSN, migrate, adapters
    t2 = time.perf_counter()
    embedder = service.embedder
    warm = getattr(embedder, "warm", None)
    if callable(warm):
        warm()
    else:
        embedder.embed_query("warm")
    t3 = time.perf_counter()
    body = json.dumps({"query": query, "k": 5}).encode()
    event = build_event("POST", "/api/search", {"content-type": "application/json"}, body,
                        source_ip="127.0.0.1",
                        claims={"sub": "bench", service.settings.tenant_claim: service.settings.local_tenant})
    resp = handler_mod.handler(event, LocalContext())
    t4 = time.perf_counter()
    total = time.time() - spawned
    results = json.loads(resp.get("body") or "{}").get("results", [])
    phases = {
        "interpreter_start_s": round(T_MAIN - spawned, 3),
        "import_handler_s": round(t1 - t0, 3),
        "service_build_s": round(t2 - t1, 3),
        "model_load_s": round(t3 - t2, 3),
        "first_query_s": round(t4 - t3, 3),
        "total_s": round(total, 3),
        "status": resp.get("statusCode"),
        "results": len(results),
        "embedder": f"{type(embedder).__module__}.{type(embedder).__name__}",
    }
    with open(out, "w") as f:
        json.dump(phases, f)


if __name__ == "__main__":
    main()
