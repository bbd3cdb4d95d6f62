//! Reading a config file: text, TOML parse, `${VAR}` substitution, validation.
//!
//! [`parse`] is the pure core (file name only for messages, environment as a
//! closure) so tests need neither files nor process-wide variables; [`load`]
//! wires it to the file system and the real environment.

use std::path::Path;

use super::error::{ConfigError, KeyPath};
use super::index::KeyIndex;
use super::model::Config;
use super::raw::RawConfig;
use super::validate::{validate, Ctx};

/// Keys whose values must never be echoed in an error message.
const SECRET_KEYS: [&str; 2] = ["api_key", "password"];

/// How `toml` presents a datetime to serde, seen in errors about one.
const DATETIME_MARKER: &str = "$__toml_private_datetime";

/// Reads, substitutes (from the process environment), parses and validates `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        line: None,
        key: None,
        message: format!("cannot read: {e}"),
    })?;
    parse(path, &text, &|name| std::env::var(name).ok())
}

/// Parses and validates config `text`; `path_for_messages` only names the file in
/// errors, and `env` answers `${VAR}` look-ups.
pub fn parse(
    path_for_messages: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    // A file the index cannot map (it holds a datetime, which no key accepts)
    // fails the typed parse below too, which then reports it by line alone.
    let (index, has_datetime) = match KeyIndex::build(text) {
        Ok(index) => (index, false),
        Err(e) => (
            KeyIndex::lines_only(text),
            e.message().contains(DATETIME_MARKER),
        ),
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let mut error = toml_error(path_for_messages, &index, &e);
        // `toml` shows a datetime to serde as a map.
        if has_datetime && e.message().starts_with("invalid type: map") {
            error.message = "dates and times are not accepted: quote the value".to_owned();
        }
        error
    })?;
    validate(
        &raw,
        &Ctx {
            file: path_for_messages,
            index: &index,
            env,
        },
    )
}

/// A `toml`/serde error turned into ``FILE:LINE: key `…`: message``.
fn toml_error(file: &Path, index: &KeyIndex, error: &toml::de::Error) -> ConfigError {
    let span = error.span();
    let key = span.as_ref().and_then(|s| index.path_at(s));
    let message = match key {
        // serde echoes the offending value; a secret must not reach a log.
        Some(key) if is_secret(key) => "must be a string".to_owned(),
        _ => error
            .message()
            .trim()
            .lines()
            .collect::<Vec<_>>()
            .join("; "),
    };
    ConfigError {
        file: file.to_owned(),
        line: span.map(|s| index.line_at(s.start)),
        key: key.map(|k| k.as_str().to_owned()),
        message,
    }
}

fn is_secret(key: &KeyPath) -> bool {
    SECRET_KEYS
        .iter()
        .any(|secret| key.as_str().rsplit('.').next() == Some(secret))
}
