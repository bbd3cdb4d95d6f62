//! tailmeter: an LLM metering gateway for a tailnet.
//!
//! A Pingora reverse proxy that routes each LLM API call by its `model`, swaps the caller's
//! credential for the provider's key, streams the response through untouched while reading the
//! token usage out of it, and attributes every token to the caller's identity. The request's
//! path through the proxy is [`service::Proxy`]; each concern it calls lives in its own module.
// One `unsafe` borrow of a socket descriptor, in `home`; nothing else.
#![deny(unsafe_code)]

pub mod access;
pub mod admin;
pub mod api_error;
pub mod body;
pub mod budgets;
pub mod config;
pub mod endpoint;
pub mod gateway;
pub mod home;
pub mod identity;
pub mod local;
pub mod logging;
pub mod meter;
pub mod pricing;
pub mod refusal;
pub mod reload;
pub mod resolve;
pub mod routing;
pub mod server;
pub mod service;
pub mod stored;
pub mod timeouts;
pub mod trace_context;
pub mod upstream;
pub mod usage;
