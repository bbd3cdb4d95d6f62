"""The Grafana dashboards are valid against Grafana's dashboard schema and up to date.

Schema: each dashboards/*.json is decoded into the grafana-foundation-sdk models (generated
from Grafana's schema, v41) and must round-trip losslessly with every field of the right
type (see dashboards/tailmeter_dashboards/schema.py). Up to date: regenerating the JSON
from its Python definition gives the committed bytes.
"""

from __future__ import annotations

import json
import sys

import pytest

from harness.procs import REPO

pytest.importorskip("grafana_foundation_sdk", reason="pip install grafana-foundation-sdk (tests/python/requirements.txt)")
sys.path.insert(0, str(REPO / "dashboards"))
from tailmeter_dashboards import DASHBOARDS, schema  # noqa: E402
from tailmeter_dashboards.common import render  # noqa: E402

NAMES = list(DASHBOARDS)


@pytest.mark.parametrize("name", NAMES)
def test_dashboard_matches_grafana_schema(name: str) -> None:
    data = json.loads((REPO / "dashboards" / name).read_text())
    assert schema.problems(data) == []


@pytest.mark.parametrize("name", NAMES)
def test_dashboard_json_is_generated(name: str) -> None:
    committed = (REPO / "dashboards" / name).read_text()
    assert committed == render(DASHBOARDS[name]()), f"dashboards/{name} is stale: run python3 dashboards/generate.py"


def test_validator_rejects_what_grafana_would_not_read() -> None:
    """The check has teeth: an unknown key, a wrong type, a hard-coded datasource uid."""
    data = json.loads((REPO / "dashboards" / "overview.json").read_text())
    panel = next(p for p in data["panels"] if p["type"] == "timeseries")
    panel["legend"] = {"show": True}  # a pre-schema (graph panel) key
    panel["gridPos"]["w"] = "half"
    panel["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
    found = "\n".join(schema.problems(data))
    assert ".legend: not in the schema" in found
    assert "grid_pos.w: 'half'" in found
    assert "'P1809F7CD0C75ACF3' is not a datasource variable" in found


def test_every_dashboard_has_the_filter_variables() -> None:
    for name in NAMES:
        data = json.loads((REPO / "dashboards" / name).read_text())
        names = {v["name"] for v in data["templating"]["list"]}
        assert {"identity", "tag", "provider", "model"} <= names, name


def test_provisioning_points_at_the_dashboards() -> None:
    """deploy/grafana provisions the dashboards directory and both datasources by type."""
    import yaml

    provider = yaml.safe_load((REPO / "deploy" / "grafana" / "provisioning" / "dashboards" / "tailmeter.yml").read_text())
    assert provider["providers"][0]["options"]["path"]
    sources = yaml.safe_load((REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "tailmeter.yml").read_text())
    types = {d["type"] for d in sources["datasources"]}
    assert types == {"prometheus", "grafana-clickhouse-datasource"}
