"""Medians of a gateway's runs and paired ratios against a peer, shared by the report's parts.

Ratios are medians of per-pair ratios: run i of ours against run i of the peer,
made back to back, so that drift in the machine's background load between
pairs cancels out of each ratio rather than piling into one gateway's median.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from load import Measurement

OURS, BASELINE = "ours", "baseline"
APOLLO, MERCURIUS, STRAWBERRY = "apollo", "mercurius", "strawberry"
#: Every gateway a run can measure, in the report's order, with its name in the tables.
LABELS = {
    OURS: "deepcall-gateway",
    BASELINE: "deepcall-gateway, baseline",
    APOLLO: "Apollo Server 5",
    MERCURIUS: "Mercurius 16 + graphql-jit",
    STRAWBERRY: "Strawberry + httpx + cachetools",
}
#: The peers, in the report's order, with the short names of the ratio columns.
PEERS = {APOLLO: "Apollo", MERCURIUS: "Mercurius", STRAWBERRY: "Strawberry"}


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


@dataclass
class Summary:
    """Medians of one gateway's runs of one scenario."""

    runs: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    upstream_calls: float
    stub_cpu_ms: float
    failures: int
    background: float


def summarise(measurements: list[Measurement]) -> Summary:
    """The medians of ``measurements`` (failures summed)."""

    def med(get: Callable[[Measurement], float]) -> float:
        return median([get(m) for m in measurements])

    return Summary(
        runs=len(measurements),
        rps=med(lambda m: m.rps),
        p50_ms=med(lambda m: m.p50_ms),
        p99_ms=med(lambda m: m.p99_ms),
        cpu_ms=med(lambda m: m.cpu_ms_per_request),
        upstream_calls=med(lambda m: m.upstream_calls_per_request),
        stub_cpu_ms=med(lambda m: m.stub_cpu_ms_per_request),
        failures=sum(m.failures for m in measurements),
        background=med(lambda m: m.background_cpu_share),
    )


def pair_ratio(
    measurements: list[Measurement],
    scenario: str,
    get: Callable[[Measurement], float],
    against: str = APOLLO,
) -> float:
    """Median over runs of ours/``against`` for ``get``, pairing run i with run i."""
    by_run: dict[int, dict[str, Measurement]] = {}
    for m in measurements:
        if m.scenario == scenario:
            by_run.setdefault(m.run, {})[m.gateway] = m
    ratios = [
        get(pair[OURS]) / get(pair[against])
        for pair in by_run.values()
        if OURS in pair and against in pair and get(pair[against]) > 0
    ]
    return median(ratios)


def num(value: float, digits: int = 2) -> str:
    """A figure for a table: thousands with commas, else ``digits`` decimals; n/a for NaN."""
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def times(value: float) -> str:
    """A ratio for a table, as ``1.23x``; n/a for NaN."""
    return "n/a" if value != value else f"{value:.2f}x"
