"""The markdown report: the headline ratios, per-gateway medians, batch cost, memory, targets.

Ratios are medians of per-pair ratios (``summary.pair_ratio``): run i of ours against
run i of a peer, made back to back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from load import SCENARIOS, WRK_TIMEOUT_S, Measurement
from summary import (
    BASELINE,
    LABELS,
    OURS,
    PEERS,
    Summary,
    num,
    pair_ratio,
    summarise,
    times,
)
from targets import BATCH_PAIRS, Target, judge, target_lines

CAVEAT = (
    "Caveat: one shared, noisy 2-core machine runs wrk, the stub and the gateway under test "
    "at once, alongside whatever else it is doing (see background CPU). Absolute numbers "
    "move from run to run; compare ratios, which come from runs made back to back in this "
    "one invocation, and prefer more and longer runs (--runs 5 --duration 10) before "
    "drawing conclusions from a small difference."
)


@dataclass
class Runs:
    """One invocation's measurements, with the scenarios and gateways in them, summarised."""

    measurements: list[Measurement]
    names: list[str] = field(init=False)
    gateways: list[str] = field(init=False)
    summaries: dict[tuple[str, str], Summary] = field(init=False)

    def __post_init__(self) -> None:
        ms = self.measurements
        self.names = [n for n in SCENARIOS if any(m.scenario == n for m in ms)]
        self.gateways = [gw for gw in LABELS if any(m.gateway == gw for m in ms)]
        self.summaries = {
            (name, gw): summarise([m for m in ms if m.scenario == name and m.gateway == gw])
            for name in self.names
            for gw in self.gateways
        }

    @property
    def peers(self) -> list[str]:
        """The peers that ran, in the report's order."""
        return [gw for gw in PEERS if gw in self.gateways]

    def ratio(self, name: str, peer: str, get: Callable[[Measurement], float]) -> str:
        """Ours / ``peer`` for ``get`` in scenario ``name``, as a table cell."""
        return times(pair_ratio(self.measurements, name, get, peer))


def render(
    measurements: list[Measurement],
    memory: dict[str, Any],
    machine: dict[str, str],
    settings: dict[str, Any],
) -> tuple[str, list[Target]]:
    """The whole report as markdown, and the targets it judged."""
    runs = Runs(measurements)
    shown = ", ".join(PEERS[p] for p in runs.peers) or "no peer"
    lines = [
        f"# deepcall-gateway against {shown}: benchmark",
        "",
        f"{settings['started']}; {settings['runs']} runs of {settings['duration']} s per "
        "scenario and gateway, the gateways in turn back to back; every number is the "
        f"median of the runs. `wrk -t2 --timeout={WRK_TIMEOUT_S}s`; one process per gateway; "
        "upstream: `peer/stub.mjs`.",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()) + ".",
    ]
    lines += _headline_lines(runs)
    lines += _detail_lines(runs)
    if BASELINE in runs.gateways:
        lines += _baseline_lines(runs, settings.get("baseline"))
    batch_lines, batch_cost = _batch_lines(runs)
    inline_lines, inline_cost = _inline_lines(runs)
    lines += batch_lines + inline_lines + _failure_lines(measurements)
    lines += ["", "## Memory per cached key", ""]
    lines += _memory_lines(memory)
    lines += ["", "## Memory under a stream of unique documents", ""]
    lines += _document_memory_lines(memory)
    targets = judge(
        measurements,
        runs.summaries,
        runs.names,
        runs.gateways,
        batch_cost,
        inline_cost,
        memory,
    )
    lines += ["", "## Targets (issues 19 and 21: per process, same machine, same run)", ""]
    lines += target_lines(targets)
    lines += ["", CAVEAT, ""]
    return "\n".join(lines), targets


def _headline_lines(runs: Runs) -> list[str]:
    """Ours against every peer: rps and p99 ratios, and each gateway's CPU per request."""
    peers = runs.peers
    head = ["scenario", "ours ok rps"]
    head += [f"rps / {PEERS[p]}" for p in peers] + [f"p99 / {PEERS[p]}" for p in peers]
    head += ["CPU ms/req ours"] + [PEERS[p] for p in peers]
    lines = [
        "",
        "## Ours against the peers (ratios: median of per-run pairs)",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "--:|" * (len(head) - 1),
    ]
    for name in runs.names:
        cells = [name, num(runs.summaries[name, OURS].rps, 0)]
        cells += [runs.ratio(name, p, lambda m: m.rps) for p in peers]
        cells += [runs.ratio(name, p, lambda m: m.p99_ms) for p in peers]
        cells += [num(runs.summaries[name, gw].cpu_ms, 3) for gw in [OURS, *peers]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "rps / peer above 1.00x: ours faster; p99 / peer below 1.00x: ours better. "
        + "; ".join(f"{PEERS[p]}: {LABELS[p]}" for p in peers)
        + ".",
    ]
    return lines


def _detail_lines(runs: Runs) -> list[str]:
    """Every gateway's medians, scenario by scenario."""
    lines = [
        "",
        "## Every gateway (medians)",
        "",
        "| scenario | conns | upstream | gateway | ok rps | p50 ms | p99 ms | CPU ms/req "
        "| upstream calls/req | stub CPU ms/req | failed responses | background CPU |",
        "|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name in runs.names:
        scenario = SCENARIOS[name]
        for gw in runs.gateways:
            s = runs.summaries[name, gw]
            lines.append(
                f"| {name} | {scenario.connections} | {scenario.latency_ms:g} ms "
                f"| {LABELS[gw]} | {num(s.rps, 0)} | {num(s.p50_ms)} | {num(s.p99_ms)} "
                f"| {num(s.cpu_ms, 3)} | {num(s.upstream_calls, 3)} | {num(s.stub_cpu_ms, 3)} "
                f"| {s.failures} | {s.background:.0%} |"
            )
    lines += [
        "",
        "ok rps: successful responses per second (wrk's rate less failed responses). "
        "Failed responses: socket errors, timeouts, HTTP status other than 200, and 200s "
        "whose body has GraphQL `errors`; any at all makes that row's numbers suspect. "
        "CPU ms/req, upstream calls/req, stub CPU ms/req: per request sent, measured "
        "once the gateway has finished the requests wrk left in flight. "
        "Background CPU: share of the whole machine used by processes other than wrk, the "
        "stub and the gateway under test during the run.",
    ]
    return lines


def _baseline_lines(runs: Runs, commit: str | None) -> list[str]:
    """Ours against the baseline checkout, run by run."""
    lines = [
        "",
        f"## Ours / the baseline, commit {commit} (median of per-run pairs)",
        "",
        "| scenario | ok rps | p50 | p99 | CPU ms/req |",
        "|---|--:|--:|--:|--:|",
    ]
    for name in runs.names:
        cells = [
            runs.ratio(name, BASELINE, get)
            for get in (
                lambda m: m.rps,
                lambda m: m.p50_ms,
                lambda m: m.p99_ms,
                lambda m: m.cpu_ms_per_request,
            )
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _batch_lines(runs: Runs) -> tuple[list[str], dict[tuple[str, str], float]]:
    """CPU of a batch of ten misses over one miss, per form and gateway; and those ratios."""
    cost: dict[tuple[str, str], float] = {}  # (form, gateway) -> batch / single
    forms = [(f, s, b) for f, s, b in BATCH_PAIRS if s in runs.names and b in runs.names]
    if not forms:
        return [], cost
    lines = [
        "",
        "## Cost of a batch (CPU ms per request)",
        "",
        "| form | gateway | single miss | 10-alias batch of misses | batch / single |",
        "|---|---|--:|--:|--:|",
    ]
    for form, single_name, batch_name in forms:
        for gw in runs.gateways:
            single = runs.summaries[single_name, gw].cpu_ms
            batch = runs.summaries[batch_name, gw].cpu_ms
            cost[form, gw] = batch / single if single > 0 else float("nan")
            lines.append(
                f"| {form} | {LABELS[gw]} | {num(single, 3)} | {num(batch, 3)} "
                f"| {times(cost[form, gw])} |"
            )
    return lines, cost


def _inline_lines(runs: Runs) -> tuple[list[str], dict[tuple[str, str], float]]:
    """CPU of each inline scenario over its variables form, per gateway; and those ratios."""
    cost: dict[tuple[str, str], float] = {}  # (inline scenario, gateway) -> ratio
    pairs = [
        (name, variables)
        for name in runs.names
        if (variables := SCENARIOS[name].variables_form) in runs.names and variables
    ]
    if not pairs:
        return [], cost
    lines = [
        "",
        "## A new document against the same request in variables (CPU ms per request)",
        "",
        "| scenario | gateway | filters in variables | filters inline | inline / variables |",
        "|---|---|--:|--:|--:|",
    ]
    for inline, variables in pairs:
        for gw in runs.gateways:
            of_vars = runs.summaries[variables, gw].cpu_ms
            of_inline = runs.summaries[inline, gw].cpu_ms
            cost[inline, gw] = of_inline / of_vars if of_vars > 0 else float("nan")
            lines.append(
                f"| {inline} | {LABELS[gw]} | {num(of_vars, 3)} | {num(of_inline, 3)} "
                f"| {times(cost[inline, gw])} |"
            )
    return lines, cost


def _failure_lines(measurements: list[Measurement]) -> list[str]:
    """Each run that had failed responses: how many of each kind, and the first."""
    failed = [m for m in measurements if m.failures]
    if not failed:
        return []
    lines = ["", "## Failed responses", ""]
    for m in failed:
        kinds = (
            f"{m.timeouts} timeouts (no answer within {WRK_TIMEOUT_S} s), "
            f"{m.socket_errors} socket errors, {m.bad_status} non-200, "
            f"{m.graphql_errors} with GraphQL errors"
        )
        first = f"; first: `{m.first_error[:240]}`" if m.first_error else ""
        lines.append(f"- {m.scenario} run {m.run}, {LABELS[m.gateway]}: {kinds}{first}")
    return lines


def _memory_lines(memory: dict[str, Any]) -> list[str]:
    if not memory:
        return ["Not measured (--skip-memory)."]
    keys = memory.get("keys", 100_000)
    out = [
        f"{keys:,} distinct keys entered through each cache's own API, one credential, "
        "filters `{campId: N}`; bytes per key = growth / keys.",
        "",
        "| cache | measured as | bytes per key |",
        "|---|---|--:|",
    ]
    for label, key, how in (
        ("deepcall-gateway `CountCache`", "ours_tracemalloc", "Python allocations (tracemalloc)"),
        ("deepcall-gateway `CountCache`", "ours_rss", "resident set growth"),
        ("Apollo peer `CountCache` (lru-cache)", "apollo_heap", "V8 heap used"),
        ("Apollo peer `CountCache` (lru-cache)", "apollo_rss", "resident set growth"),
    ):
        value = memory.get(key)
        shown = num(value, 0) if isinstance(value, int | float) else str(value or "n/a")
        out.append(f"| {label} | {how} | {shown} |")
    return out


def _document_memory_lines(memory: dict[str, Any]) -> list[str]:
    documents = memory.get("documents")
    if not isinstance(documents, dict):
        return [f"Not measured ({documents or '--skip-memory'})."]
    return [
        f"{documents['documents']:,} documents through the gateway's `Documents` store "
        "(default settings), each a new text: the benchmark's inline misses (one alias or "
        "ten), and every 50th of a shape never seen (validated in full, then remembered). "
        f"Resident set after {documents['early']:,}: {documents['rss_early_mb']:.1f} MB; "
        f"after {documents['documents']:,}: {documents['rss_late_mb']:.1f} MB "
        f"(+{documents['growth_mb']:.1f} MB, with {documents['texts']} texts and "
        f"{documents['shapes']} shapes remembered: both caches at their bound)."
    ]
