"""Small helpers: percentiles, rates and a plain-text table."""
from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of `values`, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/max in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {"p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95), "p99_ms": percentile(ms, 99),
            "max_ms": max(ms) if ms else None}


def rate(count: int, seconds: float | None) -> float | None:
    if not seconds or seconds <= 0 or count <= 0:
        return None
    return count / seconds


def fmt(value: object, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        text = f"{value:,.{digits}f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}".rstrip()


def table(rows: Sequence[tuple[str, str]], title: str | None = None) -> str:
    """Two columns, left label and right-aligned value; a row whose value is None is a section."""
    width = max((len(label) for label, value in rows if value is not None), default=10)
    vwidth = max((len(value) for _, value in rows if value is not None), default=10)
    line = "-" * (width + vwidth + 3)
    out = []
    if title:
        out += [line, title, line]
    for label, value in rows:
        if value is None:
            out.append(f"{label}")
        else:
            out.append(f"{label:<{width}} : {value:>{vwidth}}")
    out.append(line)
    return "\n".join(out)
