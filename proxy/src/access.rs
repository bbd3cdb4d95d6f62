//! Grants: which caller may use which model. One function, [`Access::check`], decides for
//! routing, for `/v1/models` and for `/tailmeter/whoami`, so what a caller is shown and what it
//! may call can never disagree.
//!
//! Grants come from the config's `[[grants]]` and, when `identity.capability` names an app
//! capability, from the tailnet policy: the capability's CapMap values in the caller's whois
//! answer (`{"models": ["openai/*"]}`). With neither configured every caller may use every
//! model; as soon as either is, whatever is not granted is denied.

use crate::config::Grant;
use crate::identity::Caller;
use crate::routing::Route;

/// The grants of the configuration.
#[derive(Debug)]
pub struct Access {
    grants: Vec<Grant>,
    capability: Option<String>,
}

/// Why a caller may use a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// No grants are configured: everyone may use every model.
    NoGrants,
    /// The `[[grants]]` entry with this index (from 0) grants it.
    Grant(usize),
    /// The tailnet policy grants it through the configured app capability.
    Capability,
}

impl Access {
    /// Access control for `grants` and, when set, the app `capability` of the tailnet policy.
    pub fn new(grants: Vec<Grant>, capability: Option<String>) -> Self {
        Self { grants, capability }
    }

    /// Whether `caller` may use `route`, and why; None when it may not.
    pub fn check(&self, caller: &Caller, route: &Route) -> Option<Allowed> {
        if self.grants.is_empty() && self.capability.is_none() {
            return Some(Allowed::NoGrants);
        }
        let granted = |patterns: &[String]| patterns.iter().any(|p| pattern_matches(p, route));
        if let Some(index) = self.grants.iter().position(|grant| {
            grant.src.iter().any(|src| caller.is_named_by(src)) && granted(&grant.models)
        }) {
            return Some(Allowed::Grant(index));
        }
        (self.capability.is_some() && granted(&caller.capability_models))
            .then_some(Allowed::Capability)
    }

    /// The routes `caller` may use, in configuration order.
    pub fn granted<'r>(&self, caller: &Caller, routes: &'r [Route]) -> Vec<&'r Route> {
        routes
            .iter()
            .filter(|route| self.check(caller, route).is_some())
            .collect()
    }

    /// A short description of `allowed` for `whoami`.
    pub fn describe(&self, allowed: Allowed) -> String {
        match allowed {
            Allowed::NoGrants => "no grants configured: every model is open".to_owned(),
            Allowed::Grant(index) => format!("grants[{index}]"),
            Allowed::Capability => format!(
                "tailnet policy capability {}",
                self.capability.as_deref().unwrap_or_default()
            ),
        }
    }

    /// Where grants would have to come from, for a refusal: what was consulted.
    pub fn sources(&self) -> String {
        match &self.capability {
            Some(cap) => format!(
                "no [[grants]] entry names this caller for it and the tailnet policy grants it no such model through capability {cap}"
            ),
            None => "no [[grants]] entry names this caller for it".to_owned(),
        }
    }
}

/// Whether a grant pattern covers `route`: a glob over `provider/model`, or, for a pattern
/// without `/` (possible in tailnet policy values, which no config check sees), over the model.
pub fn pattern_matches(pattern: &str, route: &Route) -> bool {
    if pattern.contains('/') {
        glob_match(pattern, &route.qualified)
    } else {
        glob_match(pattern, &route.model)
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
    use std::sync::Arc;

    use super::*;
    use crate::config::Who;
    use crate::routing::Routes;
    use crate::upstream::Upstream;

    fn routes() -> Routes {
        let text = r#"
            [[providers]]
            name = "openai"
            kind = "openai"
            base_url = "http://127.0.0.1:1"
            api_key = "k"
            models = ["gpt-4o", "gpt-5-nano"]
            [[providers]]
            name = "anthropic"
            kind = "anthropic"
            base_url = "http://127.0.0.1:1"
            api_key = "k"
            models = ["claude-haiku-4-5"]
        "#;
        let config = crate::config::parse(std::path::Path::new("t.toml"), text, &|_| None).unwrap();
        let upstreams: Vec<Arc<Upstream>> = config
            .providers
            .iter()
            .map(|p| Arc::new(Upstream::new(p)))
            .collect();
        Routes::new(&upstreams)
    }

    fn grant(src: &str, models: &[&str]) -> Grant {
        Grant {
            src: vec![src.into()],
            models: models.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn capability_grants_add_to_config_grants_and_close_the_default() {
        let routes = routes();
        let mut k8s = Caller::from_who(&Who::Tags(vec!["tag:k8s".into()]), None);
        let names = |access: &Access, caller: &Caller| -> Vec<String> {
            access
                .granted(caller, routes.all())
                .iter()
                .map(|r| r.qualified.to_string())
                .collect()
        };
        assert_eq!(
            names(&Access::new(vec![], None), &k8s).len(),
            3,
            "nothing configured: open"
        );
        let cap = Some("example.com/cap/tailmeter".to_owned());
        let access = Access::new(vec![], cap.clone());
        assert!(
            names(&access, &k8s).is_empty(),
            "a capability configured: closed by default"
        );
        k8s.capability_models = vec!["anthropic/claude-haiku-*".into(), "gpt-5-nano".into()];
        assert_eq!(
            names(&access, &k8s),
            ["openai/gpt-5-nano", "anthropic/claude-haiku-4-5"]
        );
        let haiku = routes.resolve("claude-haiku-4-5").unwrap();
        assert_eq!(access.check(&k8s, haiku), Some(Allowed::Capability));
        assert_eq!(
            access.describe(Allowed::Capability),
            "tailnet policy capability example.com/cap/tailmeter"
        );
        let both = Access::new(vec![grant("tag:k8s", &["openai/gpt-4o"])], cap);
        assert_eq!(names(&both, &k8s).len(), 3);
        assert_eq!(both.check(&k8s, haiku), Some(Allowed::Capability));
        let gpt4o = routes.resolve("gpt-4o").unwrap();
        assert_eq!(both.check(&k8s, gpt4o), Some(Allowed::Grant(0)));
        k8s.capability_models.clear();
        let only_config = Access::new(vec![grant("tag:k8s", &["openai/gpt-4o"])], None);
        assert_eq!(names(&only_config, &k8s), ["openai/gpt-4o"]);
        k8s.capability_models = vec!["*".into()];
        assert_eq!(
            names(&only_config, &k8s),
            ["openai/gpt-4o"],
            "no capability configured: CapMap ignored"
        );
    }

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
