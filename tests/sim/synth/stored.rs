//! Stored Responses, as OpenAI keeps them: a response created with `store` (the default) can be
//! retrieved by id (`GET /v1/responses/{id}`), its input listed and it can be deleted; one created
//! with `background: true` runs on its own for [`BACKGROUND_RUN`] after its creation was
//! answered, `queued` then `in_progress` then finished, while the client polls it, streams its
//! events from any point (`?stream=true&starting_after=N`, held until it finishes) or cancels
//! it. The usage is that of the create call (`x-sim-usage`, the request log): retrieving bills
//! nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{json, Value};

use super::responses::{Response, Status};
use super::Synth;
use crate::deliver::{Kind, Reply};
use crate::dialect::Dialect;
use crate::routes::StoredAction;

/// How long a background response runs before it is finished.
pub const BACKGROUND_RUN: Duration = Duration::from_millis(400);
/// The most responses kept; the oldest go first.
const CAPACITY: usize = 10_000;

/// One stored response, every form it can be asked for in made when it was created.
#[derive(Debug)]
struct Kept {
    background: bool,
    created: Instant,
    cancelled: bool,
    queued: Value,
    in_progress: Value,
    finished: Value,
    cancelled_object: Value,
    events: Vec<String>,
    input_items: Vec<Value>,
}

impl Kept {
    /// The response object as it stands now.
    fn current(&self) -> &Value {
        let running = self.created.elapsed();
        match () {
            _ if self.cancelled => &self.cancelled_object,
            _ if !self.background || running >= BACKGROUND_RUN => &self.finished,
            _ if running < BACKGROUND_RUN / 2 => &self.queued,
            _ => &self.in_progress,
        }
    }

    /// How long until it finishes (zero once it has).
    fn remaining(&self) -> Duration {
        match self.background {
            true => BACKGROUND_RUN.saturating_sub(self.created.elapsed()),
            false => Duration::ZERO,
        }
    }
}

/// The stored responses, by id.
#[derive(Debug, Default)]
pub struct Stored {
    kept: Mutex<(HashMap<String, Kept>, VecDeque<String>)>,
}

impl Stored {
    /// Keeps `response` (created just now) for later requests.
    pub fn keep(&self, response: &Response<'_>, synth: &Synth) {
        let kept = Kept {
            background: response.background,
            created: Instant::now(),
            cancelled: false,
            queued: response.object(Status::Queued),
            in_progress: response.object(Status::InProgress),
            finished: response.object(Status::Finished),
            cancelled_object: response.object(Status::Cancelled),
            events: response.events(),
            input_items: response.input_items(synth),
        };
        let mut guard = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let (by_id, order) = &mut *guard;
        if order.len() >= CAPACITY {
            if let Some(oldest) = order.pop_front() {
                by_id.remove(&oldest);
            }
        }
        order.push_back(response.id.clone());
        by_id.insert(response.id.clone(), kept);
    }

    /// The answer to `action` on response `id` (`query`: the request's query string).
    pub fn answer(&self, id: &str, action: StoredAction, query: Option<&str>) -> Reply {
        let mut guard = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let (by_id, order) = &mut *guard;
        let Some(kept) = by_id.get_mut(id) else {
            let message = format!("Response with id '{id}' not found.");
            return Dialect::OpenAi.error(StatusCode::NOT_FOUND, &message);
        };
        match action {
            StoredAction::Retrieve => match query_value(query, "stream") {
                Some("true") => replay(kept, query),
                _ => Reply::ok(Kind::Json, kept.current().to_string()),
            },
            StoredAction::Cancel if !kept.background => Dialect::OpenAi.error(
                StatusCode::BAD_REQUEST,
                "Only responses created with background=true can be cancelled.",
            ),
            StoredAction::Cancel => {
                kept.cancelled |= !kept.remaining().is_zero();
                Reply::ok(Kind::Json, kept.current().to_string())
            }
            StoredAction::InputItems => {
                let items = &kept.input_items;
                let body = json!({"object": "list", "data": items, "has_more": false,
                    "first_id": items.first().map(|i| &i["id"]),
                    "last_id": items.last().map(|i| &i["id"])});
                Reply::ok(Kind::Json, body.to_string())
            }
            StoredAction::Delete => {
                by_id.remove(id);
                order.retain(|kept_id| kept_id != id);
                let body = json!({"id": id, "object": "response.deleted", "deleted": true});
                Reply::ok(Kind::Json, body.to_string())
            }
        }
    }
}

/// A background response's events after `starting_after` (all of them without it), sent once it
/// has finished.
fn replay(kept: &Kept, query: Option<&str>) -> Reply {
    if !kept.background {
        return Dialect::OpenAi.error(
            StatusCode::BAD_REQUEST,
            "This response cannot be streamed because it was not created with background=true.",
        );
    }
    if kept.cancelled {
        return Dialect::OpenAi.error(StatusCode::BAD_REQUEST, "This response was cancelled.");
    }
    let after = query_value(query, "starting_after").and_then(|n| n.parse::<usize>().ok());
    let from = after.map_or(0, |n| n + 1);
    let events = kept.events.get(from..).unwrap_or_default().concat();
    Reply::ok(Kind::Sse, events).after(kept.remaining())
}

/// The value of `name` in a query string.
pub fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}
