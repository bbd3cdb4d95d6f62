"""Overview: traffic, errors, tokens, cost, who uses what, latency, in-flight, estimated usage."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from .common import BY_CALLER, BY_ROUTE, BY_TAG, bars, dashboard, prom_filters, prometheus_datasource
from .common import q, qi, row, single, ts

REQS = f"tailmeter_requests_total{{{BY_CALLER}}}"
ERRS = f'tailmeter_requests_total{{{BY_CALLER},code!~"2.."}}'
TOKENS = f"tailmeter_tokens_total{{{BY_CALLER}}}"
COST = f"tailmeter_cost_usd_total{{{BY_CALLER}}}"


def _quantiles(family: str) -> list:
    """p50, p90 and p99 of a histogram family, over the provider and model filters."""
    return [
        q(
            f"histogram_quantile({p}, sum by (le) (rate({family}_bucket{{{BY_ROUTE}}}[$__rate_interval])))",
            f"p{int(p * 100)}",
            ref,
        )
        for p, ref in ((0.5, "A"), (0.9, "B"), (0.99, "C"))
    ]


def build() -> db.Dashboard:
    d = dashboard(
        "tailmeter-overview",
        "tailmeter / Overview",
        "Traffic, tokens, cost and latency through the tailmeter LLM gateway.",
    ).with_variable(prometheus_datasource())
    for variable in prom_filters():
        d = d.with_variable(variable)

    d = (
        d.with_row(row("At a glance"))
        .with_panel(single("Requests/s", "reqps", "All requests answered, any status.",
                           qi(f"sum(rate({REQS}[$__rate_interval]))")))
        .with_panel(single("Error ratio", "percentunit", "Share of requests answered with a non-2xx status.",
                           qi(f"(sum(rate({ERRS}[$__rate_interval])) or vector(0)) / sum(rate({REQS}[$__rate_interval]))")))
        .with_panel(single("Tokens/s", "short", "Input + output tokens per second.",
                           qi(f'sum(rate(tailmeter_tokens_total{{{BY_CALLER},type=~"input|output"}}[$__rate_interval]))')))
        .with_panel(single("Cost, last hour", "currencyUSD", "USD spent in the last hour, from the configured prices.",
                           qi(f"sum(increase({COST}[1h]))")))
        .with_panel(single("Cost, last 24h", "currencyUSD", "USD spent in the last 24 hours.",
                           qi(f"sum(increase({COST}[1d]))")))
        .with_panel(single("In flight", "short", "Requests being proxied right now.",
                           qi("sum(tailmeter_inflight_requests)")))
        .with_row(row("Traffic"))
        .with_panel(ts("Requests/s by status", "reqps", "Requests answered, by HTTP status.",
                       q(f"sum by (code) (rate({REQS}[$__rate_interval]))", "{{code}}"), stack=True))
        .with_panel(ts("Errors/s by status and provider", "reqps",
                       "Non-2xx answers: tailmeter's refusals (403, 404, 413, 429) and upstream errors (5xx).",
                       q(f"sum by (code, provider) (rate({ERRS}[$__rate_interval]))", "{{code}} {{provider}}")))
        .with_row(row("Tokens"))
        .with_panel(ts("Tokens/s by type", "short",
                       "input includes cached input; output includes reasoning. cache_* and reasoning are parts.",
                       q(f"sum by (type) (rate({TOKENS}[$__rate_interval]))", "{{type}}")))
        .with_panel(ts("Tokens/s by model", "short", "Input + output tokens per second, per provider/model.",
                       q(f'sum by (provider, model) (rate(tailmeter_tokens_total{{{BY_CALLER},type=~"input|output"}}[$__rate_interval]))',
                         "{{provider}}/{{model}}"), stack=True))
        .with_panel(ts("Tokens/s by provider", "short", "Input + output tokens per second, per provider.",
                       q(f'sum by (provider) (rate(tailmeter_tokens_total{{{BY_CALLER},type=~"input|output"}}[$__rate_interval]))',
                         "{{provider}}"), stack=True))
        .with_panel(ts("Tokens/s by tag", "short", "Input + output tokens of tagged callers, one series per tag.",
                       q(f'sum by (tag) (rate(tailmeter_tag_tokens_total{{{BY_TAG},type=~"input|output"}}[$__rate_interval]))',
                         "{{tag}}"), stack=True))
        .with_row(row("Cost"))
        .with_panel(ts("Cost per hour by model", "currencyUSD", "Spend rate in USD per hour, per provider/model.",
                       q(f"sum by (provider, model) (rate({COST}[$__rate_interval])) * 3600", "{{provider}}/{{model}}"),
                       stack=True))
        .with_panel(ts("Cost per day by identity", "currencyUSD", "Spend rate in USD per day, per identity.",
                       q(f"sum by (identity) (rate({COST}[$__rate_interval])) * 86400", "{{identity}}"), stack=True))
        .with_row(row("Who"))
        .with_panel(bars("Top identities by tokens", "short", "Input + output tokens over the selected range.",
                         qi(f'topk(10, sum by (identity) (increase(tailmeter_tokens_total{{{BY_CALLER},type=~"input|output"}}[$__range])))',
                            "{{identity}}"), w=8))
        .with_panel(bars("Top tags by tokens", "short", "Input + output tokens of tagged callers over the range.",
                         qi(f'topk(10, sum by (tag) (increase(tailmeter_tag_tokens_total{{{BY_TAG},type=~"input|output"}}[$__range])))',
                            "{{tag}}"), w=8))
        .with_panel(bars("Top identities by cost", "currencyUSD", "USD over the selected range.",
                         qi(f"topk(10, sum by (identity) (increase({COST}[$__range])))", "{{identity}}"), w=8))
        .with_row(row("Latency"))
        .with_panel(ts("Request duration", "s", "Request start to end of response, all endpoints.",
                       *_quantiles("tailmeter_request_duration_seconds")))
        .with_panel(ts("Time to first token", "s", "Request start to the first response body byte.",
                       *_quantiles("tailmeter_time_to_first_token_seconds")))
        .with_row(row("Accounting quality"))
        .with_panel(ts("Share of estimated usage", "percentunit",
                       "Requests whose provider usage did not arrive (cut streams, upstream errors, omitted usage): "
                       "their tokens are estimated from what passed through. Image and audio answers that report "
                       "no tokens by design (reason no_token_usage) are not counted here.",
                       q(f'(sum(rate(tailmeter_usage_missing_total{{provider=~"$provider",reason!="no_token_usage"}}[$__rate_interval])) or vector(0))'
                         f' / sum(rate(tailmeter_requests_total{{{BY_CALLER}}}[$__rate_interval]))', "estimated")))
        .with_panel(ts("Usage missing by reason", "reqps", "Why provider usage was missing, per provider and endpoint.",
                       q('sum by (provider, endpoint, reason) (rate(tailmeter_usage_missing_total{provider=~"$provider"}[$__rate_interval]))',
                         "{{provider}} {{endpoint}} {{reason}}")))
    )
    return d
