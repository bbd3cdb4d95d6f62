//! Model routing: which provider serves a requested model. A model is named bare
//! (`gpt-4.1-mini`) or as `provider/model`; only configured names resolve, so a client string
//! never reaches a metric label.

use std::collections::HashMap;
use std::sync::Arc;

use crate::upstream::Upstream;

/// A configured model at a provider.
#[derive(Debug, Clone)]
pub struct Route {
    /// The provider serving the model.
    pub upstream: Arc<Upstream>,
    /// The model name as configured (and as the provider sees it).
    pub model: Arc<str>,
    /// `provider/model`, the name grants match against.
    pub qualified: Arc<str>,
}

/// Every configured route, indexed by the names a client may use.
#[derive(Debug, Default)]
pub struct Routes {
    all: Vec<Route>,
    by_name: HashMap<String, usize>,
}

impl Routes {
    /// Routes for `upstreams`, in configuration order. A bare name offered by several providers
    /// resolves to the first of them; `provider/model` always picks explicitly.
    pub fn new(upstreams: &[Arc<Upstream>]) -> Self {
        let mut routes = Routes::default();
        for upstream in upstreams {
            for model in &upstream.models {
                let qualified: Arc<str> = format!("{}/{}", upstream.name, model).into();
                let index = routes.all.len();
                routes.all.push(Route {
                    upstream: upstream.clone(),
                    model: model.as_str().into(),
                    qualified: qualified.clone(),
                });
                routes.by_name.insert(qualified.to_string(), index);
                routes.by_name.entry(model.clone()).or_insert(index);
            }
        }
        routes
    }

    /// The route for a client's model string. `provider/model` is tried before the bare name,
    /// so a model whose own name contains `/` still resolves.
    pub fn resolve(&self, requested: &str) -> Option<&Route> {
        self.by_name.get(requested).map(|&index| &self.all[index])
    }

    /// Every route, in configuration order.
    pub fn all(&self) -> &[Route] {
        &self.all
    }
}
