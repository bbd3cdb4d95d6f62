"""Budgets: each budget's use against its limit, burn rate, time to exhaustion, who uses it.

Burn rate and time to exhaustion come from the recording rules in
deploy/prometheus/rules/tailmeter.rules.yml (`tailmeter:budget_*`), the same series the
budget alerts use, so the dashboard shows exactly what pages.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from .common import BUDGET_TYPES, BY_BUDGET, bars, dashboard, grid, merge_and_organize, prom_filters
from .common import prom_variable, prometheus_datasource, q, qi, row, ts

LIMIT = f"tailmeter_budget_limit_tokens{{{BY_BUDGET}}}"
USED = f"tailmeter_budget_used_tokens{{{BY_BUDGET}}}"
WHO = "{{budget}} ({{tag}}{{identity}}, {{window}})"
# Identities of tagged nodes are their tags joined with ",": match the selected tag as one of them.
IN_TAG = 'identity=~"(.*,)?($tag)(,.*)?"'


def build() -> db.Dashboard:
    d = dashboard(
        "tailmeter-budgets",
        "tailmeter / Budgets",
        "Token budgets: use against limit, burn rate, projected exhaustion, and who inside a tag uses it.",
    ).with_variable(prometheus_datasource())
    for variable in prom_filters():
        d = d.with_variable(variable)
    d = d.with_variable(prom_variable("budget", "Budget", "label_values(tailmeter_budget_limit_tokens, budget)"))

    table_rename = {
        "Value #A": "limit", "Value #B": "used", "Value #C": "used %",
        "Value #D": "burn (1h, x pace)", "Value #E": "exhausted in",
    }
    d = (
        d.with_row(row("Use"))
        .with_panel(bars("Budget use", "percentunit", "Tokens used in the current window over the budget's limit.",
                         qi(f"{USED} / {LIMIT}", WHO), w=12, maximum=1,
                         thresholds=[("green", None), ("orange", 0.8), ("red", 1)]))
        .with_panel(grid(
            "Budgets", "Every budget, its limit, use, burn rate (1 = exactly uses the limit over one window) "
            "and the time left at the last hour's pace.",
            qi(LIMIT, ref="A", table_format=True),
            qi(USED, ref="B", table_format=True),
            qi(f"{USED} / {LIMIT}", ref="C", table_format=True),
            qi(f"tailmeter:budget_burn:rate1h{{{BY_BUDGET}}}", ref="D", table_format=True),
            qi(f"tailmeter:budget_exhaustion:seconds{{{BY_BUDGET}}}", ref="E", table_format=True),
            w=12, transformations=merge_and_organize(table_rename, ["__name__"]),
        ))
        .with_panel(ts("Used and limit", "short", "Tokens used in the window, against the limit (dashed).",
                       q(USED, f"used {WHO}", "A"), q(LIMIT, f"limit {WHO}", "B")))
        .with_panel(ts("Tokens/s against each budget", "short", "Input + output tokens per second counted by each budget.",
                       q(f"tailmeter:budget_tokens:rate5m{{{BY_BUDGET}}}", WHO)))
        .with_row(row("Burn"))
        .with_panel(ts("Burn rate (multiple of budget pace)", "short",
                       "Consumption over the window's pace: 1 uses exactly the limit in one window; above 1 the "
                       "budget runs out before the window ends. The alert pairs 1h with 5m and 6h with 30m.",
                       q(f"tailmeter:budget_burn:rate5m{{{BY_BUDGET}}}", f"5m {WHO}", "A"),
                       q(f"tailmeter:budget_burn:rate1h{{{BY_BUDGET}}}", f"1h {WHO}", "B"),
                       q(f"tailmeter:budget_burn:rate6h{{{BY_BUDGET}}}", f"6h {WHO}", "C")))
        .with_panel(ts("Projected time to exhaustion", "s", "Tokens left over the last hour's consumption rate.",
                       q(f"tailmeter:budget_exhaustion:seconds{{{BY_BUDGET}}}", WHO)))
        .with_row(row("Inside a tag"))
        .with_panel(bars("Who inside the tag uses it", "short",
                         "Input + output tokens over the range of each tagged identity carrying the selected tag.",
                         qi(f"topk(20, sum by (identity) (increase(tailmeter_tokens_total{{{IN_TAG},{BUDGET_TYPES}}}[$__range])))",
                            "{{identity}}")))
        .with_panel(bars("Models used by the tag", "short", "Input + output tokens of the tag over the range, per model.",
                         qi(f'sum by (tag, provider, model) (increase(tailmeter_tag_tokens_total{{tag=~"$tag",{BUDGET_TYPES}}}[$__range]))',
                            "{{tag}} {{provider}}/{{model}}")))
    )
    return d
