//! The one error type of config loading, and the dotted key paths it names.
//!
//! Every message a user sees reads ``FILE:LINE: key `a.b[1].c`: what is wrong``,
//! so `tailmeter check` points straight at the offending line.

use std::fmt;
use std::path::PathBuf;

/// Why a config file was rejected, and where.
///
/// Displays as ``FILE:LINE: key `a.b.c`: what is wrong``; the line and key are
/// left out only when they are truly unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Rendered(self))]
pub struct ConfigError {
    /// The file as given on the command line.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key path such as `providers[1].models`, when known.
    pub key: Option<String>,
    /// What is wrong, never containing a secret.
    pub message: String,
}

/// Formats a [`ConfigError`]; a separate type so the optional parts stay readable.
struct Rendered<'a>(&'a ConfigError);

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(f, "{}", e.file.display())?;
        if let Some(line) = e.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &e.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", e.message)
    }
}

/// A dotted key path in TOML syntax: `providers[1].name`, `prices."gpt-4.1".input`.
///
/// Built the same way when indexing the file and when validating it, so the
/// two always agree on spelling.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(super) struct KeyPath(String);

impl KeyPath {
    /// The path of a key inside this table, quoted when not a bare TOML key.
    pub(super) fn key(&self, key: &str) -> KeyPath {
        let bare = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let mut out = self.0.clone();
        if !out.is_empty() {
            out.push('.');
        }
        if bare {
            out.push_str(key);
        } else {
            out.push('"');
            for c in key.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
        KeyPath(out)
    }

    /// The path of element `index` of this array.
    pub(super) fn index(&self, index: usize) -> KeyPath {
        KeyPath(format!("{}[{index}]", self.0))
    }

    /// The enclosing table or array, or `None` at the top level.
    pub(super) fn parent(&self) -> Option<KeyPath> {
        if self.0.is_empty() {
            return None;
        }
        // The last `.` or `[` outside quotes starts the final component.
        let mut cut = 0;
        let mut quoted = false;
        let mut escaped = false;
        for (i, c) in self.0.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '.' | '[' if !quoted => cut = i,
                _ => {}
            }
        }
        Some(KeyPath(self.0[..cut].to_owned()))
    }

    /// The path as text.
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
