"""The query model of the `grafana-clickhouse-datasource` plugin (v4, SQL editor).

The foundation SDK has no builder for this plugin, so this module adds one in the SDK's
own terms (a `Dataquery` variant with `to_json`/`from_json`, registered under the plugin
id) so the SDK's dashboard models round-trip ClickHouse targets like any other.
"""

from __future__ import annotations

import typing

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder, runtime as cogruntime, variants as cogvariants
from grafana_foundation_sdk.models import dashboard as dm

PLUGIN = "grafana-clickhouse-datasource"
CH = dm.DataSourceRef(type_val=PLUGIN, uid="${clickhouse}")
TABLE = "tailmeter.requests"

#: `format` of the plugin's v3 query model, still read by v4 when present.
_FORMATS = {"table": 1, "timeSeries": 0}


class Dataquery(cogvariants.Dataquery):
    """One SQL target."""

    def __init__(self, raw_sql: str = "", ref_id: str = "A", query_type: str = "table",
                 datasource: dm.DataSourceRef | None = None) -> None:
        self.raw_sql = raw_sql
        self.ref_id = ref_id
        self.query_type = query_type
        self.datasource = datasource or CH

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": self.datasource,
            "editorType": "sql",
            "format": _FORMATS[self.query_type],
            "queryType": self.query_type,
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> typing.Self:
        return cls(
            raw_sql=data["rawSql"],
            ref_id=data["refId"],
            query_type=data["queryType"],
            datasource=dm.DataSourceRef.from_json(data["datasource"]),
        )


class Query(cogbuilder.Builder[Dataquery]):
    """Builder for a SQL target."""

    def __init__(self, raw_sql: str, ref_id: str = "A", timeseries: bool = False) -> None:
        self._internal = Dataquery(raw_sql.strip(), ref_id, "timeSeries" if timeseries else "table")

    def build(self) -> Dataquery:
        return self._internal


def register() -> None:
    """Teach the SDK's decoder this plugin's targets (for `Dashboard.from_json`)."""
    cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(identifier=PLUGIN, from_json_hook=Dataquery.from_json))


def datasource_variable() -> db.DatasourceVariable:
    return db.DatasourceVariable("clickhouse").label("ClickHouse").type(PLUGIN)


def variable(name: str, label: str, sql: str) -> db.QueryVariable:
    """A multi-select variable from SQL. "All" is handled by `$__conditionalAll` in the panels."""
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(CH)
        .query(sql)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )


def filters() -> list[db.QueryVariable]:
    """identity, tag, provider, model from the rows of the selected time range."""
    window = f"FROM {TABLE} WHERE $__timeFilter(ts)"
    return [
        variable("identity", "Identity", f"SELECT DISTINCT identity {window} ORDER BY identity"),
        variable("tag", "Tag", f"SELECT DISTINCT arrayJoin(tags) AS tag {window} ORDER BY tag"),
        variable("provider", "Provider", f"SELECT DISTINCT provider {window} ORDER BY provider"),
        variable("model", "Model", f"SELECT DISTINCT model {window} AND $__conditionalAll(provider IN (${{provider:singlequote}}), $provider) ORDER BY model"),
    ]


#: The WHERE clause every panel shares: the time range and the four filters.
WHERE = """WHERE $__timeFilter(ts)
  AND $__conditionalAll(identity IN (${identity:singlequote}), $identity)
  AND $__conditionalAll(hasAny(tags, [${tag:singlequote}]), $tag)
  AND $__conditionalAll(provider IN (${provider:singlequote}), $provider)
  AND $__conditionalAll(model IN (${model:singlequote}), $model)"""
