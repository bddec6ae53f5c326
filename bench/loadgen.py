#!/usr/bin/env python3
"""A bounded HTTP load client (stdlib only): N threads, one keep-alive connection each,
``POST /api/search`` with queries from a JSON list, for a fixed duration, against 127.0.0.1.

  python bench/loadgen.py --port P --connections N --duration S --queries Q.json --out OUT.json

Each thread sends its next request as soon as the previous answer arrives (closed loop).
Non-2xx answers and connection errors count as errors. The loop is bounded in time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
from pathlib import Path

from percentiles import pct


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loopback only")
    queries: list[str] = json.loads(Path(args.queries).read_text())
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    counter = [0]
    start = time.perf_counter()
    deadline = start + args.duration

    def worker(wid: int) -> None:
        conn: http.client.HTTPConnection | None = None
        while time.perf_counter() < deadline:
            with lock:
                i = counter[0]
                counter[0] += 1
            body = json.dumps({"query": f"{queries[i % len(queries)]} [{wid}.{i}]", "k": args.k})
            t = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(args.host, args.port, timeout=60)
                conn.request("POST", "/api/search", body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                ms = (time.perf_counter() - t) * 1000
                with lock:
                    statuses[str(resp.status)] = statuses.get(str(resp.status), 0) + 1
                    if 200 <= resp.status < 300:
                        latencies.append(ms)
                    else:
                        errors.append(f"HTTP {resp.status}")
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as exc:  # count it, reconnect, go on
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(args.connections)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=args.duration + 120)
    elapsed = time.perf_counter() - start
    out = {
        "connections": args.connections, "duration_s": round(elapsed, 2), "requests": len(latencies),
        "throughput_rps": round(len(latencies) / elapsed, 2),
        "p50_ms": pct(latencies, 50), "p95_ms": pct(latencies, 95), "p99_ms": pct(latencies, 99),
        "mean_ms": round(statistics.fmean(latencies), 3) if latencies else None,
        "errors": len(errors), "error_samples": sorted(set(errors))[:5], "statuses": statuses,
    }
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
