//! `${ENV_VAR}` substitution in string values.
//!
//! Runs on each string after TOML parsing, never on the file text, so a
//! value holding quotes, backslashes or newlines cannot change the document's
//! structure or shift its line numbers. `$${` stands for a literal `${`.

/// Why a string value could not be substituted.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SubstError {
    /// `${NAME}` where NAME is not set.
    Unset(String),
    /// `${` without a closing `}`.
    Unterminated,
    /// `${…}` whose content is not a variable name (not echoed: it may be a pasted secret).
    BadName,
}

impl std::fmt::Display for SubstError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubstError::Unset(name) => write!(f, "environment variable `{name}` is not set"),
            SubstError::Unterminated => {
                f.write_str("`${` without a closing `}` (write `$${` for a literal `${`)")
            }
            SubstError::BadName => f.write_str(
                "`${…}` must hold a variable name: letters, digits and `_`, not first a digit",
            ),
        }
    }
}

/// Replaces every `${NAME}` in `value` with `env(NAME)`, and `$${` with `${`.
pub(super) fn substitute(
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, SubstError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let close = tail.find('}').ok_or(SubstError::Unterminated)?;
            let name = &tail[..close];
            if !is_var_name(name) {
                return Err(SubstError::BadName);
            }
            out.push_str(&env(name).ok_or_else(|| SubstError::Unset(name.to_owned()))?);
            rest = &tail[close + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
