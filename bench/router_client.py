"""POST /api/search through the product's one Powertools router, in-process (no HTTP)."""

from __future__ import annotations

import json
import time
from typing import Any


class RouterClient:
    """POST /api/search through the one Powertools router, in-process, as API Gateway would call it."""

    def __init__(self, service: Any, tenant: str | None = None) -> None:
        from querio.api import router
        from querio.api.local_server import LocalContext, build_event

        self.router, self.build_event, self.context = router, build_event, LocalContext
        router.set_service_factory(lambda: service)
        self.claims = {"sub": "bench", service.settings.tenant_claim: tenant or service.settings.local_tenant}

    def search(self, query: str, k: int, **fields: Any) -> tuple[float, dict[str, Any]]:
        """(milliseconds, response body) of one search; ``fields``: mode, filters, alpha."""
        body = json.dumps({"query": query, "k": k} | fields).encode()
        t = time.perf_counter()
        event = self.build_event("POST", "/api/search", {"content-type": "application/json"}, body,
                                 source_ip="127.0.0.1", claims=self.claims)
        resp = self.router.app.resolve(event, self.context())
        ms = (time.perf_counter() - t) * 1000
        if resp.get("statusCode") != 200:
            raise RuntimeError(f"POST /api/search answered {resp.get('statusCode')}: {str(resp.get('body'))[:300]}")
        return ms, json.loads(resp["body"])

    def close(self) -> None:
        self.router.set_service_factory(None)
