//! Grants: which caller may use which model. One function, [`Access::check`], decides for
//! routing, for `/v1/models` and for `/tailmeter/whoami`, so what a caller is shown and what it
//! may call can never disagree.

use crate::config::Grant;
use crate::identity::Caller;
use crate::routing::Route;

/// The grants of the configuration.
#[derive(Debug)]
pub struct Access {
    grants: Vec<Grant>,
}

/// Why a caller may use a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// No grants are configured: everyone may use every model.
    NoGrants,
    /// The `[[grants]]` entry with this index (from 0) grants it.
    Grant(usize),
}

impl Allowed {
    /// A short description for `whoami`.
    pub fn describe(self) -> String {
        match self {
            Allowed::NoGrants => "no grants configured: every model is open".to_owned(),
            Allowed::Grant(index) => format!("grants[{index}]"),
        }
    }
}

impl Access {
    /// Access control for `grants`.
    pub fn new(grants: Vec<Grant>) -> Self {
        Self { grants }
    }

    /// Whether `caller` may use `route`, and why; None when it may not.
    pub fn check(&self, caller: &Caller, route: &Route) -> Option<Allowed> {
        if self.grants.is_empty() {
            return Some(Allowed::NoGrants);
        }
        self.grants
            .iter()
            .position(|grant| {
                grant.src.iter().any(|src| caller.is_named_by(src))
                    && grant
                        .models
                        .iter()
                        .any(|pattern| glob_match(pattern, &route.qualified))
            })
            .map(Allowed::Grant)
    }

    /// The routes `caller` may use, in configuration order.
    pub fn granted<'r>(&self, caller: &Caller, routes: &'r [Route]) -> Vec<&'r Route> {
        routes
            .iter()
            .filter(|route| self.check(caller, route).is_some())
            .collect()
    }
}

/// Matches `text` against `pattern`, where `*` stands for any run of characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("openai/*", "openai/gpt-4o"));
        assert!(glob_match(
            "anthropic/claude-haiku-*",
            "anthropic/claude-haiku-4-5"
        ));
        assert!(!glob_match(
            "anthropic/claude-haiku-*",
            "anthropic/claude-sonnet-4-5"
        ));
        assert!(glob_match("*", "x/y"));
        assert!(glob_match("*/gpt-*-mini", "openai/gpt-4.1-mini"));
        assert!(!glob_match("openai/gpt-4o", "openai/gpt-4o-mini"));
    }
}
