//! Refusals for a stored response or a conversation named by id ([`crate::stored`]): one another
//! caller made, one whose route is gone, and one tailmeter cannot place.

use super::quoted;
use crate::api_error::{ApiError, ErrorKind};
use crate::identity::Caller;
use crate::stored::Kept;

/// 404 for a response or conversation another identity created: only its creator may use it
/// through the gateway, whose provider key every caller shares.
pub fn not_yours(caller: &Caller, kept: Kept, id: &str) -> ApiError {
    let what = kept.noun();
    ApiError::new(
        ErrorKind::NotFound,
        kept.not_found_code(),
        format!(
            "{what} \"{}\" was not created by identity {} through this gateway: a stored {what} is open only to the identity that created it",
            quoted(id),
            caller.identity
        ),
    )
}

/// 404 for a response created on a route (or a conversation on a provider) this gateway no
/// longer serves.
pub fn route_gone(kept: Kept, id: &str, route: &str) -> ApiError {
    let what = kept.noun();
    ApiError::new(
        ErrorKind::NotFound,
        "model_not_found",
        format!(
            "{what} \"{}\" was created on \"{route}\", which this gateway no longer serves",
            quoted(id)
        ),
    )
}

/// 404 for a response or conversation tailmeter has no record of (made elsewhere, or
/// forgotten), or 400 for a conversation to create, when no single provider the caller may use
/// could hold it.
pub fn unplaced(caller: &Caller, kept: Kept, id: Option<&str>, providers: &[&str]) -> ApiError {
    let what = kept.noun();
    let why = match providers {
        [] => format!(
            "identity {} is granted no model of an OpenAI provider",
            caller.identity
        ),
        several => format!(
            "identity {} may use the Responses API of several providers ({}), and it cannot tell which {}",
            caller.identity,
            several.join(", "),
            if id.is_some() { "holds it" } else { "to create it on" },
        ),
    };
    match id {
        Some(id) => ApiError::new(
            ErrorKind::NotFound,
            kept.not_found_code(),
            format!(
                "this gateway has no record of {what} \"{}\" (not created through it, deleted, or one of more than {} since), and {why}",
                quoted(id),
                crate::stored::CAPACITY
            ),
        ),
        None => ApiError::new(
            ErrorKind::InvalidRequest,
            "provider_ambiguous",
            format!("this gateway cannot create a {what}: {why}"),
        ),
    }
}
