//! The config loader `tailmeter check` runs (TOML parse, `${VAR}` substitution with a fixed
//! environment, validation): never panics, an error always renders, and a provider key or
//! ClickHouse password taken from the environment never shows in the error, the summary or
//! `Debug` when it is used only as such.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tailmeter::config;

/// What `${FUZZ_SECRET}` expands to: it must never be printed.
const SECRET: &str = "fz-SECRET-9c41d7e2";

/// The fixed environment: every variable is set (so the shipped configs validate) except
/// `UNSET*`, and a few hold values that test the substitution.
fn env(name: &str) -> Option<String> {
    match name {
        "FUZZ_SECRET" => Some(SECRET.to_owned()),
        "TRICKY" => Some("a\"b\\c\nd ${NOT_EXPANDED} $${".to_owned()),
        "EMPTY" => Some(String::new()),
        _ if name.starts_with("UNSET") => None,
        _ => Some(format!("sk-fuzz-{name}")),
    }
}

/// `${FUZZ_SECRET}` appears, and only as a whole `api_key = "…"` or `password = "…"` line
/// (outside any multi-line string), so nothing else may legitimately show its value.
fn secret_used_only_as_secret(text: &str) -> bool {
    const REF: &str = "${FUZZ_SECRET}";
    if !text.contains(REF)
        || text.contains(SECRET)
        || text.contains("'''")
        || text.contains("\"\"\"")
    {
        return false;
    }
    let as_secret = |line: &str| {
        let line = line.trim();
        ["api_key", "password"].iter().any(|key| {
            line.strip_prefix(key)
                .map(|rest| rest.trim_start().strip_prefix('='))
                .and_then(|rest| rest.map(str::trim))
                .is_some_and(|value| value == format!("\"{REF}\""))
        })
    };
    text.lines()
        .all(|line| !line.contains(REF) || as_secret(line))
}

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let shown = match config::parse(Path::new("fuzz.toml"), text, &env) {
        Ok(config) => format!("{}\n{config:?}", config.summary()),
        Err(error) => error.to_string(),
    };
    if secret_used_only_as_secret(text) {
        assert!(!shown.contains(SECRET), "a secret was shown:\n{shown}");
    }
});
