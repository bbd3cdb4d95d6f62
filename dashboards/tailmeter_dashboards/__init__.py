"""tailmeter's Grafana dashboards, built with the grafana-foundation-sdk.

The dashboards are Python, not hand-edited JSON: the SDK's builders only emit fields of
Grafana's dashboard schema (v41, Grafana 11.6 and later), so the JSON under `dashboards/`
is schema-shaped by construction. `dashboards/generate.py` writes it; the tests regenerate
it, compare, and re-parse it through the SDK's models (see `schema.py`).
"""

from . import budgets, gateway, overview, requests

#: File name (under dashboards/) -> builder function, in the order they are written.
DASHBOARDS = {
    "overview.json": overview.build,
    "budgets.json": budgets.build,
    "requests.json": requests.build,
    "gateway.json": gateway.build,
}
