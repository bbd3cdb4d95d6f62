//! Checks on what callers may reach: providers, grants, budgets and prices.
//!
//! These sections refer to each other (a price names a model some provider
//! offers; names are used in labels and in `provider/model`), so their
//! checks live together, apart from the plain settings in `validate`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::error::{ConfigError, KeyPath};
use super::model::{
    Budget, BudgetSubject, Grant, MediaPrice, OnExceed, Price, Provider, ProviderKind,
};
use super::raw::{RawBudget, RawGrant, RawPrice, RawProvider};
use super::size::parse_duration;
use super::url::parse_base_url;
use super::validate::{check_tag, Ctx};

/// `[[providers]]`: unique names, known kinds, parsable URLs, keys and models present.
pub(super) fn providers(
    raw: &[RawProvider],
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Vec<Provider>, ConfigError> {
    let kinds: Vec<(&str, ProviderKind)> =
        ProviderKind::ALL.iter().map(|k| (k.as_str(), *k)).collect();
    let mut seen: HashMap<String, KeyPath> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, entry) in raw.iter().enumerate() {
        let path = path.index(i);
        let name_path = path.key("name");
        let name = ctx.non_empty(&name_path, ctx.required(&name_path, &entry.name)?)?;
        if name.contains('/') || name.contains(char::is_whitespace) {
            return Err(ctx.error(
                &name_path,
                format!("`{name}` may not contain `/` or spaces: it is used in `provider/model`"),
            ));
        }
        if let Some(first) = seen.get(&name) {
            let at = ctx
                .index
                .line_of(first)
                .map_or(String::new(), |l| format!(" at line {l}"));
            return Err(ctx.error(
                &name_path,
                format!("provider `{name}` is already defined{at}"),
            ));
        }
        seen.insert(name.clone(), name_path);

        let kind_path = path.key("kind");
        let kind = ctx.choice(&kind_path, ctx.required(&kind_path, &entry.kind)?, &kinds)?;

        let url_path = path.key("base_url");
        let url = ctx.text(&url_path, ctx.required(&url_path, &entry.base_url)?)?;
        let base_url = parse_base_url(&url).map_err(|e| ctx.error(&url_path, e))?;

        let key_path = path.key("api_key");
        let api_key = ctx.non_empty(&key_path, ctx.required(&key_path, &entry.api_key)?)?;
        if http::HeaderValue::from_str(&api_key).is_err() {
            return Err(ctx.error(
                &key_path,
                "contains a control character (a line break from a key file?): it cannot be \
                 sent in an HTTP header",
            ));
        }

        let models_path = path.key("models");
        let models =
            ctx.non_empty_list(&models_path, ctx.required(&models_path, &entry.models)?)?;
        for (j, model) in models.iter().enumerate() {
            if model.contains(char::is_whitespace) {
                return Err(ctx.error(
                    &models_path.index(j),
                    format!("model `{model}` contains spaces"),
                ));
            }
            if models[..j].contains(model) {
                return Err(ctx.error(
                    &models_path.index(j),
                    format!("model `{model}` is listed twice"),
                ));
            }
        }
        let timeout = |key: &str, raw: &Option<String>, default: Duration| {
            ctx.timeout(&path.key(key), raw, default)
        };
        let idle_timeout = timeout(
            "idle_timeout",
            &entry.idle_timeout,
            Provider::DEFAULT_IDLE_TIMEOUT,
        )?;
        let connect_timeout = timeout(
            "connect_timeout",
            &entry.connect_timeout,
            Provider::DEFAULT_CONNECT_TIMEOUT,
        )?;
        let first_byte_timeout = timeout(
            "first_byte_timeout",
            &entry.first_byte_timeout,
            idle_timeout,
        )?;
        out.push(Provider {
            name,
            kind,
            base_url,
            api_key,
            models,
            idle_timeout,
            connect_timeout,
            first_byte_timeout,
            http2: entry.http2.unwrap_or(false),
        });
    }
    Ok(out)
}

/// `[[grants]]`: sources and model globs present; globs are over `provider/model`.
pub(super) fn grants(
    raw: &[RawGrant],
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Vec<Grant>, ConfigError> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, entry) in raw.iter().enumerate() {
        let path = path.index(i);
        let src_path = path.key("src");
        let src = ctx.non_empty_list(&src_path, ctx.required(&src_path, &entry.src)?)?;
        let models_path = path.key("models");
        let models =
            ctx.non_empty_list(&models_path, ctx.required(&models_path, &entry.models)?)?;
        // Grants match `provider/model`: a glob with neither `/` nor `*` matches nothing.
        if let Some(j) = models.iter().position(|glob| !glob.contains(['/', '*'])) {
            let glob = &models[j];
            return Err(ctx.error(
                &models_path.index(j),
                format!("`{glob}` names no provider: globs match provider/model, e.g. `*/{glob}`"),
            ));
        }
        out.push(Grant { src, models });
    }
    Ok(out)
}

/// `[[budgets]]`: unique names, exactly one subject, positive tokens and window.
pub(super) fn budgets(
    raw: &[RawBudget],
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Vec<Budget>, ConfigError> {
    let mut out: Vec<Budget> = Vec::with_capacity(raw.len());
    for (i, entry) in raw.iter().enumerate() {
        let path = path.index(i);
        let name_path = path.key("name");
        let name = ctx.non_empty(&name_path, ctx.required(&name_path, &entry.name)?)?;
        if out.iter().any(|b| b.name == name) {
            return Err(ctx.error(&name_path, format!("budget `{name}` is already defined")));
        }
        let subject = match (&entry.tag, &entry.identity) {
            (Some(tag), None) => {
                let tag_path = path.key("tag");
                let tag = ctx.text(&tag_path, tag)?;
                check_tag(&tag_path, &tag, ctx)?;
                BudgetSubject::Tag(tag)
            }
            (None, Some(identity)) => {
                BudgetSubject::Identity(ctx.non_empty(&path.key("identity"), identity)?)
            }
            _ => return Err(ctx.error(&path, "give exactly one of `tag` or `identity`")),
        };
        let tokens_path = path.key("tokens");
        let tokens = ctx.positive(&tokens_path, *ctx.required(&tokens_path, &entry.tokens)?)?;
        let window_path = path.key("window");
        let window = ctx.text(&window_path, ctx.required(&window_path, &entry.window)?)?;
        let window = parse_duration(&window).map_err(|e| ctx.error(&window_path, e))?;
        if window.is_zero() {
            return Err(ctx.error(&window_path, "must be longer than 0"));
        }
        let on_exceed = match &entry.on_exceed {
            Some(on_exceed) => ctx.choice(
                &path.key("on_exceed"),
                on_exceed,
                &[("alert", OnExceed::Alert), ("reject", OnExceed::Reject)],
            )?,
            None => OnExceed::Alert,
        };
        out.push(Budget {
            name,
            subject,
            tokens,
            window,
            on_exceed,
        });
    }
    Ok(out)
}

/// `[prices.MODEL]`: non-negative figures, keyed by a model name some provider offers.
pub(super) fn prices(
    raw: &BTreeMap<String, RawPrice>,
    providers: &[Provider],
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<BTreeMap<String, Price>, ConfigError> {
    let mut out = BTreeMap::new();
    for (model, entry) in raw {
        let path = path.key(model);
        let offered = |name: &str| providers.iter().any(|p| p.models.iter().any(|m| m == name));
        if !offered(model) {
            let hint = match model.split_once('/') {
                Some((_, bare)) if offered(bare) => {
                    format!("prices are keyed by the bare model name: use `{bare}`")
                }
                _ => "a typo, or a model missing from `models`?".to_owned(),
            };
            return Err(ctx.error(&path, format!("no provider offers model `{model}`: {hint}")));
        }
        let figure = |key: &str, value: Option<f64>| match value {
            Some(v) if !(v.is_finite() && v >= 0.0) => Err(ctx.error(
                &path.key(key),
                format!(
                    "must be a non-negative number of {}, not {v}",
                    price_unit(key)
                ),
            )),
            _ => Ok(value),
        };
        let mut images = BTreeMap::new();
        for (asked, &price) in &entry.images {
            let key = path.key("images").key(asked);
            let words = asked.split_whitespace().count();
            if !(1..=2).contains(&words) {
                let message = "names a size, a quality, or both (\"hd 1024x1792\")";
                return Err(ctx.error(&key, message));
            }
            let price = figure("images", Some(price))?;
            let normal = asked.split_whitespace().collect::<Vec<_>>().join(" ");
            images.insert(normal, price.unwrap_or_default());
        }
        let media = MediaPrice {
            audio_minute: figure("audio_minute", entry.audio_minute)?,
            characters: figure("characters", entry.characters)?,
            image: figure("image", entry.image)?,
            images,
        };
        // A model billed only per minute, character or image needs no token prices.
        let tokens = |key: &str, value: Option<f64>| match figure(key, value)? {
            Some(v) => Ok(v),
            None if media.is_set() => Ok(0.0),
            None => Err(ctx.error(&path.key(key), "is required but missing")),
        };
        let price = Price {
            input: tokens("input", entry.input)?,
            output: tokens("output", entry.output)?,
            cache_read: figure("cache_read", entry.cache_read)?,
            cache_write: figure("cache_write", entry.cache_write)?,
            audio_input: figure("audio_input", entry.audio_input)?,
            image_input: figure("image_input", entry.image_input)?,
            audio_output: figure("audio_output", entry.audio_output)?,
            image_output: figure("image_output", entry.image_output)?,
            cache_write_1h: figure("cache_write_1h", entry.cache_write_1h)?,
            media,
        };
        out.insert(model.clone(), price);
    }
    Ok(out)
}

/// What a `[prices.MODEL]` key's figure is in.
fn price_unit(key: &str) -> &'static str {
    match key {
        "audio_minute" => "USD per minute of audio",
        "characters" => "USD per million characters",
        "image" | "images" => "USD per image",
        _ => "USD per million tokens",
    }
}
