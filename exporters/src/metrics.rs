//! The Prometheus families of the contract, registered on one registry that the admin
//! listener renders at `/metrics`. Label values come only from configuration (provider and
//! model names) or through [`BoundedLabels`], so a client can never mint new series.

use prometheus::{
    Counter, CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::event::{RequestEvent, NO_TOKEN_USAGE};
use crate::labels::BoundedLabels;

/// Buckets for whole-request durations: LLM calls run from milliseconds to many minutes.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Buckets for time to first token.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Every tailmeter metric family, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    identities: BoundedLabels,
    tags: BoundedLabels,
    requests: IntCounterVec,
    tokens: IntCounterVec,
    tag_tokens: IntCounterVec,
    cost: CounterVec,
    unpriced: IntCounterVec,
    duration: HistogramVec,
    ttft: HistogramVec,
    usage_missing: IntCounterVec,
    /// `tailmeter_upstream_connect_failures_total{provider,reason}`: every connect attempt to a
    /// provider that failed, including those a request recovered from on the next address.
    pub upstream_connect_failures: IntCounterVec,
    /// Requests currently being proxied (`tailmeter_inflight_requests`).
    pub inflight: IntGauge,
    /// `tailmeter_budget_limit_tokens{budget,window,tag,identity}`.
    pub budget_limit: IntGaugeVec,
    /// `tailmeter_budget_used_tokens{budget,window,tag,identity}`.
    pub budget_used: IntGaugeVec,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let family = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric family");
    registry
        .register(Box::new(family.clone()))
        .expect("metric registered once");
    family
}

fn histogram_vec(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let family =
        HistogramVec::new(opts, &["provider", "model", "endpoint"]).expect("valid metric family");
    registry
        .register(Box::new(family.clone()))
        .expect("metric registered once");
    family
}

fn gauge_vec(registry: &Registry, name: &str, help: &str) -> IntGaugeVec {
    let family = IntGaugeVec::new(
        Opts::new(name, help),
        &["budget", "window", "tag", "identity"],
    )
    .expect("valid metric family");
    registry
        .register(Box::new(family.clone()))
        .expect("metric registered once");
    family
}

impl Metrics {
    /// Registers every family. `max_identities` bounds the distinct identity (and tag) label values.
    pub fn new(max_identities: usize) -> Self {
        let registry = Registry::new();
        let cost = CounterVec::new(
            Opts::new(
                "tailmeter_cost_usd_total",
                "Cost of proxied requests in USD, from the configured prices.",
            ),
            &["identity", "provider", "model"],
        )
        .expect("valid metric family");
        registry
            .register(Box::new(cost.clone()))
            .expect("metric registered once");
        let inflight = IntGauge::new(
            "tailmeter_inflight_requests",
            "Requests currently being proxied.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(inflight.clone()))
            .expect("metric registered once");
        Self {
            identities: BoundedLabels::new(max_identities),
            tags: BoundedLabels::new(max_identities),
            requests: counter_vec(
                &registry,
                "tailmeter_requests_total",
                "Requests answered, by caller, route, endpoint and HTTP status.",
                &["identity", "provider", "model", "endpoint", "code"],
            ),
            tokens: counter_vec(
                &registry,
                "tailmeter_tokens_total",
                "Tokens used, by caller, route and type (input, output, cache_read, cache_write, reasoning).",
                &["identity", "provider", "model", "type"],
            ),
            tag_tokens: counter_vec(
                &registry,
                "tailmeter_tag_tokens_total",
                "Tokens used by tagged callers, one series per tag of the caller.",
                &["tag", "provider", "model", "type"],
            ),
            unpriced: counter_vec(
                &registry,
                "tailmeter_unpriced_requests_total",
                "Metered requests for models with no configured price (counted at cost 0).",
                &["provider", "model"],
            ),
            usage_missing: counter_vec(
                &registry,
                "tailmeter_usage_missing_total",
                "Requests whose provider usage did not arrive, by reason.",
                &["provider", "endpoint", "reason"],
            ),
            upstream_connect_failures: counter_vec(
                &registry,
                "tailmeter_upstream_connect_failures_total",
                "Connect attempts to a provider that failed, by reason (refused, timeout, no_route, tls_timeout, tls, error).",
                &["provider", "reason"],
            ),
            duration: histogram_vec(
                &registry,
                "tailmeter_request_duration_seconds",
                "Time from request start to the end of the response.",
                DURATION_BUCKETS,
            ),
            ttft: histogram_vec(
                &registry,
                "tailmeter_time_to_first_token_seconds",
                "Time from request start to the first response body byte.",
                TTFT_BUCKETS,
            ),
            budget_limit: gauge_vec(
                &registry,
                "tailmeter_budget_limit_tokens",
                "Token limit of each configured budget.",
            ),
            budget_used: gauge_vec(
                &registry,
                "tailmeter_budget_used_tokens",
                "Tokens used in the current window of each configured budget.",
            ),
            cost,
            inflight,
            registry,
        }
    }

    /// The registry, for families other crates add (exporter health, identity lookups).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counts one finished request in every family it belongs to.
    pub fn record(&self, event: &RequestEvent<'_>) {
        let identity = self.identities.admit(event.identity);
        let (provider, model, endpoint) = (event.provider, event.model, event.endpoint);
        // Every code 100-999 has a static spelling; 0 (nothing sent) is the one other value.
        let status = http::StatusCode::from_u16(event.status).ok();
        let code = status.as_ref().map_or("0", http::StatusCode::as_str);
        self.requests
            .with_label_values(&[identity, provider, model, endpoint, code])
            .inc();

        for (kind, count) in event.tokens.by_type() {
            self.tokens
                .with_label_values(&[identity, provider, model, kind])
                .inc_by(count);
            for tag in event.tags {
                let tag = self.tags.admit(tag);
                self.tag_tokens
                    .with_label_values(&[tag, provider, model, kind])
                    .inc_by(count);
            }
        }
        // Billed: tokens used, or what an image or audio model bills otherwise (its price per
        // image, minute or character, or no price and a cost left unknown).
        let billed = event.tokens != Default::default()
            || event.cost_usd > 0.0
            || event.usage_missing_reason == Some(NO_TOKEN_USAGE);
        if billed {
            let cost: Counter = self.cost.with_label_values(&[identity, provider, model]);
            cost.inc_by(event.cost_usd);
            if !event.priced {
                self.unpriced.with_label_values(&[provider, model]).inc();
            }
        }
        if let Some(reason) = event.usage_missing_reason {
            self.usage_missing
                .with_label_values(&[provider, endpoint, reason])
                .inc();
        }
        let labels = [provider, model, endpoint];
        self.duration
            .with_label_values(&labels)
            .observe(event.duration_ms / 1000.0);
        if let Some(ttft) = event.ttft_ms {
            self.ttft.with_label_values(&labels).observe(ttft / 1000.0);
        }
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "could not encode metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{sample, TokenCounts, UsageSource};

    #[test]
    fn every_status_is_its_own_code_label() {
        let metrics = Metrics::new(10);
        for status in [200, 404, 529, 0] {
            metrics.record(&RequestEvent {
                status,
                ..sample("r")
            });
        }
        let text = String::from_utf8(metrics.render()).expect("UTF-8");
        for code in ["200", "404", "529", "0"] {
            let series = format!(
                r#"tailmeter_requests_total{{code="{code}",endpoint="chat_completions",identity="tag:ci,tag:k8s",model="gpt-4o",provider="openai"}} 1"#
            );
            assert!(text.contains(&series), "{series} in\n{text}");
        }
    }

    #[test]
    fn an_answer_billed_otherwise_than_in_tokens_counts_its_cost_or_its_missing_price() {
        let metrics = Metrics::new(10);
        let no_tokens = |model, cost_usd, priced, reason| RequestEvent {
            model,
            endpoint: "images",
            tokens: TokenCounts::default(),
            cost_usd,
            priced,
            usage_source: UsageSource::None,
            usage_missing_reason: reason,
            ..sample("r")
        };
        metrics.record(&no_tokens("dall-e-3", 0.12, true, Some(NO_TOKEN_USAGE)));
        metrics.record(&no_tokens("dall-e-2", 0.0, false, Some(NO_TOKEN_USAGE)));
        // Refused: nothing billed, nothing unpriced.
        metrics.record(&no_tokens(
            "dall-e-2",
            0.0,
            false,
            Some("upstream_error_status"),
        ));
        let text = String::from_utf8(metrics.render()).expect("UTF-8");
        for series in [
            r#"tailmeter_cost_usd_total{identity="tag:ci,tag:k8s",model="dall-e-3",provider="openai"} 0.12"#,
            r#"tailmeter_unpriced_requests_total{model="dall-e-2",provider="openai"} 1"#,
        ] {
            assert!(text.contains(series), "{series} in\n{text}");
        }
        assert!(!text.contains(r#"tailmeter_unpriced_requests_total{model="dall-e-3""#));
    }
}
