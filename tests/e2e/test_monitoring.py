"""monitoring/: promtool checks and unit-tests the alert rules, and every metric they and
the Grafana dashboard name is one a served gateway's /metrics really serves.

Expressions are read by promql-parser (Prometheus's grammar, in Rust), not by
regular expressions; the served names come from scraping a gateway that has
answered a few requests, so that labelled counters and histograms have series
(counters as ``_total``, histograms as ``_bucket``/``_sum``/``_count``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from conftest import ACME, Gateway, headers_for
from prometheus_client.parser import text_string_to_metric_families

from gateway.simulator import Simulator

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
ALERTS = MONITORING / "alerts.yaml"
ALERT_TESTS = MONITORING / "alerts.test.yaml"
DASHBOARD = MONITORING / "dashboard.json"
#: Labels Prometheus itself puts on every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})
#: Grafana's own variables, given values that make an expression plain PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run Debian's promtool (package prometheus; .ci/run installs it)."""
    found = shutil.which("promtool")
    if found is None:
        raise RuntimeError("promtool is not installed: apt-get install prometheus")
    return subprocess.run(
        [found, *args], capture_output=True, text=True, check=False, timeout=120, cwd=MONITORING
    )


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the dashboard's panels, Grafana's variables filled in."""
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    filled = []
    for expression in expressions:
        for variable, value in GRAFANA_VARIABLES.items():
            expression = expression.replace(variable, value)
        filled.append(expression)
    return filled


def selectors(expression: str) -> Iterator[promql_parser.VectorSelector]:
    """The vector selectors of ``expression``, each once."""
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expression), pre_visit=visit)
    yield from found


def test_promtool_checks_the_rules() -> None:
    """promtool check rules passes alerts.yaml, which holds at least five alerts."""
    result = promtool("check", "rules", str(ALERTS))

    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"SUCCESS: (\d+) rules found", result.stdout)
    assert found is not None, result.stdout
    assert int(found.group(1)) == len(alert_rules()) >= 5


def test_promtool_unit_tests_pass() -> None:
    """promtool test rules runs alerts.test.yaml against alerts.yaml and every test passes."""
    result = promtool("test", "rules", str(ALERT_TESTS))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_silent() -> None:
    """Each alert is expected to fire in some test, and to stay silent in another evaluation;
    where it fires for a job, the same test feeds a job for which it must not."""
    groups = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    for rule in alert_rules():
        name = rule["alert"]
        fired, silent = [], []
        for group in groups:
            for case in group["alert_rule_test"]:
                if case["alertname"] != name:
                    continue
                (fired if case["exp_alerts"] else silent).append((group, case))
        assert fired, f"{name} is never expected to fire"
        assert silent, f"{name} is never expected to stay silent"
        for group, case in fired:
            firing_jobs = {alert["exp_labels"].get("job") for alert in case["exp_alerts"]}
            if firing_jobs == {None}:
                continue  # absent(): no series at all; its silent case feeds one
            fed_jobs = set(re.findall(r'job="([^"]+)"', str(group["input_series"])))
            assert fed_jobs - firing_jobs, f"{name}: {group['name']} feeds no job that stays quiet"


def test_the_dashboard_describes_each_panel_and_queries_prometheus() -> None:
    """dashboard.json: at least 8 PromQL expressions, each panel titled, described, from the
    chosen Prometheus data source, with a unique id."""
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert panel["title"]
        assert len(panel["description"]) > 40, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
    expressions = dashboard_expressions()
    assert len(expressions) >= 8
    for expression in expressions:
        promql_parser.parse(expression)  # raises on anything that is not PromQL
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"


@pytest.fixture
def served(start_gateway: Callable[..., Gateway], sim: Simulator) -> dict[str, set[str]]:
    """Every sample name a gateway's /metrics serves after a few requests, with its labels."""
    gateway = start_gateway()
    twice = "{ a: callCount(filter: {campaignId: 7}) b: callCount(filter: {campaignId: 7}) }"
    assert gateway.query(twice, headers_for(ACME))["data"]["a"] is not None  # miss and join
    gateway.query(twice, headers_for(ACME))  # hits
    sim.faults.error_code = 1009
    gateway.query("{ callCount(filter: {campaignId: 8}) }", headers_for(ACME))
    response = gateway.client.get(f"{gateway.url}/metrics")
    assert response.status_code == 200
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def test_every_metric_the_rules_and_dashboard_name_is_served(served: dict[str, set[str]]) -> None:
    """Each metric in alerts.yaml and dashboard.json is served by /metrics, and each label
    they match on is one that metric carries (or a label Prometheus adds: job, instance)."""
    expressions = [rule["expr"] for rule in alert_rules()] + dashboard_expressions()
    variable_queries = json.loads(DASHBOARD.read_text())["templating"]["list"]
    named: set[str] = {
        match
        for variable in variable_queries
        if variable["type"] == "query"
        for match in re.findall(r"label_values\((\w+)", variable["definition"])
    }
    for expression in expressions:
        for selector in selectors(expression):
            assert selector.name is not None, expression
            named.add(selector.name)
            if selector.name in served:
                labels = {matcher.name for matcher in selector.matchers.matchers}
                assert labels - TARGET_LABELS <= served[selector.name], expression

    assert len(named) >= 8  # the expressions were read, not skipped
    assert named <= set(served), sorted(named - set(served))
