"""The Prometheus rules: `promtool check rules` and `promtool test rules` (deploy/prometheus).

Every alert has a unit test in which it fires and one in which it does not, and every
recording rule is either asserted in a test or feeds an alert that is.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from harness.procs import REPO

PROM = REPO / "deploy" / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.yml"))
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: apt-get install prometheus")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=PROM)


def test_rules_are_valid() -> None:
    out = _run("check", "rules", *map(str, RULE_FILES))
    assert out.returncode == 0, out.stdout + out.stderr


def test_rule_unit_tests_pass() -> None:
    out = _run("test", "rules", *map(str, TEST_FILES))
    assert out.returncode == 0, out.stdout + out.stderr


def _rules() -> list[dict]:
    return [r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]]


def _cases() -> list[dict]:
    return [t for f in TEST_FILES for t in yaml.safe_load(f.read_text())["tests"]]


def test_every_alert_fires_and_stays_silent_in_a_test() -> None:
    checks = [c for t in _cases() for c in t.get("alert_rule_test", [])]
    for alert in (r["alert"] for r in _rules() if "alert" in r):
        mine = [c for c in checks if c["alertname"] == alert]
        assert any(c.get("exp_alerts") for c in mine), f"{alert}: no test where it fires"
        assert any(not c.get("exp_alerts") for c in mine), f"{alert}: no test where it stays silent"


def test_every_recording_rule_is_covered() -> None:
    tested = " ".join(e["expr"] for t in _cases() for e in t.get("promql_expr_test", []))
    alerting = " ".join(r["expr"] for r in _rules() if "alert" in r)
    recorded = {r["record"]: r["expr"] for r in _rules() if "record" in r}
    # A recording counts as covered when a test asserts it, or an alert (or a covered
    # recording) reads it.
    covered = {name for name in recorded if name in tested or name in alerting}
    changed = True
    while changed:
        changed = False
        for name, _ in recorded.items():
            if name not in covered and any(name in recorded[c] for c in covered):
                covered.add(name)
                changed = True
    assert set(recorded) == covered, f"untested recording rules: {sorted(set(recorded) - covered)}"
