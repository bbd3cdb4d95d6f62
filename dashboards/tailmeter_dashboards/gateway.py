"""Gateway health: exporters and spool, identity lookups, upstream errors, accounting gaps."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from .common import BY_CALLER, BY_ROUTE, dashboard, prom_filters, prometheus_datasource, q, qi, row, single, ts


def build() -> db.Dashboard:
    d = dashboard(
        "tailmeter-gateway",
        "tailmeter / Gateway health",
        "Is tailmeter itself healthy: exporters, spool, identity lookups, upstream errors.",
    ).with_variable(prometheus_datasource())
    for variable in prom_filters():
        d = d.with_variable(variable)
    d = (
        d.with_row(row("Exporters"))
        .with_panel(ts("Exporter rows/s by sink and result", "short",
                       "Usage rows handed to each sink: written, spooled, retried or dropped.",
                       q("sum by (sink, result) (rate(tailmeter_exporter_rows_total[$__rate_interval]))",
                         "{{sink}} {{result}}"), w=8))
        .with_panel(ts("Exporter queue depth", "short", "Rows waiting in each exporter's bounded queue.",
                       q("sum by (sink) (tailmeter_exporter_queue_depth)", "{{sink}}"), w=8))
        .with_panel(ts("Spool size", "bytes", "Bytes spooled to disk while a sink is unreachable; it must drain.",
                       q("sum by (sink) (tailmeter_exporter_spool_bytes)", "{{sink}}"), w=8))
        .with_row(row("Identity"))
        .with_panel(ts("Identity lookups/s by result", "short",
                       "Caller lookups (static entries, tailscaled whois) and their outcome.",
                       q("sum by (source, result) (rate(tailmeter_identity_lookups_total[$__rate_interval]))",
                         "{{source}} {{result}}")))
        .with_panel(ts("Unidentified and refused callers", "reqps",
                       "Requests from callers tailmeter could not identify, and 403 refusals.",
                       q('sum by (code) (rate(tailmeter_requests_total{identity="__unidentified__"}[$__rate_interval]))',
                         "unidentified {{code}}", "A"),
                       q(f'sum by (identity) (rate(tailmeter_requests_total{{{BY_CALLER},code="403"}}[$__rate_interval]))',
                         "403 {{identity}}", "B")))
        .with_row(row("Upstreams"))
        .with_panel(ts("Upstream errors/s by provider", "reqps", "5xx answers per provider (including unreachable upstreams).",
                       q(f'sum by (provider, code) (rate(tailmeter_requests_total{{{BY_CALLER},code=~"5.."}}[$__rate_interval]))',
                         "{{provider}} {{code}}")))
        .with_panel(ts("Upstream error ratio by provider", "percentunit", "5xx over all requests, per provider.",
                       q(f'(sum by (provider) (rate(tailmeter_requests_total{{{BY_CALLER},code=~"5.."}}[$__rate_interval]))'
                         f' or 0 * sum by (provider) (rate(tailmeter_requests_total{{{BY_CALLER}}}[$__rate_interval])))'
                         f' / sum by (provider) (rate(tailmeter_requests_total{{{BY_CALLER}}}[$__rate_interval]))',
                         "{{provider}}")))
        .with_panel(ts("p99 request duration by provider", "s", "Slowest 1% of requests, per provider.",
                       q(f"histogram_quantile(0.99, sum by (le, provider) (rate(tailmeter_request_duration_seconds_bucket{{{BY_ROUTE}}}[$__rate_interval])))",
                         "{{provider}}")))
        .with_panel(ts("Provider connect failures/s by reason", "short",
                       "Connect attempts to a provider that failed (refused, timeout, TLS), counted even when "
                       "the request went on to the provider's next address and was answered.",
                       q('sum by (provider, reason) (rate(tailmeter_upstream_connect_failures_total{provider=~"$provider"}[$__rate_interval]))',
                         "{{provider}} {{reason}}")))
        .with_row(row("Accounting gaps"))
        .with_panel(ts("Usage missing by reason", "reqps", "Requests whose usage was estimated, per reason.",
                       q('sum by (provider, endpoint, reason) (rate(tailmeter_usage_missing_total{provider=~"$provider"}[$__rate_interval]))',
                         "{{provider}} {{endpoint}} {{reason}}")))
        .with_panel(single("Unpriced requests", "short",
                           "Requests for models without a [prices] entry (counted at cost 0) over the range.",
                           qi(f'sum(increase(tailmeter_unpriced_requests_total{{{BY_ROUTE}}}[$__range])) or vector(0)'), w=4))
        .with_panel(single("Background usage to count", "short",
                           "Background Responses whose usage is still to count: tailmeter retrieves each "
                           "until it finishes (alert TailmeterBackgroundUsageUnreadable if it cannot).",
                           qi("sum(tailmeter_stored_responses_pending)"), w=4))
        .with_panel(single("In flight", "short", "Requests being proxied right now.",
                           qi("sum(tailmeter_inflight_requests)"), w=4))
    )
    return d
