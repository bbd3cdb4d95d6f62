//! tailmeter's configuration: the TOML file described in the contract,
//! loaded, `${VAR}`-substituted and validated into plain types.
//!
//! Everything the rest of the proxy reads about its setup comes from
//! [`Config`]; by the time it exists, every key has been checked and every
//! default applied, and any problem has been reported as
//! ``FILE:LINE: key `a.b.c`: what is wrong`` (see [`ConfigError`]).
//! `tailmeter check` prints [`Config::summary`].

mod display;
mod env;
mod error;
mod index;
mod load;
mod model;
mod raw;
mod size;
mod url;
mod validate;
mod validate_routes;
mod validate_sinks;

#[cfg(test)]
mod tests;

pub use error::ConfigError;
pub use load::{load, parse};
pub use model::{
    BaseUrl, Budget, BudgetSubject, ClickHouse, Config, Events, Grant, Identity, Log, MediaPrice,
    Metrics, OnExceed, Otlp, OtlpProtocol, Price, Provider, ProviderKind, Server, StaticIdentity,
    TailscaledDown, UnknownPolicy, Who,
};
pub use size::format_duration;
