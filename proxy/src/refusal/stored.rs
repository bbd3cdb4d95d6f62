//! Refusals for a stored response named by id ([`crate::stored`]): one another caller made, one
//! whose route is gone, and one tailmeter cannot place.

use super::quoted;
use crate::api_error::{ApiError, ErrorKind};
use crate::identity::Caller;

/// 404 for a response another identity created: only its creator may use it through the
/// gateway, whose provider key every caller shares.
pub fn not_yours(caller: &Caller, id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        "response_not_found",
        format!(
            "response \"{}\" was not created by identity {} through this gateway: a stored response is open only to the identity that created it",
            quoted(id),
            caller.identity
        ),
    )
}

/// 404 for a response created on a route this gateway no longer serves.
pub fn route_gone(id: &str, route: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        "model_not_found",
        format!(
            "response \"{}\" was created with model \"{route}\", which this gateway no longer serves",
            quoted(id)
        ),
    )
}

/// 404 for a response tailmeter has no record of (made elsewhere, or forgotten) when no single
/// provider the caller may use could hold it.
pub fn unplaced(caller: &Caller, id: &str, providers: &[&str]) -> ApiError {
    let why = match providers {
        [] => format!(
            "identity {} is granted no model of an OpenAI provider",
            caller.identity
        ),
        several => format!(
            "identity {} may use the Responses API of several providers ({}), and it cannot tell which holds it",
            caller.identity,
            several.join(", ")
        ),
    };
    ApiError::new(
        ErrorKind::NotFound,
        "response_not_found",
        format!(
            "this gateway has no record of response \"{}\" (not created through it, deleted, or one of more than {} since), and {why}",
            quoted(id),
            crate::stored::CAPACITY
        ),
    )
}
