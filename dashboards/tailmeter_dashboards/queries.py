"""Every query of a dashboard JSON, and Grafana's expansion of it, for the integration tests.

Grafana (and the ClickHouse plugin) rewrite a query before the datasource sees it:
variables, `$__rate_interval`, `$__range`, and the plugin's SQL macros. The tests run the
queries against a real Prometheus and ClickHouse, so they need the same rewriting; this
module is that rewriting, kept to what the dashboards use and following the plugin's
macro definitions (`$__timeFilter(c)` -> `c >= toDateTime(from) AND c <= toDateTime(to)`,
`$__timeInterval(c)` -> `toStartOfInterval(toDateTime(c), INTERVAL n second)`,
`$__conditionalAll(cond, $v)` -> `1=1` when `$v` is All).
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass

ALL = "$__all"


@dataclass(frozen=True)
class Query:
    """One query found in a dashboard."""

    dashboard: str
    where: str  # "panel 'Title' A" or "variable identity"
    datasource: str  # "prometheus" or "grafana-clickhouse-datasource"
    text: str

    def __str__(self) -> str:
        return f"{self.dashboard}: {self.where}"


def _variable_query(v: dict[str, typing.Any]) -> str:
    query = v.get("query", "")
    return query.get("query", "") if isinstance(query, dict) else query


def queries(name: str, data: dict[str, typing.Any]) -> list[Query]:
    """Every panel target and query variable of a dashboard."""
    out = []
    for v in data.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            out.append(Query(name, f"variable {v['name']}", v["datasource"]["type"], _variable_query(v)))
    for panel in data.get("panels", []):
        for target in panel.get("targets", []):
            ds = target.get("datasource", panel.get("datasource", {}))["type"]
            text = target.get("expr") if ds == "prometheus" else target.get("rawSql")
            out.append(Query(name, f"panel {panel['title']!r} {target.get('refId', '')}", ds, text or ""))
    return out


# ---- PromQL ----------------------------------------------------------------------------

LABEL_VALUES = re.compile(r"^label_values\((?:(?P<expr>.+),\s*)?(?P<label>\w+)\)$", re.S)


def promql(text: str, variables: dict[str, str], rate_interval: str = "1m", range_: str = "10m",
           interval: str = "15s") -> str:
    """A panel expression or `label_values` variable query as Prometheus receives it.

    `variables` maps a name to its regex value (`.*` for All). `label_values(expr, label)`
    becomes `group by (label) (expr)`: the series Grafana would read the values from.
    """
    for name, value in {"__rate_interval": rate_interval, "__range": range_, "__interval": interval,
                        **variables}.items():
        text = text.replace(f"${{{name}}}", value)
        text = re.sub(rf"\${re.escape(name)}\b", lambda _m, v=value: v, text)
    match = LABEL_VALUES.match(text.strip())
    if match:
        expr = match.group("expr") or "{__name__=~\".+\"}"
        text = f"group by ({match.group('label')}) ({expr})"
    return text


# ---- ClickHouse SQL ---------------------------------------------------------------------

def _macro_args(text: str, open_at: int) -> tuple[list[str], int]:
    """The comma-separated arguments of a macro call whose `(` is at `open_at`, and the index after `)`."""
    depth, args, start = 0, [], open_at + 1
    for i in range(open_at, len(text)):
        ch = text[i]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth == 0:
                args.append(text[start:i].strip())
                return args, i + 1
        elif ch == "," and depth == 1:
            args.append(text[start:i].strip())
            start = i + 1
    raise ValueError(f"unbalanced macro call at {open_at}: {text[open_at:open_at + 60]!r}")


def _replace_macro(text: str, name: str, expand: typing.Callable[[list[str]], str]) -> str:
    token = f"$__{name}("
    while (at := text.find(token)) != -1:
        args, end = _macro_args(text, at + len(token) - 1)
        text = text[:at] + expand(args) + text[end:]
    return text


def clickhouse_sql(text: str, variables: dict[str, list[str] | str], from_s: int, to_s: int,
                   interval_s: int = 60) -> str:
    """A ClickHouse SQL target as the plugin sends it: conditionalAll, variables, then macros.

    `variables` maps a name to a list of values, or to `ALL`.
    """
    def conditional_all(args: list[str]) -> str:
        value = variables.get(args[1].lstrip("$").strip("{}"), ALL)
        return "1=1" if value == ALL or value == [] else args[0]

    text = _replace_macro(text, "conditionalAll", conditional_all)
    for name, value in variables.items():
        values = [] if value == ALL else list(value)
        quoted = ",".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)
        text = text.replace(f"${{{name}:singlequote}}", quoted)
        text = text.replace(f"${{{name}}}", quoted)
        text = re.sub(rf"\${re.escape(name)}\b", lambda _m, q=quoted: q, text)
    text = _replace_macro(text, "timeFilter", lambda a: f"{a[0]} >= toDateTime({from_s}) AND {a[0]} <= toDateTime({to_s})")
    text = _replace_macro(
        text, "timeInterval", lambda a: f"toStartOfInterval(toDateTime({a[0]}), INTERVAL {max(interval_s, 1)} second)"
    )
    text = text.replace("$__fromTime", f"toDateTime({from_s})").replace("$__toTime", f"toDateTime({to_s})")
    text = text.replace("$__interval_s", str(max(interval_s, 1)))
    if "$" in text:
        raise ValueError(f"unexpanded macro or variable left in SQL: {text}")
    return text
