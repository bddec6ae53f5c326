"""The one percentile used by every benchmark (stdlib only: the load client and the seed's venv import it too)."""

from __future__ import annotations


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank ``p``-th percentile of ``values``, rounded to 3 decimals; ``None`` when empty."""
    s = sorted(values)
    if not s:
        return None
    i = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return round(s[i], 3)
