//! OpenAI embeddings, synthesized: one unit vector per input (a string, a
//! token array, or a list of either), as floats or as base64 little-endian
//! `f32` (the Python SDK asks for base64 by default), with `prompt_tokens`
//! from the inputs' size.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::prompt::tokens_of_text;
use super::{model_of, opt_u64, Tokens};
use crate::deliver::{Kind, Reply};

/// Dimensions when the request names none.
const DEFAULT_DIMENSIONS: u64 = 1_536;
/// Largest `dimensions` accepted.
const MAX_DIMENSIONS: u64 = 4_096;

/// Answers POST /v1/embeddings.
pub fn embed(request: &Value) -> Result<Reply, String> {
    let model = model_of(request)?;
    let inputs = inputs(request.get("input").ok_or("`input` is required")?)?;
    let dimensions = opt_u64(request, "dimensions")?.unwrap_or(DEFAULT_DIMENSIONS);
    if dimensions == 0 || dimensions > MAX_DIMENSIONS {
        return Err(format!("`dimensions` must be 1 to {MAX_DIMENSIONS}"));
    }
    let base64 = match request.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => return Err(format!("unknown encoding_format {other:?}")),
    };
    let mut prompt_tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, (seed, tokens))| {
            prompt_tokens += tokens;
            let vector = unit_vector(seed, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens = Tokens {
        input: prompt_tokens,
        ..Tokens::default()
    };
    let body = json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}});
    Ok(Reply::ok(Kind::Json, body.to_string()).with_usage(tokens))
}

/// Each input as (the bytes its vector derives from, its token count).
fn inputs(input: &Value) -> Result<Vec<(Vec<u8>, u64)>, String> {
    let one = |item: &Value| -> Result<(Vec<u8>, u64), String> {
        match item {
            Value::String(text) if !text.is_empty() => {
                Ok((text.as_bytes().to_vec(), tokens_of_text(text)))
            }
            Value::Array(ids) if !ids.is_empty() && ids.iter().all(Value::is_u64) => {
                Ok((item.to_string().into_bytes(), ids.len() as u64))
            }
            _ => Err("each `input` must be a non-empty string or token array".to_owned()),
        }
    };
    match input {
        Value::Array(items) if items.iter().all(|i| i.is_string() || i.is_array()) => {
            if items.is_empty() {
                return Err("`input` must not be empty".to_owned());
            }
            items.iter().map(one).collect()
        }
        other => Ok(vec![one(other)?]),
    }
}

/// A deterministic unit vector for `seed`.
fn unit_vector(seed: &[u8], dimensions: u64) -> Vec<f32> {
    let digest = Sha256::digest(seed);
    let mut state = u64::from_le_bytes(digest[..8].try_into().unwrap_or([1; 8])) | 1;
    let raw: Vec<f32> = (0..dimensions)
        .map(|_| {
            // xorshift64*: cheap, deterministic, good enough for test vectors.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            bits as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    raw.into_iter().map(|x| x / norm).collect()
}
