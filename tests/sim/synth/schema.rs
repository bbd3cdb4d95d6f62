//! A value that satisfies a JSON schema, for answers the client constrained:
//! structured output (`response_format: json_schema`, `text.format`, Gemini's
//! `responseSchema`) and forced tool calls, whose arguments follow the tool's
//! input schema.

use serde_json::{json, Map, Value};

/// Nesting past this depth is answered with `null` (recursive schemas).
const MAX_DEPTH: usize = 12;

/// A small value valid under `schema` (resolving local `$ref`s against it).
pub fn example(schema: &Value) -> Value {
    build(schema, schema, 0)
}

fn build(schema: &Value, root: &Value, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    let Some(object) = schema.as_object() else {
        return json!("simulated");
    };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        let target = reference
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer));
        return target.map_or(Value::Null, |t| build(t, root, depth + 1));
    }
    if let Some(value) = object.get("const") {
        return value.clone();
    }
    if let Some(first) = object
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|v| v.first())
    {
        return first.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = object
            .get(key)
            .and_then(Value::as_array)
            .and_then(|v| v.first())
        {
            return build(first, root, depth + 1);
        }
    }
    // Gemini's OpenAPI-style schemas spell the types in capitals (`OBJECT`, `STRING`).
    let kind = match object.get("type") {
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| !k.eq_ignore_ascii_case("null")),
        Some(Value::String(kind)) => Some(kind.as_str()),
        _ if object.contains_key("properties") => Some("object"),
        _ => None,
    }
    .map(str::to_ascii_lowercase);
    match kind.as_deref() {
        Some("object") => {
            let properties = object.get("properties").and_then(Value::as_object);
            let mut out = Map::new();
            for (name, property) in properties.into_iter().flatten() {
                out.insert(name.clone(), build(property, root, depth + 1));
            }
            Value::Object(out)
        }
        Some("array") => {
            let count = object.get("minItems").and_then(Value::as_u64).unwrap_or(1);
            let item = object.get("items").unwrap_or(&Value::Null);
            Value::Array(
                (0..count.clamp(1, 8))
                    .map(|_| build(item, root, depth + 1))
                    .collect(),
            )
        }
        Some("integer") => json!(object
            .get("minimum")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(1)),
        Some("number") => json!(object
            .get("minimum")
            .and_then(Value::as_f64)
            .unwrap_or(1.0)
            .max(1.0)),
        Some("boolean") => json!(true),
        Some("null") => Value::Null,
        _ => json!("simulated"),
    }
}
