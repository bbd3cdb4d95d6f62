//! OpenAI moderations, synthesized: one result per input (a string, a list of strings, or a list
//! of text and image parts), flagged for `violence` when its text names it, in the shape of
//! `omni-moderation-latest`'s answer. Free: no usage.

use serde_json::{json, Map, Value};

use crate::deliver::{Kind, Reply};

/// The model a request that names none gets, and the dated model answering for it.
const DEFAULT_MODEL: &str = "omni-moderation-latest";
const ANSWERING_MODEL: &str = "omni-moderation-2024-09-26";

/// OpenAI's categories, each scored.
const CATEGORIES: [&str; 13] = [
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
];

/// Answers POST /v1/moderations.
pub fn moderate(id: String, request: &Value) -> Result<Reply, String> {
    let model = match request.get("model") {
        None | Some(Value::Null) => DEFAULT_MODEL,
        Some(model) => model.as_str().ok_or("`model` is not a string")?,
    };
    let results = match request.get("input").ok_or("`input` is required")? {
        Value::String(text) => vec![result(text, false)],
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .map(|text| result(text.as_str().unwrap_or_default(), false))
            .collect(),
        Value::Array(parts) => vec![parts_result(parts)?],
        _ => return Err("`input` must be a string or an array".to_owned()),
    };
    let answering = if model == DEFAULT_MODEL {
        ANSWERING_MODEL
    } else {
        model
    };
    let body = json!({"id": id, "model": answering, "results": results});
    Ok(Reply::ok(Kind::Json, body.to_string()))
}

/// One result for a list of text and image parts, judged together.
fn parts_result(parts: &[Value]) -> Result<Value, String> {
    let mut text = String::new();
    let mut image = false;
    for part in parts {
        match part.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(part.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("image_url") => image = true,
            _ => return Err("each part must be `text` or `image_url`".to_owned()),
        }
    }
    Ok(result(&text, image))
}

/// The result for `text` (and an image beside it): `violence` flagged when the text says it.
fn result(text: &str, image: bool) -> Value {
    let violent = text.to_lowercase().contains("violence");
    let (mut flags, mut scores, mut applied) = (Map::new(), Map::new(), Map::new());
    for category in CATEGORIES {
        let hit = violent && category == "violence";
        flags.insert(category.to_owned(), json!(hit));
        scores.insert(category.to_owned(), json!(if hit { 0.91 } else { 0.000_1 }));
        let types = match image && category.starts_with("violence") {
            true => json!(["text", "image"]),
            false => json!(["text"]),
        };
        applied.insert(category.to_owned(), types);
    }
    json!({"flagged": violent, "categories": flags, "category_scores": scores,
        "category_applied_input_types": applied})
}
