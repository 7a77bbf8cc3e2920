"""The alert rules are valid and each alert fires when it should and not when all is fine
(`promtool test rules`); every metric the rules and the Grafana dashboard name is one
Herald exports. promtool comes from Debian's `prometheus` package (.ci/run installs it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.services import service_missing

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "herald.json"
COLLECTOR = ROOT / "src" / "herald" / "metrics" / "collector.py"
HTTP_METRICS = ROOT / "src" / "herald" / "core" / "metrics.py"

# A PromQL name that is a metric (not a function, keyword or label): herald_ and then more.
METRIC = re.compile(r"\bherald_[a-z0-9_]+\b")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        service_missing("promtool", "install Debian's prometheus package")
    assert path is not None
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args],
        check=False,
        cwd=RULES.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_rules_are_valid() -> None:
    result = run("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_when_it_should_and_not_when_fine() -> None:
    result = run("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    defined = set(re.findall(r"- alert: (\w+)", RULES.read_text()))
    assert defined and tested == defined


def exported() -> set[str]:
    """The names Herald exports: each family and its samples (_total, _bucket, ...)."""
    names: set[str] = set()
    source = COLLECTOR.read_text() + HTTP_METRICS.read_text()
    for kind, name in re.findall(
        r"(Gauge|Counter|Histogram)(?:MetricFamily)?\(\s*\"(herald_[a-z0-9_]+)\"", source
    ):
        names.add(name)
        if kind == "Counter":
            names.add(name + "_total")
        if kind == "Histogram":
            names.update(name + suffix for suffix in ("_bucket", "_sum", "_count"))
    # _histogram() builds the delivery histograms from a name passed to it.
    for name in re.findall(r"\"(herald_[a-z0-9_]+_seconds)\",\n", source):
        names.update(name + suffix for suffix in ("", "_bucket", "_sum", "_count"))
    return names


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found: list[str] = []
    for panel in dashboard["panels"]:
        found += [target["expr"] for target in panel.get("targets", [])]
    return found


def test_the_dashboard_and_the_rules_name_only_exported_metrics() -> None:
    names = exported()
    assert "herald_delivery_lateness_seconds_bucket" in names
    assert "herald_delivery_attempts_total" in names
    exprs = expressions()
    assert len(exprs) >= 8
    for expr in [*exprs, RULES.read_text()]:
        unknown = set(METRIC.findall(expr)) - names
        assert not unknown, f"{sorted(unknown)} in {expr[:80]!r}"


@pytest.mark.parametrize("title", ["Deliveries by state", "Scheduled lateness p99"])
def test_the_dashboard_has_its_main_panels(title: str) -> None:
    assert title in {panel["title"] for panel in json.loads(DASHBOARD.read_text())["panels"]}
