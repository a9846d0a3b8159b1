"""The issues' targets, each judged PASS or MISSED, a miss with by how much.

Peers' targets appear only for the peers that ran. A target whose runs had
failed responses is marked suspect: its numbers may come from fast failures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from load import SCENARIOS, Measurement
from summary import APOLLO, MERCURIUS, OURS, PEERS, Summary, pair_ratio

#: (form, single-miss scenario, 10-alias batch scenario): the batch-cost target, per form.
BATCH_PAIRS = (
    ("variables", "miss_vars", "batch10_miss"),
    ("inline", "miss_inline", "batch10_miss_inline"),
)
#: The scenarios whose p99 is a target: a slow upstream and many connections, both forms.
TAIL_SCENARIOS = ("miss_20ms_64c", "miss_inline_20ms_64c")
#: Our CPU per request, in ms, at most (issue 21).
CPU_LIMITS_MS = {"hit": 0.11, "miss_vars": 0.25}
#: Per unit, how a value reads in the table.
FORMATS: dict[str, Callable[[float], str]] = {
    "x": lambda v: f"{v:.2f}x",
    "ms": lambda v: f"{v:.3f} ms",
    "B": lambda v: f"{v:,.0f} B",
    "MB": lambda v: f"{v:.1f} MB",
}


@dataclass(frozen=True)
class Target:
    """One target: what is measured, its limit, which side of the limit passes."""

    what: str
    measured: float
    limit: float
    #: True: at least the limit passes (rps); False: at most the limit passes (CPU, p99).
    at_least: bool
    unit: str
    failures: int = 0

    @property
    def measured_at_all(self) -> bool:
        """False when the scenarios behind it did not run (NaN)."""
        return self.measured == self.measured

    @property
    def missed(self) -> bool:
        """Measured, and on the wrong side of the limit."""
        if not self.measured_at_all:
            return False
        return self.measured < self.limit if self.at_least else self.measured > self.limit

    def verdict(self) -> str:
        """PASS, MISSED by how much (absolute and relative to the limit), or not measured."""
        if not self.measured_at_all:
            return "not measured"
        shown = FORMATS[self.unit]
        if self.missed:
            gap = abs(self.measured - self.limit)
            side = "short" if self.at_least else "over"
            out = f"MISSED by {shown(gap)} ({gap / self.limit:.0%} {side})"
        else:
            out = "PASS"
        if self.failures:
            out += f" (suspect: {self.failures} failed responses)"
        return out

    def row(self) -> str:
        """The target's row of the markdown table."""
        measured = FORMATS[self.unit](self.measured) if self.measured_at_all else "n/a"
        return f"| {self.what} | {measured} | {self.verdict()} |"


def judge(
    measurements: list[Measurement],
    summaries: dict[tuple[str, str], Summary],
    names: list[str],
    gateways: list[str],
    batch_cost: dict[tuple[str, str], float],
    inline_cost: dict[tuple[str, str], float],
    memory: dict[str, Any],
) -> list[Target]:
    """Every target this run can judge, in the report's order."""

    def failures(*scenarios: str) -> int:
        return sum(summaries[s, gw].failures for s in scenarios if s in names for gw in gateways)

    def ratio(name: str, peer: str, get: Callable[[Measurement], float]) -> float:
        return pair_ratio(measurements, name, get, peer) if name in names else float("nan")

    targets = []
    for peer in (p for p in (APOLLO, MERCURIUS) if p in gateways):
        for name in names:
            rps = ratio(name, peer, lambda m: m.rps)
            what = f"{name}: rps >= 1.0x {PEERS[peer]}"
            targets.append(Target(what, rps, 1.0, True, "x", failures(name)))
        for name in TAIL_SCENARIOS:
            p99 = ratio(name, peer, lambda m: m.p99_ms)
            what = f"{name}: p99 <= {PEERS[peer]}'s"
            targets.append(Target(what, p99, 1.0, False, "x", failures(name)))
    for name, limit in CPU_LIMITS_MS.items():
        cpu = summaries[name, OURS].cpu_ms if name in names else float("nan")
        what = f"{name}: CPU <= {limit} ms per request"
        targets.append(Target(what, cpu, limit, False, "ms", failures(name)))
    for form, single, batch in BATCH_PAIRS:
        cost = batch_cost.get((form, OURS), float("nan"))
        what = f"{batch}: CPU <= 3x {single}'s ({form})"
        targets.append(Target(what, cost, 3.0, False, "x", failures(single, batch)))
    for name in ("miss_inline", "batch10_miss_inline"):
        cost = inline_cost.get((name, OURS), float("nan"))
        variables = SCENARIOS[name].variables_form or ""
        what = f"{name}: CPU per request <= 1.5x {variables}'s"
        targets.append(Target(what, cost, 1.5, False, "x", failures(name, variables)))
    return targets + _memory_targets(memory)


def _memory_targets(memory: dict[str, Any]) -> list[Target]:
    values = [memory.get("ours_tracemalloc"), memory.get("ours_rss")]
    per_key = max((v for v in values if isinstance(v, int | float)), default=float("nan"))
    documents = memory.get("documents")
    growth = documents["growth_mb"] if isinstance(documents, dict) else float("nan")
    return [
        Target(
            "memory <= 1 KB per cached key at 100,000 keys (larger of the two measures)",
            per_key,
            1024,
            False,
            "B",
        ),
        Target(
            "RSS growth from 1,000 to 100,000 unique documents <= 20 MB",
            growth,
            20,
            False,
            "MB",
        ),
    ]


def target_lines(targets: list[Target]) -> list[str]:
    """The targets as a markdown table, then how many were missed."""
    missed = sum(t.missed for t in targets)
    out = ["| target | measured | verdict |", "|---|--:|---|"]
    out += [t.row() for t in targets]
    out += ["", f"{missed} of {sum(t.measured_at_all for t in targets)} targets measured missed."]
    return out
