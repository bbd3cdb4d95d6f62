"""Check a dashboard JSON against Grafana's dashboard schema, as the foundation SDK models it.

The SDK's models are generated from Grafana's schema (kind `dashboard`, schemaVersion 41,
and each core panel plugin's options and field config). `problems` decodes the JSON into
those models and encodes it back: any field the schema does not know is dropped on the
way, any value of the wrong shape fails to decode, so a lossless round trip means every
key is a schema key. On top of that it checks what the schema leaves loose: known panel
types, datasource references through variables only, unique panel ids.
"""

from __future__ import annotations

import enum
import json
import typing

from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from . import clickhouse

SCHEMA_VERSION = 41
PANEL_TYPES = {"row", "timeseries", "stat", "table", "bargauge"}
FILTERS = {"identity", "tag", "provider", "model"}

_registered = False


def _register() -> None:
    global _registered
    if not _registered:
        plugins.register_default_plugins()
        clickhouse.register()
        _registered = True


def _diff(path: str, want: typing.Any, got: typing.Any, out: list[str]) -> None:
    if isinstance(want, dict) and isinstance(got, dict):
        for key in sorted(set(want) | set(got)):
            if key not in got:
                out.append(f"{path}.{key}: not in the schema (dropped by the SDK model)")
            elif key not in want:
                out.append(f"{path}.{key}: added by the SDK model (a default the JSON lacks)")
            else:
                _diff(f"{path}.{key}", want[key], got[key], out)
    elif isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for i, (a, b) in enumerate(zip(want, got)):
            _diff(f"{path}[{i}]", a, b, out)
    elif want != got:
        out.append(f"{path}: {json.dumps(want)[:80]} decodes as {json.dumps(got)[:80]}")


def _matches(value: typing.Any, hint: typing.Any) -> bool:
    """Whether `value` (as decoded by the SDK) has the type the schema gives its field."""
    if hint is typing.Any or hint is object:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        return any(_matches(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if origin is list:
        return isinstance(value, list) and all(_matches(v, args[0]) for v in value) if args else isinstance(value, list)
    if origin is dict:
        return isinstance(value, dict)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return isinstance(value, hint) or value in {m.value for m in hint}
    if isinstance(hint, type):
        # The SDK leaves a few nested objects (transformations) as plain dicts when decoding.
        return isinstance(value, hint) or (isinstance(value, dict) and hasattr(hint, "from_json"))
    return True


def _type_errors(obj: typing.Any, path: str, out: list[str]) -> None:
    """Walks the decoded models and reports every field whose value has the wrong type."""
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            _type_errors(item, f"{path}[{i}]", out)
        return
    module = getattr(type(obj), "__module__", "")
    if not module.startswith("grafana_foundation_sdk.models"):
        return
    try:
        hints = typing.get_type_hints(type(obj))
    except (NameError, TypeError):
        return
    for name, hint in hints.items():
        value = getattr(obj, name, None)
        if not _matches(value, hint):
            out.append(f"{path}.{name}: {value!r:.60} is not {hint}")
        _type_errors(value, f"{path}.{name}", out)


def problems(data: dict[str, typing.Any]) -> list[str]:
    """Everything wrong with one dashboard; empty when it is valid."""
    _register()
    out: list[str] = []
    try:
        model = dm.Dashboard.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        return [f"does not decode as a Grafana dashboard: {err!r}"]
    _diff("$", data, json.loads(json.dumps(model, cls=JSONEncoder)), out)
    _type_errors(model, "$", out)

    if data.get("schemaVersion") != SCHEMA_VERSION:
        out.append(f"schemaVersion {data.get('schemaVersion')} is not the current {SCHEMA_VERSION}")
    ids = [p.get("id") for p in data.get("panels", [])]
    if len(ids) != len(set(ids)) or None in ids:
        out.append(f"panel ids must be unique and present: {ids}")
    variables = {v["name"]: v for v in data.get("templating", {}).get("list", [])}
    if missing := FILTERS - set(variables):
        out.append(f"missing template variables: {sorted(missing)}")
    datasource_vars = {name for name, v in variables.items() if v["type"] == "datasource"}
    if not datasource_vars:
        out.append("no datasource variable")
    for where, ref in _datasource_refs(data):
        uid = ref.get("uid", "")
        if not (uid.startswith("${") and uid[2:-1] in datasource_vars):
            out.append(f"{where}: datasource uid {uid!r} is not a datasource variable")
    for panel in data.get("panels", []):
        if panel.get("type") not in PANEL_TYPES:
            out.append(f"panel {panel.get('title')!r}: unexpected type {panel.get('type')!r}")
        if panel.get("type") != "row" and not panel.get("targets"):
            out.append(f"panel {panel.get('title')!r}: no queries")
    return out


def _datasource_refs(data: dict[str, typing.Any]) -> typing.Iterator[tuple[str, dict[str, str]]]:
    for panel in data.get("panels", []):
        if "datasource" in panel:
            yield f"panel {panel['title']!r}", panel["datasource"]
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} target {target.get('refId')}", target.get("datasource", panel["datasource"])
    for variable in data.get("templating", {}).get("list", []):
        if "datasource" in variable:
            yield f"variable {variable['name']}", variable["datasource"]
