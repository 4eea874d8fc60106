"""The alert rules of deploy/compose/alerts.yml under the real Prometheus tools: `promtool
check rules`, and `promtool test rules` with one file per alert in tests/deploy/alerts/
(each makes its alert fire, with its labels and rendered annotations, and stay quiet in a
healthy or not-yet-long-enough case)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploy.support import REPO, load_yaml

RULES = REPO / "deploy" / "compose" / "alerts.yml"
TESTS = Path(__file__).parent / "alerts"


def alert_names() -> list[str]:
    return [rule["alert"] for group in load_yaml(RULES)["groups"] for rule in group["rules"]
            if "alert" in rule]


def test_promtool_checks_the_rules(promtool):
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout


@pytest.mark.parametrize("alert", alert_names())
def test_promtool_unit_tests_the_alert(promtool, alert):
    test_file = TESTS / f"{alert}.test.yml"
    assert test_file.exists(), f"no promtool test for {alert}: add {test_file.relative_to(REPO)}"
    spec = load_yaml(test_file)
    assert (test_file.parent / spec["rule_files"][0]).resolve() == RULES
    cases = [case for test in spec["tests"] for case in test["alert_rule_test"]]
    assert {case["alertname"] for case in cases} == {alert}
    assert any(case["exp_alerts"] for case in cases), "never expected to fire"
    assert any(not case["exp_alerts"] for case in cases), "never expected to stay quiet"
    result = subprocess.run([promtool, "test", "rules", test_file.name], cwd=TESTS,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_test_file_is_for_an_alert_that_exists():
    assert sorted(p.name.removesuffix(".test.yml") for p in TESTS.glob("*.test.yml")) == \
        sorted(alert_names())
