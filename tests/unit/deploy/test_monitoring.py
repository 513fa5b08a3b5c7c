"""deploy/monitoring: the alert rules and the Grafana dashboard load, every PromQL expression parses
(promql-parser; promtool too where it is installed), and they ask only for Pagemill's metrics as named in
the metrics contract, with those metrics' labels.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from pagemill.engines.registry import MODEL_ENGINES, OCR_ENGINES
from pagemill.queue import ALL_QUEUES
from tests.unit.deploy.manifests import MONITORING, REPO

# The metrics contract (the names are fixed and shared by pagemill's metrics, these rules and the
# dashboard): name -> (type, labels).
METRICS: dict[str, tuple[str, set[str]]] = {
    "pagemill_jobs_submitted_total": ("counter", {"kind"}),
    "pagemill_jobs_completed_total": ("counter", {"kind", "outcome"}),
    "pagemill_job_duration_seconds": ("histogram", {"kind"}),
    "pagemill_queue_wait_seconds": ("histogram", {"queue"}),
    "pagemill_queue_depth": ("gauge", {"queue"}),
    "pagemill_oldest_queued_age_seconds": ("gauge", {"queue"}),
    "pagemill_queue_workers": ("gauge", {"queue"}),
    "pagemill_dependency_up": ("gauge", {"component"}),
    "pagemill_pages_total": ("counter", {"engine", "outcome"}),
    "pagemill_engine_fallbacks_total": ("counter", {"engine", "reason"}),
    "pagemill_engine_requests_in_flight": ("gauge", {"engine"}),
    "pagemill_webhook_deliveries_total": ("counter", {"outcome"}),
    "pagemill_processing_timeouts_total": ("counter", {"kind"}),
    "pagemill_dead_letters": ("gauge", {"category"}),
    "pagemill_dead_letters_total": ("counter", {"category"}),
    "http_request_duration_seconds": ("histogram", {"handler", "method", "status"}),
    "http_requests_total": ("counter", {"handler", "method", "status"}),
}
# Label values the contract fixes; a matcher naming another is a typo.
VALUES = {
    "queue": set(ALL_QUEUES),
    "component": {"database", "broker", "storage"},
    "category": {"decode", "timeout", "engine", "crash", "other"},
    "engine": set(OCR_ENGINES) | set(MODEL_ENGINES),
}
OUTCOMES = {
    "pagemill_jobs_completed_total": {"succeeded", "failed", "cancelled", "expired"},
    "pagemill_webhook_deliveries_total": {"succeeded", "failed", "dead"},
}
RATE_FUNCTIONS = {"rate", "irate", "increase"}


def _alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    assert set(document) == {"groups"}
    rules = []
    for group in document["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"], group.get("name")
        rules += group["rules"]
    return rules


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return dashboard


def _dashboard_targets() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in _dashboard()["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def _metric(name: str) -> tuple[str, str, set[str]]:
    """(contract name, sample suffix, labels) of a selector's metric name; histograms add _bucket's `le`."""
    if name in METRICS:
        return name, "", METRICS[name][1]
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and METRICS.get(base, ("", set()))[0] == "histogram":
            return base, suffix, METRICS[base][1] | ({"le"} if suffix == "_bucket" else set())
    raise AssertionError(f"{name} is not in the metrics contract")


def check_expression(expr: str) -> set[str]:
    """Parse ``expr`` and check it against the contract; the contract metrics it reads."""
    tree = promql_parser.parse(expr)
    used: set[str] = set()
    problems: list[str] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.Call) and node.func.name in RATE_FUNCTIONS:
            (selector,) = [arg for arg in node.args if isinstance(arg, promql_parser.MatrixSelector)]
            name, suffix, _ = _metric(selector.vector_selector.name)
            if METRICS[name][0] == "gauge" or (METRICS[name][0] == "histogram" and suffix == ""):
                problems.append(f"{node.func.name} of {name}, a {METRICS[name][0]}")
        if isinstance(node, promql_parser.VectorSelector):
            name, _, labels = _metric(node.name)
            used.add(name)
            for matcher in node.matchers.matchers:
                if matcher.name not in labels:
                    problems.append(f"{name} has no label {matcher.name}")
                allowed = OUTCOMES.get(name, set()) if matcher.name == "outcome" else VALUES.get(matcher.name)
                if allowed and matcher.op in (promql_parser.MatchOp.Equal, promql_parser.MatchOp.Re):
                    named = (
                        set(matcher.value.split("|"))
                        if matcher.op == promql_parser.MatchOp.Re
                        else {matcher.value}
                    )
                    if matcher.name != "status" and not named <= allowed:
                        problems.append(f"{name}{{{matcher.name}}}: unknown {sorted(named - allowed)}")
        return True

    promql_parser.walk(tree, visit)
    assert problems == [], f"{expr}: {problems}"
    return used


def test_every_alert_rule_is_complete_and_parses() -> None:
    rules = _alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    anchors = {
        "#" + re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in (REPO / "docs" / "deployment.md").read_text().splitlines()
        if line.startswith("#")
    }
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"Pagemill[A-Z][A-Za-z]+", rule["alert"])
        check_expression(rule["expr"])
        if "for" in rule:
            assert promql_parser.parse_duration(rule["for"]).total_seconds() > 0
        assert rule["labels"]["severity"] in {"critical", "warning"}
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(annotations), rule["alert"]
        assert "#" + annotations["runbook"].partition("#")[2] in anchors, annotations["runbook"]
        # An annotation may name only labels the alert keeps: those its expression aggregates by.
        kept = set(re.findall(r"by \(([^)]*)\)", rule["expr"]))
        kept_labels = {label.strip() for group in kept for label in group.split(",")}
        for label in re.findall(r"\$labels\.(\w+)", " ".join(annotations.values())):
            assert label in kept_labels, f"{rule['alert']}: {label} is not kept by {rule['expr']}"


def test_the_alerts_cover_what_operations_must_hear_about() -> None:
    """No workers on a queue, database or broker down, error rate, queue lag, an idle GPU pool with work
    waiting, dead letters rising."""
    exprs = {rule["alert"]: rule["expr"] for rule in _alert_rules()}
    wanted = {
        "no workers on a queue": lambda e: "pagemill_queue_workers" in e and "== 0" in e,
        "database down": lambda e: "pagemill_dependency_up" in e and "database" in e,
        "broker down": lambda e: "pagemill_dependency_up" in e and "broker" in e,
        "API error rate": lambda e: "http_requests_total" in e and '"5..' in e,
        "queue lag": lambda e: "pagemill_oldest_queued_age_seconds" in e,
        "GPU pool idle with work waiting": lambda e: 'queue="gpu"' in e and "requests_in_flight" in e,
        "dead letters rising": lambda e: "pagemill_dead_letters_total" in e and "increase" in e,
    }
    assert [need for need, covers in wanted.items() if not any(covers(e) for e in exprs.values())] == []


def test_a_wrong_expression_fails() -> None:
    with pytest.raises(ValueError):
        promql_parser.parse("sum by (queue) (pagemill_queue_depth")
    with pytest.raises(AssertionError, match="not in the metrics contract"):
        check_expression("pagemill_queue_lenght > 0")
    with pytest.raises(AssertionError, match="no label tenant"):
        check_expression('pagemill_queue_depth{tenant="acme"}')
    with pytest.raises(AssertionError, match="a gauge"):
        check_expression("rate(pagemill_queue_depth[5m])")
    with pytest.raises(AssertionError, match="unknown"):
        check_expression('pagemill_queue_depth{queue="cpus"}')


# `make test` puts promtool into .venv/bin (scripts/install-promtool.sh); one on PATH does as well.
PROMTOOL = shutil.which("promtool") or shutil.which("promtool", path=str(Path(sys.executable).parent))
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: `make promtool` takes it from Debian's prometheus package (apt-get download)",
)
ALERT_TESTS = Path(__file__).with_name("alerts_test.yaml")


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(MONITORING / "alerts.yaml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_each_alert_fires_on_its_series_and_not_on_near_misses() -> None:
    """alerts_test.yaml: promtool evaluates the rules over synthetic series (two API replicas), checking
    the labels and rendered annotations of what fires, when, and what stays quiet."""
    result = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_promtool_test_where_it_fires() -> None:
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired = {check["alertname"] for case in cases for check in case["alert_rule_test"] if check["exp_alerts"]}
    assert {rule["alert"] for rule in _alert_rules()} - fired == set()


def test_the_grafana_dashboard_loads_and_asks_for_known_metrics() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
    used: set[str] = set()
    for title, expr in _dashboard_targets():
        # Grafana puts a duration in place of $__rate_interval before it sends the query.
        used |= check_expression(expr.replace("$__rate_interval", "5m"))
        assert title
    assert set(METRICS) - used == set(), "metrics of the contract the dashboard does not show"
