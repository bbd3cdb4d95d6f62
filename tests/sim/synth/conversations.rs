//! Conversations, as OpenAI keeps them (`/v1/conversations`): a list of items a Responses call
//! names with `conversation` reads as the start of its prompt and adds its input and output to.
//! Made, read, updated (metadata) and deleted by id, its items added, listed, read and deleted
//! one by one. Nothing here bills tokens.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use http::StatusCode;
use serde_json::{json, Value};

use super::stored::query_value;
use super::Synth;
use crate::deliver::{Kind, Reply};
use crate::dialect::Dialect;
use crate::routes::ConversationAction;

/// The most conversations kept (a test run makes far fewer).
const CAPACITY: usize = 10_000;

#[derive(Debug)]
struct Conversation {
    metadata: Value,
    items: Vec<Value>,
}

/// The conversations, by id.
#[derive(Debug, Default)]
pub struct Conversations {
    kept: Mutex<HashMap<String, Conversation>>,
}

impl Conversations {
    /// The answer to `action` (on conversation `id`, and item `item`, where the path names them).
    pub fn answer(
        &self,
        synth: &Synth,
        id: Option<&str>,
        item: Option<&str>,
        action: ConversationAction,
        request: &Value,
        query: Option<&str>,
    ) -> Reply {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(id) = id else {
            if kept.len() >= CAPACITY {
                return Dialect::OpenAi
                    .error(StatusCode::TOO_MANY_REQUESTS, "too many conversations");
            }
            let id = synth.id("conv");
            let items = with_ids(
                synth,
                request["items"].as_array().cloned().unwrap_or_default(),
            );
            let metadata = request.get("metadata").cloned().unwrap_or(json!({}));
            let conversation = Conversation { metadata, items };
            let body = object(&id, &conversation);
            kept.insert(id, conversation);
            return Reply::ok(Kind::Json, body.to_string());
        };
        let Some(conversation) = kept.get_mut(id) else {
            return not_found("Conversation", id);
        };
        let body = match (action, item) {
            (ConversationAction::Retrieve, None) => object(id, conversation),
            (ConversationAction::Update, None) => {
                conversation.metadata = request.get("metadata").cloned().unwrap_or(json!({}));
                object(id, conversation)
            }
            (ConversationAction::Delete, None) => {
                kept.remove(id);
                json!({"id": id, "object": "conversation.deleted", "deleted": true})
            }
            (ConversationAction::AddItems, None) => {
                let added = with_ids(
                    synth,
                    request["items"].as_array().cloned().unwrap_or_default(),
                );
                conversation.items.extend(added.iter().cloned());
                list(&added)
            }
            (ConversationAction::ListItems, None) => {
                let mut items = conversation.items.clone();
                if query_value(query, "order") != Some("asc") {
                    items.reverse(); // newest first, unless asked otherwise
                }
                list(&items)
            }
            (ConversationAction::Retrieve, Some(item)) => {
                match conversation.items.iter().find(|i| i["id"] == item) {
                    Some(found) => found.clone(),
                    None => return not_found("Item", item),
                }
            }
            (ConversationAction::Delete, Some(item)) => {
                let before = conversation.items.len();
                conversation.items.retain(|i| i["id"] != item);
                if conversation.items.len() == before {
                    return not_found("Item", item);
                }
                object(id, conversation)
            }
            _ => return Dialect::OpenAi.error(StatusCode::METHOD_NOT_ALLOWED, "not supported"),
        };
        Reply::ok(Kind::Json, body.to_string())
    }

    /// The items of conversation `id`, for a Responses call that continues it; `None` when there
    /// is no such conversation.
    pub fn items(&self, id: &str) -> Option<Vec<Value>> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.get(id).map(|c| c.items.clone())
    }

    /// Adds a Responses call's input and output items to conversation `id`.
    pub fn extend(&self, synth: &Synth, id: &str, items: Vec<Value>) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(conversation) = kept.get_mut(id) {
            conversation.items.extend(with_ids(synth, items));
        }
    }
}

/// The `conversation` a Responses request names: an id, or an object with one.
pub fn named_in(request: &Value) -> Option<&str> {
    let conversation = request.get("conversation")?;
    conversation
        .as_str()
        .or_else(|| conversation.get("id").and_then(Value::as_str))
}

/// OpenAI's 404 for a conversation or item it does not have.
pub fn not_found(what: &str, id: &str) -> Reply {
    Dialect::OpenAi.error(
        StatusCode::NOT_FOUND,
        &format!("{what} with id '{id}' not found."),
    )
}

/// `items` with an id each (a message given as text keeps its text as one input part).
fn with_ids(synth: &Synth, items: Vec<Value>) -> Vec<Value> {
    items
        .into_iter()
        .map(|mut item| {
            if item.get("type").is_none() {
                item["type"] = json!("message");
            }
            if let Some(text) = item
                .get("content")
                .and_then(Value::as_str)
                .map(str::to_owned)
            {
                item["content"] = json!([{"type": "input_text", "text": text}]);
            }
            if item.get("id").is_none() {
                item["id"] = json!(synth.id("msg"));
            }
            item
        })
        .collect()
}

fn object(id: &str, conversation: &Conversation) -> Value {
    json!({"id": id, "object": "conversation", "created_at": 1_700_000_000,
        "metadata": conversation.metadata})
}

fn list(items: &[Value]) -> Value {
    json!({"object": "list", "data": items, "has_more": false,
        "first_id": items.first().map(|i| &i["id"]), "last_id": items.last().map(|i| &i["id"])})
}
