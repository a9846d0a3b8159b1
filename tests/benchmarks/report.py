"""The markdown report: per-scenario medians, ours/Apollo ratios, batch cost, memory, targets.

Ratios are medians of per-pair ratios: run i of ours against run i of Apollo,
made back to back, so that drift in the machine's background load between
pairs cancels out of each ratio rather than piling into one gateway's median.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from load import SCENARIOS, WRK_TIMEOUT_S, Measurement

OURS, BASELINE, APOLLO, MERCURIUS = "ours", "baseline", "apollo", "mercurius"
LABELS = {
    OURS: "deepcall-gateway",
    BASELINE: "deepcall-gateway, baseline",
    APOLLO: "Apollo Server 5",
    MERCURIUS: "Mercurius 16 + graphql-jit",
}
#: (form, single-miss scenario, 10-alias batch scenario): the batch-cost target, per form.
BATCH_PAIRS = (
    ("variables", "miss_vars", "batch10_miss"),
    ("inline", "miss_inline", "batch10_miss_inline"),
)
CAVEAT = (
    "Caveat: one shared, noisy 2-core machine runs wrk, the stub and the gateway under test "
    "at once, alongside whatever else it is doing (see background CPU). Absolute numbers "
    "move from run to run; compare ratios, which come from runs made back to back in this "
    "one invocation, and prefer more and longer runs (--runs 5 --duration 10) before "
    "drawing conclusions from a small difference."
)


def _median(values: Sequence[float]) -> float:
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
        return _median([get(m) for m in measurements])

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
    return _median(ratios)


def _num(value: float, digits: int = 2) -> str:
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _x(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f}x"


def render(
    measurements: list[Measurement],
    memory: dict[str, Any],
    machine: dict[str, str],
    settings: dict[str, Any],
) -> str:
    """The whole report as markdown."""
    names = [n for n in SCENARIOS if any(m.scenario == n for m in measurements)]
    gateways = [gw for gw in LABELS if any(m.gateway == gw for m in measurements)]
    summaries = {
        (name, gw): summarise([m for m in measurements if m.scenario == name and m.gateway == gw])
        for name in names
        for gw in gateways
    }
    lines = [
        "# deepcall-gateway vs Apollo Server 5 (+ RESTDataSource): benchmark",
        "",
        f"{settings['started']}; {settings['runs']} runs of {settings['duration']} s per "
        f"scenario and gateway, alternating ours/Apollo back to back; every number is the "
        f"median of the runs. `wrk -t2 --timeout={WRK_TIMEOUT_S}s`; one process per gateway; "
        "upstream: `peer/stub.mjs`.",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()) + ".",
        "",
        "| scenario | conns | upstream | gateway | ok rps | p50 ms | p99 ms | CPU ms/req "
        "| upstream calls/req | stub CPU ms/req | failed responses | background CPU |",
        "|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name in names:
        scenario = SCENARIOS[name]
        for gw in gateways:
            s = summaries[name, gw]
            lines.append(
                f"| {name} | {scenario.connections} | {scenario.latency_ms:g} ms "
                f"| {LABELS[gw]} | {_num(s.rps, 0)} | {_num(s.p50_ms)} | {_num(s.p99_ms)} "
                f"| {_num(s.cpu_ms, 3)} | {_num(s.upstream_calls, 3)} | {_num(s.stub_cpu_ms, 3)} "
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
        "",
        "## Ratios, ours / Apollo (median of per-run pairs)",
        "",
        "| scenario | what | ok rps | p50 | p99 | CPU ms/req |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for name in names:
        lines.append(
            f"| {name} | {SCENARIOS[name].title} "
            f"| {_x(pair_ratio(measurements, name, lambda m: m.rps))} "
            f"| {_x(pair_ratio(measurements, name, lambda m: m.p50_ms))} "
            f"| {_x(pair_ratio(measurements, name, lambda m: m.p99_ms))} "
            f"| {_x(pair_ratio(measurements, name, lambda m: m.cpu_ms_per_request))} |"
        )
    lines += ["", "rps above 1.00x: ours faster; latency and CPU below 1.00x: ours better."]
    if BASELINE in gateways:
        lines += [
            "",
            f"## Ours / the baseline, commit {settings.get('baseline')} (median of per-run pairs)",
            "",
            "| scenario | ok rps | p50 | p99 | CPU ms/req |",
            "|---|--:|--:|--:|--:|",
        ]
        for name in names:
            rps, p50, p99, cpu = (
                _x(pair_ratio(measurements, name, get, BASELINE))
                for get in (
                    lambda m: m.rps,
                    lambda m: m.p50_ms,
                    lambda m: m.p99_ms,
                    lambda m: m.cpu_ms_per_request,
                )
            )
            lines.append(f"| {name} | {rps} | {p50} | {p99} | {cpu} |")
    if MERCURIUS in gateways:
        lines += [
            "",
            "## Stretch: ours / Mercurius 16 + graphql-jit + undici (median of per-run pairs)",
            "",
            "| scenario | ok rps | p99 | CPU ms/req |",
            "|---|--:|--:|--:|",
        ]
        for name in names:
            rps, p99, cpu = (
                _x(pair_ratio(measurements, name, get, MERCURIUS))
                for get in (
                    lambda m: m.rps,
                    lambda m: m.p99_ms,
                    lambda m: m.cpu_ms_per_request,
                )
            )
            lines.append(f"| {name} | {rps} | {p99} | {cpu} |")

    batch_cost: dict[tuple[str, str], float] = {}  # (form, gateway) -> batch / single
    forms = [
        (form, single, batch)
        for form, single, batch in BATCH_PAIRS
        if single in names and batch in names
    ]
    if forms:
        lines += [
            "",
            "## Cost of a batch (CPU ms per request)",
            "",
            "| form | gateway | single miss | 10-alias batch of misses | batch / single |",
            "|---|---|--:|--:|--:|",
        ]
        for form, single_name, batch_name in forms:
            for gw in gateways:
                single = summaries[single_name, gw].cpu_ms
                batch = summaries[batch_name, gw].cpu_ms
                batch_cost[form, gw] = batch / single if single > 0 else float("nan")
                lines.append(
                    f"| {form} | {LABELS[gw]} | {_num(single, 3)} | {_num(batch, 3)} "
                    f"| {_x(batch_cost[form, gw])} |"
                )

    inline_cost: dict[tuple[str, str], float] = {}  # (inline scenario, gateway) -> ratio
    pairs = [
        (name, SCENARIOS[name].variables_form)
        for name in names
        if SCENARIOS[name].variables_form in names
    ]
    if pairs:
        lines += [
            "",
            "## A new document against the same request in variables (CPU ms per request)",
            "",
            "| scenario | gateway | filters in variables | filters inline | inline / variables |",
            "|---|---|--:|--:|--:|",
        ]
        for inline, variables in pairs:
            for gw in gateways:
                of_vars = summaries[variables, gw].cpu_ms  # type: ignore[index]
                of_inline = summaries[inline, gw].cpu_ms
                inline_cost[inline, gw] = of_inline / of_vars if of_vars > 0 else float("nan")
                lines.append(
                    f"| {inline} | {LABELS[gw]} | {_num(of_vars, 3)} | {_num(of_inline, 3)} "
                    f"| {_x(inline_cost[inline, gw])} |"
                )

    failed = [m for m in measurements if m.failures]
    if failed:
        lines += ["", "## Failed responses", ""]
        for m in failed:
            kinds = (
                f"{m.timeouts} timeouts (no answer within {WRK_TIMEOUT_S} s), "
                f"{m.socket_errors} socket errors, {m.bad_status} non-200, "
                f"{m.graphql_errors} with GraphQL errors"
            )
            first = f"; first: `{m.first_error[:240]}`" if m.first_error else ""
            lines.append(f"- {m.scenario} run {m.run}, {LABELS[m.gateway]}: {kinds}{first}")

    lines += ["", "## Memory per cached key", ""]
    lines += _memory_lines(memory)
    lines += ["", "## Memory under a stream of unique documents", ""]
    lines += _document_memory_lines(memory)
    lines += ["", "## Targets (issue: per process, same machine, same run)", ""]
    lines += _target_lines(
        measurements, summaries, names, gateways, batch_cost, inline_cost, memory
    )
    lines += ["", CAVEAT, ""]
    return "\n".join(lines)


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
    for label, field, how in (
        ("deepcall-gateway `CountCache`", "ours_tracemalloc", "Python allocations (tracemalloc)"),
        ("deepcall-gateway `CountCache`", "ours_rss", "resident set growth"),
        ("Apollo peer `CountCache` (lru-cache)", "apollo_heap", "V8 heap used"),
        ("Apollo peer `CountCache` (lru-cache)", "apollo_rss", "resident set growth"),
    ):
        value = memory.get(field)
        shown = _num(value, 0) if isinstance(value, int | float) else str(value or "n/a")
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


def _target_lines(
    measurements: list[Measurement],
    summaries: dict[tuple[str, str], Summary],
    names: list[str],
    gateways: list[str],
    batch_cost: dict[tuple[str, str], float],
    inline_cost: dict[tuple[str, str], float],
    memory: dict[str, Any],
) -> list[str]:
    def verdict(value: float, ok: bool, failures: int = 0) -> str:
        if value != value:
            return "not measured"
        if failures:
            return f"{'PASS' if ok else 'FAIL'} (suspect: {failures} failed responses)"
        return "PASS" if ok else "FAIL"

    def failures(*scenarios: str) -> int:
        return sum(summaries[s, gw].failures for s in scenarios if s in names for gw in gateways)

    def ratio(name: str, get: Callable[[Measurement], float]) -> float:
        return pair_ratio(measurements, name, get) if name in names else float("nan")

    rows = []
    for name in names:
        rps = ratio(name, lambda m: m.rps)
        rows.append(
            (f"{name} rps >= 1.0x Apollo", _x(rps), verdict(rps, rps >= 1.0, failures(name)))
        )
    for name in ("miss_20ms_64c", "miss_inline_20ms_64c"):
        p99 = ratio(name, lambda m: m.p99_ms)
        rows.append(
            (
                f"{name}: p99 <= Apollo's",
                _x(p99),
                verdict(p99, p99 <= 1.0, failures(name)),
            )
        )
    for name in ("miss_inline", "batch10_miss_inline"):
        cost = inline_cost.get((name, OURS), float("nan"))
        variables = SCENARIOS[name].variables_form or ""
        rows.append(
            (
                f"{name}: CPU per request <= 1.5x {variables}'s",
                _x(cost),
                verdict(cost, cost <= 1.5, failures(name, variables)),
            )
        )
    for form, single, batch in BATCH_PAIRS:
        cost = batch_cost.get((form, OURS), float("nan"))
        rows.append(
            (
                f"{batch}: CPU <= 3x {single}'s ({form})",
                _x(cost),
                verdict(cost, cost <= 3.0, failures(single, batch)),
            )
        )
    mem_values = [memory.get("ours_tracemalloc"), memory.get("ours_rss")]
    mem = max((v for v in mem_values if isinstance(v, int | float)), default=float("nan"))
    rows.append(
        (
            "memory <= 1 KB per cached key at 100,000 keys (larger of the two measures)",
            "n/a" if mem != mem else f"{mem:,.0f} B",
            verdict(mem, mem <= 1024),
        )
    )
    documents = memory.get("documents")
    growth = documents["growth_mb"] if isinstance(documents, dict) else float("nan")
    rows.append(
        (
            "RSS after 100,000 unique documents within 20 MB of RSS after 1,000",
            "n/a" if growth != growth else f"+{growth:.1f} MB",
            verdict(growth, growth <= 20),
        )
    )
    if MERCURIUS in gateways:
        for name in names:
            rps = pair_ratio(measurements, name, lambda m: m.rps, MERCURIUS)
            rows.append(
                (
                    f"stretch: {name} rps >= 1.0x Mercurius",
                    _x(rps),
                    verdict(rps, rps >= 1.0, failures(name)),
                )
            )
    out = ["| target | measured | verdict |", "|---|--:|---|"]
    out += [f"| {t} | {m} | {v} |" for t, m, v in rows]
    return out
