"""Shared pieces of every dashboard: datasource and template variables, panel helpers.

Datasources are never hard-coded: every dashboard has a datasource variable (`datasource`
for Prometheus, `clickhouse` for ClickHouse) and every panel and variable points at it.
Every dashboard has the four filter variables the issue asks for: identity, tag, provider
and model, multi-select with "All" meaning every value (`.*` for PromQL).
"""

from __future__ import annotations

import json
import typing

from grafana_foundation_sdk.builders import bargauge, common as cb, dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm, dashboard as dm, prometheus as pm

PROM = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

#: PromQL label matchers for the filter variables, by the labels a family carries.
BY_CALLER = 'identity=~"$identity",provider=~"$provider",model=~"$model"'
BY_ROUTE = 'provider=~"$provider",model=~"$model"'
BY_TAG = 'tag=~"$tag",provider=~"$provider",model=~"$model"'
#: Budget gauges carry `tag` or `identity` (the other is ""); "All" (`.*`) matches "" too.
BY_BUDGET = 'budget=~"$budget",tag=~"$tag",identity=~"$identity"'

ALL_PROM = ".*"
# Tokens a budget counts: input + output (cache and reasoning are parts of those).
BUDGET_TYPES = 'type=~"input|output"'


def dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    """A dashboard with tailmeter's defaults: last 6 hours, 30s refresh, shared crosshair."""
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["tailmeter"])
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .readonly()
    )


def prometheus_datasource() -> db.DatasourceVariable:
    return db.DatasourceVariable("datasource").label("Prometheus").type("prometheus")


def prom_variable(name: str, label: str, query: str) -> db.QueryVariable:
    """A multi-select PromQL `label_values` variable whose "All" is `.*`."""
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(PROM)
        .query({"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"})
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(ALL_PROM)
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )


def prom_filters() -> list[db.QueryVariable]:
    """identity, tag, provider, model: the filters of every Prometheus dashboard."""
    return [
        prom_variable("identity", "Identity", "label_values(tailmeter_requests_total, identity)"),
        prom_variable("tag", "Tag", "label_values(tailmeter_tag_tokens_total, tag)"),
        prom_variable("provider", "Provider", "label_values(tailmeter_requests_total, provider)"),
        prom_variable("model", "Model", 'label_values(tailmeter_requests_total{provider=~"$provider"}, model)'),
    ]


def q(expr: str, legend: str = "__auto", ref: str = "A") -> prometheus.Dataquery:
    """A Prometheus range query."""
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).range()


def qi(expr: str, legend: str = "__auto", ref: str = "A", table_format: bool = False) -> prometheus.Dataquery:
    """A Prometheus instant query (stats, gauges, tables)."""
    query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).instant()
    if table_format:
        query = query.format(pm.PromQueryFormat.TABLE)
    return query


def legend() -> cb.VizLegendOptions:
    return (
        cb.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.TABLE)
        .placement(cm.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(["mean", "max", "lastNotNull"])
    )


def tooltip() -> cb.VizTooltipOptions:
    return cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)


def ts(title: str, unit: str, desc: str, *targets: cogbuilder.Builder, w: int = 12, h: int = 8, stack: bool = False,
       ds: dm.DataSourceRef = PROM) -> timeseries.Panel:
    """A time-series panel."""
    panel = (
        timeseries.Panel().title(title).description(desc).datasource(ds).unit(unit)
        .span(w).height(h).legend(legend()).tooltip(tooltip()).fill_opacity(10).line_width(1)
        .targets(list(targets))
    )
    if stack:
        panel = panel.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    return panel


def reduce_last() -> cb.ReduceDataOptions:
    return cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def single(title: str, unit: str, desc: str, target: cogbuilder.Builder, w: int = 4, h: int = 4,
           ds: dm.DataSourceRef = PROM) -> stat.Panel:
    """A stat panel showing one number."""
    return (
        stat.Panel().title(title).description(desc).datasource(ds).unit(unit)
        .span(w).height(h).reduce_options(reduce_last()).graph_mode(cm.BigValueGraphMode.AREA)
        .color_mode(cm.BigValueColorMode.VALUE).with_target(target)
    )


def bars(title: str, unit: str, desc: str, target: cogbuilder.Builder, w: int = 12, h: int = 8,
         maximum: float | None = None, thresholds: list[tuple[str, float | None]] | None = None) -> bargauge.Panel:
    """A horizontal bar gauge, one bar per series (top-N lists, budget use)."""
    panel = (
        bargauge.Panel().title(title).description(desc).datasource(PROM).unit(unit)
        .span(w).height(h).reduce_options(reduce_last()).orientation(cm.VizOrientation.HORIZONTAL)
        .display_mode(cm.BarGaugeDisplayMode.GRADIENT).min(0).with_target(target)
    )
    if maximum is not None:
        panel = panel.max(maximum)
    if thresholds:
        steps = [dm.Threshold(color=color, value=value) for color, value in thresholds]
        panel = panel.thresholds(
            db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps)
        )
    return panel


def grid(title: str, desc: str, *targets: cogbuilder.Builder, w: int = 24, h: int = 8,
         ds: dm.DataSourceRef = PROM, transformations: list[dm.DataTransformerConfig] | None = None) -> table.Panel:
    """A table panel."""
    panel = (
        table.Panel().title(title).description(desc).datasource(ds).span(w).height(h)
        .show_header(True).filterable(True).targets(list(targets))
    )
    if transformations:
        panel = panel.transformations(transformations)
    return panel


def merge_and_organize(rename: dict[str, str], exclude: list[str]) -> list[dm.DataTransformerConfig]:
    """Join instant table queries on their labels, hide `Time`, rename `Value #X` columns."""
    return [
        dm.DataTransformerConfig(id_val="merge", options={}),
        dm.DataTransformerConfig(
            id_val="organize",
            options={"excludeByName": {name: True for name in ["Time", *exclude]}, "renameByName": rename},
        ),
    ]


def row(title: str) -> db.Row:
    return db.Row(title)


def render(builder: db.Dashboard) -> str:
    """The dashboard as stable, pretty JSON (sorted keys, panel ids numbered in order)."""
    data = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    for number, panel in enumerate(typing.cast(list[dict], data.get("panels", [])), start=1):
        panel["id"] = number
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
