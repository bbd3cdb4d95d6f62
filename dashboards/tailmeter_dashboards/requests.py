"""Requests: the per-request usage rows in ClickHouse (table `tailmeter.requests`).

What Prometheus cannot hold: one row per request, cost per identity per day, cache hit
ratios, the slowest requests, and which clients (Claude Code, Codex, Gemini CLI, apps) send traffic.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from .clickhouse import CH, TABLE, WHERE, Query, datasource_variable, filters
from .common import dashboard, grid, row, ts

#: The client family of a request, from its User-Agent.
CLIENT = """multiIf(
    user_agent ILIKE 'claude-cli/%' OR user_agent ILIKE '%claude-code%', 'Claude Code',
    user_agent ILIKE 'codex%', 'Codex',
    user_agent ILIKE 'GeminiCLI%', 'Gemini CLI',
    user_agent ILIKE '%open-webui%' OR user_agent ILIKE '%aiohttp/%', 'Open WebUI / aiohttp app',
    user_agent ILIKE 'OpenAI/%' OR user_agent ILIKE 'AsyncOpenAI/%', 'OpenAI SDK app',
    user_agent ILIKE 'Anthropic/%' OR user_agent ILIKE 'AsyncAnthropic/%', 'Anthropic SDK app',
    user_agent ILIKE '%google-genai%' OR user_agent ILIKE '%goog-api-client%', 'Gemini SDK app',
    user_agent ILIKE '%Boto3/%' OR user_agent ILIKE '%Botocore/%' OR user_agent ILIKE 'aws-sdk%', 'AWS SDK app',
    user_agent = '', '(no user agent)',
    'other')"""


def _sql(select: str, tail: str) -> str:
    return f"{select}\nFROM {TABLE}\n{WHERE}\n{tail}"


def build() -> db.Dashboard:
    d = dashboard(
        "tailmeter-requests",
        "tailmeter / Requests",
        "Per-request usage rows from ClickHouse: who called what, at what cost, how fast, from which client.",
    ).with_variable(datasource_variable())
    for variable in filters():
        d = d.with_variable(variable)

    requests_sql = _sql(
        "SELECT ts, identity, login, node, provider, model, endpoint, stream, status,\n"
        "  input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,\n"
        "  round(cost_usd, 6) AS cost_usd, duration_ms, ttft_ms, usage_source, user_agent, request_id, trace_id",
        "ORDER BY ts DESC\nLIMIT 1000",
    )
    volume_sql = _sql(
        "SELECT $__timeInterval(ts) AS time,\n  concat(toString(intDiv(status, 100)), 'xx') AS status_class,\n  count() AS requests",
        "GROUP BY time, status_class\nORDER BY time",
    )
    cost_sql = _sql(
        "SELECT toDate(ts) AS day, identity, count() AS requests,\n"
        "  sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,\n"
        "  round(sum(cost_usd), 6) AS cost_usd",
        "GROUP BY day, identity\nORDER BY day DESC, cost_usd DESC",
    )
    cost_series_sql = _sql(
        "SELECT toStartOfDay(ts) AS time, identity, sum(cost_usd) AS cost_usd",
        "GROUP BY time, identity\nORDER BY time",
    )
    cache_sql = _sql(
        "SELECT provider, model, sum(input_tokens) AS input,\n"
        "  sum(cache_read_tokens) AS cache_read, sum(cache_write_tokens) AS cache_write,\n"
        "  if(input = 0, 0, cache_read / input) AS cache_hit_ratio",
        "GROUP BY provider, model\nORDER BY input DESC",
    )
    cache_series_sql = _sql(
        "SELECT $__timeInterval(ts) AS time, model,\n"
        "  if(sum(input_tokens) = 0, 0, sum(cache_read_tokens) / sum(input_tokens)) AS cache_hit_ratio",
        "GROUP BY time, model\nORDER BY time",
    )
    slowest_sql = _sql(
        "SELECT ts, identity, provider, model, endpoint, stream, status, duration_ms, ttft_ms,\n"
        "  output_tokens, request_id",
        "ORDER BY duration_ms DESC\nLIMIT 25",
    )
    clients_sql = _sql(
        f"SELECT {CLIENT} AS client,\n  count() AS requests, uniqExact(identity) AS identities,\n"
        "  sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,\n"
        "  round(sum(cost_usd), 6) AS cost_usd",
        "GROUP BY client\nORDER BY requests DESC",
    )
    agents_sql = _sql(
        "SELECT user_agent, count() AS requests, uniqExact(identity) AS identities,\n"
        "  sum(input_tokens + output_tokens) AS tokens",
        "GROUP BY user_agent\nORDER BY requests DESC\nLIMIT 50",
    )
    quality_sql = _sql(
        "SELECT provider, endpoint, usage_source, count() AS requests,\n"
        "  sum(input_tokens + output_tokens) AS tokens",
        "GROUP BY provider, endpoint, usage_source\nORDER BY requests DESC",
    )
    errors_sql = _sql(
        "SELECT status, provider, model, identity, count() AS requests, max(ts) AS last_seen",
        "  AND status >= 400\nGROUP BY status, provider, model, identity\nORDER BY requests DESC",
    )
    d = (
        d.with_row(row("Requests"))
        .with_panel(ts("Requests by status class", "short", "Rows per interval, by HTTP status class.",
                       Query(volume_sql, timeseries=True), w=24, h=7, stack=True, ds=CH))
        .with_panel(grid("Requests", "One row per request, newest first (at most 1000).",
                         Query(requests_sql), h=12, ds=CH))
        .with_row(row("Cost"))
        .with_panel(ts("Cost per day by identity", "currencyUSD", "USD per day and identity.",
                       Query(cost_series_sql, timeseries=True), w=12, ds=CH, stack=True))
        .with_panel(grid("Cost by identity per day", "Requests, tokens and USD per day and identity.",
                         Query(cost_sql), w=12, ds=CH))
        .with_row(row("Cache"))
        .with_panel(grid("Cache hit ratio by model", "Cached input (cache_read) over all input, per model.",
                         Query(cache_sql), w=12, ds=CH))
        .with_panel(ts("Cache hit ratio over time", "percentunit", "cache_read over input, per model.",
                       Query(cache_series_sql, timeseries=True), w=12, ds=CH))
        .with_row(row("Latency"))
        .with_panel(grid("Slowest requests", "The 25 longest requests in the range.", Query(slowest_sql), ds=CH))
        .with_row(row("Clients"))
        .with_panel(grid("Usage by client", "Client family from the User-Agent: Claude Code, Codex, Gemini CLI, SDK apps.",
                         Query(clients_sql), w=12, ds=CH))
        .with_panel(grid("User agents", "The 50 most frequent raw User-Agent strings.", Query(agents_sql), w=12, ds=CH))
        .with_row(row("Accounting and errors"))
        .with_panel(grid("Usage source", "provider: reported exactly; estimated: cut or usage-less responses; "
                         "none: nothing to say (refused before any upstream).", Query(quality_sql), w=12, ds=CH))
        .with_panel(grid("Errors", "Non-2xx answers by status, route and caller.", Query(errors_sql), w=12, ds=CH))
    )
    return d
