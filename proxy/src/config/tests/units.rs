//! The small parsers on their own: `${VAR}` substitution, sizes, durations,
//! key paths.

use std::time::Duration;

use super::super::env::{substitute, SubstError};
use super::super::error::KeyPath;
use super::super::size::{format_duration, format_size, parse_duration, parse_size};
use super::{test_env, SECRET};

#[test]
fn env_substitution_rules() {
    let sub = |s: &str| substitute(s, &test_env);
    assert_eq!(sub("x${OPENAI_API_KEY}y").unwrap(), format!("x{SECRET}y"));
    assert_eq!(
        sub("$${A} $ $$ ${CH_PASSWORD}").unwrap(),
        "${A} $ $$ hunter2-secret"
    );
    assert_eq!(sub("${OPEN"), Err(SubstError::Unterminated));
    assert_eq!(sub("${1X}"), Err(SubstError::BadName));
    assert_eq!(sub("${}"), Err(SubstError::BadName));
    assert_eq!(
        sub("${UNSET_ONE}"),
        Err(SubstError::Unset("UNSET_ONE".to_owned()))
    );
}

#[test]
fn sizes_parse_and_format() {
    for (text, bytes) in [
        ("0", 0),
        ("1024", 1024),
        ("7B", 7),
        ("2KB", 2_000),
        ("2KiB", 2_048),
        ("3 MB", 3_000_000),
        ("32MiB", 32 << 20),
        ("1GB", 1_000_000_000),
        ("4gib", 4 << 30),
    ] {
        assert_eq!(parse_size(text), Ok(bytes), "{text}");
    }
    for bad in ["", "MiB", "1.5MiB", "-1", "12XB", "99999999999GiB"] {
        assert!(parse_size(bad).is_err(), "{bad}");
    }
    assert_eq!(
        (format_size(32 << 20), format_size(1500), format_size(0)),
        ("32MiB".into(), "1500B".into(), "0B".into())
    );
}

#[test]
fn durations_parse_and_format() {
    for (text, secs) in [
        ("45s", 45),
        ("30m", 1800),
        ("24h", 86_400),
        ("7d", 604_800),
        ("1h30m", 5400),
        ("1h 30m", 5400),
    ] {
        assert_eq!(
            parse_duration(text),
            Ok(Duration::from_secs(secs)),
            "{text}"
        );
    }
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    for bad in ["", "30", "h", "1y", "1.5h", "-1s", "99999999999999999d"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
    assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    assert_eq!(
        format_duration(Duration::from_millis(86_400_250)),
        "24h250ms"
    );
    assert_eq!(format_duration(Duration::ZERO), "0s");
}

#[test]
fn key_paths_quote_and_find_parents() {
    let price = KeyPath::default().key("prices").key("a.b\"c").key("input");
    assert_eq!(price.as_str(), r#"prices."a.b\"c".input"#);
    assert_eq!(price.parent().unwrap().as_str(), r#"prices."a.b\"c""#);
    let element = KeyPath::default().key("providers").index(2);
    assert_eq!(element.parent().unwrap().as_str(), "providers");
    assert_eq!(
        KeyPath::default().key("x").parent(),
        Some(KeyPath::default())
    );
}
