//! The resolved configuration as `tailmeter check` prints it.
//!
//! Shows what the file *means* after defaults and substitution: listeners,
//! providers, how each model name routes, grants, budgets, prices and sinks.
//! Secrets never appear: a key is shown only as `set (N chars)`.

use std::collections::BTreeMap;
use std::fmt::{self, Formatter};

use super::model::{
    BudgetSubject, Config, OnExceed, OtlpProtocol, Price, TailscaledDown, UnknownPolicy, Who,
};
use super::size::{format_duration, format_size};

impl Config {
    /// The multi-line text `tailmeter check` prints for a valid config.
    pub fn summary(&self) -> String {
        Summary(self).to_string()
    }
}

/// Formats [`Config::summary`], one section per method.
struct Summary<'a>(&'a Config);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.server(f)?;
        self.providers(f)?;
        self.access(f)?;
        self.prices(f)?;
        self.sinks(f)
    }
}

impl Summary<'_> {
    fn server(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let s = &self.0.server;
        let id = &self.0.identity;
        writeln!(f, "listen: {}", s.listen)?;
        writeln!(
            f,
            "admin_listen: {} (/metrics, /healthz, /readyz)",
            s.admin_listen
        )?;
        writeln!(
            f,
            "max_request_body: {}, client_header_timeout: {}, client_body_timeout: {}, shutdown_grace: {}, threads: {}",
            format_size(s.max_request_body),
            format_duration(s.client_header_timeout),
            format_duration(s.client_body_timeout),
            format_duration(s.shutdown_grace),
            s.threads
        )?;
        writeln!(f, "\nidentity:")?;
        match id.tailscale_socket.as_str() {
            "" => writeln!(f, "  tailscale whois: off")?,
            socket => {
                writeln!(f, "  tailscale whois: {socket}")?;
                writeln!(
                    f,
                    "    timeout {}, cache {}, negative cache {}, when tailscaled is down: {}",
                    format_duration(id.whois_timeout),
                    format_duration(id.cache_ttl),
                    format_duration(id.negative_cache_ttl),
                    match id.on_tailscaled_down {
                        TailscaledDown::Reject => "reject (503)",
                        TailscaledDown::Fallback => "fallback to `unknown`",
                    }
                )?;
            }
        }
        match &id.capability {
            Some(cap) => writeln!(f, "  grants from tailnet capability: {cap}")?,
            None => writeln!(f, "  grants from tailnet capability: off")?,
        }
        writeln!(f, "  trust_serve_headers: {}", id.trust_serve_headers)?;
        match id.unknown {
            UnknownPolicy::Reject => writeln!(f, "  unknown callers: reject (403)")?,
            UnknownPolicy::Anonymous => writeln!(f, "  unknown callers: anonymous")?,
        }
        for entry in &id.static_ {
            match &entry.who {
                Who::Login(login) => writeln!(f, "  static: {} -> {login}", entry.cidr)?,
                Who::Tags(tags) => writeln!(f, "  static: {} -> {}", entry.cidr, tags.join(","))?,
            }
        }
        Ok(())
    }

    fn providers(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let config = self.0;
        if config.providers.is_empty() {
            return writeln!(f, "\nproviders: none (every model request will get 404)");
        }
        writeln!(f, "\nproviders ({}):", config.providers.len())?;
        for p in &config.providers {
            writeln!(f, "  {} ({}) {}", p.name, p.kind.as_str(), p.base_url)?;
            writeln!(f, "    api_key: set ({} chars)", p.api_key.chars().count())?;
            writeln!(f, "    models: {}", p.models.join(", "))?;
            writeln!(f, "    idle_timeout: {}s", p.idle_timeout.as_secs_f64())?;
            writeln!(
                f,
                "    connect_timeout: {}s, first_byte_timeout: {}s",
                p.connect_timeout.as_secs_f64(),
                p.first_byte_timeout.as_secs_f64()
            )?;
            if p.http2 {
                writeln!(f, "    http2: true")?;
            }
        }
        writeln!(
            f,
            "\nmodel routes (any model may also be named provider/model):"
        )?;
        let mut offered_by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for p in &config.providers {
            for m in &p.models {
                offered_by.entry(m).or_default().push(&p.name);
            }
        }
        for (model, names) in offered_by {
            let Some((first, others)) = names.split_first() else {
                continue;
            };
            write!(f, "  {model} -> {first}/{model}")?;
            if !others.is_empty() {
                let others: Vec<String> = others
                    .iter()
                    .map(|name| format!("{name}/{model}"))
                    .collect();
                write!(
                    f,
                    "  (ambiguous: also {}; name it as provider/model)",
                    others.join(", ")
                )?;
            }
            writeln!(f)?;
        }
        Ok(())
    }

    fn access(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let config = self.0;
        if config.grants.is_empty() {
            writeln!(f, "\nno grants: every caller may use every model")?;
        } else {
            writeln!(f, "\ngrants ({}):", config.grants.len())?;
            for g in &config.grants {
                writeln!(f, "  {} -> {}", g.src.join(", "), g.models.join(", "))?;
            }
        }
        if config.budgets.is_empty() {
            return writeln!(f, "\nbudgets: none");
        }
        writeln!(f, "\nbudgets ({}):", config.budgets.len())?;
        for b in &config.budgets {
            write!(f, "  {}: ", b.name)?;
            match &b.subject {
                BudgetSubject::Tag(tag) => write!(f, "tag {tag}")?,
                BudgetSubject::Identity(identity) => write!(f, "identity {identity}")?,
            }
            write!(
                f,
                ", {} tokens per {}, on exceed: ",
                b.tokens,
                format_duration(b.window)
            )?;
            match b.on_exceed {
                OnExceed::Alert => writeln!(f, "alert")?,
                OnExceed::Reject => writeln!(f, "reject (429)")?,
            }
        }
        Ok(())
    }

    fn prices(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let config = self.0;
        writeln!(f, "\nprices (USD per million tokens unless said):")?;
        for (model, price) in &config.prices {
            writeln!(f, "  {model}: {}", describe_price(price))?;
        }
        let unpriced: Vec<String> = config
            .providers
            .iter()
            .flat_map(|p| p.models.iter().map(move |m| (p, m)))
            .filter(|(_, m)| !config.prices.contains_key(m.as_str()))
            .map(|(p, m)| format!("{}/{m}", p.name))
            .collect();
        if !unpriced.is_empty() {
            writeln!(f, "  no price, counted at 0: {}", unpriced.join(", "))?;
        }
        Ok(())
    }

    fn sinks(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let config = self.0;
        let events = &config.events;
        match &config.clickhouse {
            _ if !events.enabled => writeln!(f, "\nevents: off (metrics only)")?,
            Some(ch) => {
                write!(
                    f,
                    "\nevents: ClickHouse {} database {}",
                    ch.url, ch.database
                )?;
                if let Some(user) = &ch.user {
                    write!(f, " user {user}")?;
                }
                if ch.password.is_some() {
                    write!(f, " password set")?;
                }
                if let Some(ttl) = ch.ttl {
                    write!(f, ", rows expire after {}", format_duration(ttl))?;
                }
                writeln!(f)?;
            }
            None => writeln!(
                f,
                "\nevents: embedded sink in {} (new file every UTC day and past {})",
                events.dir.display(),
                format_size(events.rotate_size)
            )?,
        }
        if events.enabled {
            writeln!(
                f,
                "  batches of {} rows or {}, spool {} up to {}",
                events.batch_rows,
                format_duration(events.batch_interval),
                events.spool_dir.display(),
                format_size(events.spool_max_bytes)
            )?;
        }
        writeln!(
            f,
            "stored Responses (whose each is, background usage still to count): {}",
            events.dir.join(crate::stored::JOURNAL_FILE).display()
        )?;
        match &config.otlp {
            Some(otlp) => {
                let protocol = match otlp.protocol {
                    OtlpProtocol::Grpc => "gRPC",
                    OtlpProtocol::Http => "HTTP",
                };
                writeln!(f, "traces: OTLP {} ({protocol})", otlp.endpoint)?;
            }
            None => writeln!(f, "traces: off")?,
        }
        writeln!(
            f,
            "metrics: max_identities {}",
            config.metrics.max_identities
        )?;
        let level = config.log.level.as_deref().unwrap_or("default");
        writeln!(f, "log level: {level} (RUST_LOG wins when set)")
    }
}

fn describe_price(price: &Price) -> String {
    let cache = |v: Option<f64>| v.map_or_else(|| "= input".to_owned(), |v| v.to_string());
    let media = &price.media;
    let mut parts = Vec::new();
    if !media.is_set() || price.input > 0.0 || price.output > 0.0 {
        parts.push(format!(
            "input {}, output {}, cache_read {}, cache_write {}",
            price.input,
            price.output,
            cache(price.cache_read),
            cache(price.cache_write)
        ));
    }
    let apart = [
        ("cache_write_1h", price.cache_write_1h),
        ("audio_input", price.audio_input),
        ("image_input", price.image_input),
        ("audio_output", price.audio_output),
        ("image_output", price.image_output),
    ];
    for (part, usd) in apart {
        if let Some(usd) = usd {
            parts.push(format!("{part} {usd}"));
        }
    }
    if let Some(usd) = media.audio_minute {
        parts.push(format!("USD {usd} per audio minute"));
    }
    if let Some(usd) = media.characters {
        parts.push(format!("USD {usd} per million characters"));
    }
    for (asked, usd) in &media.images {
        parts.push(format!("USD {usd} per {asked} image"));
    }
    if let Some(usd) = media.image {
        let other = if media.images.is_empty() {
            ""
        } else {
            " other"
        };
        parts.push(format!("USD {usd} per{other} image"));
    }
    parts.join(", ")
}
