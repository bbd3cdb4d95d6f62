//! Honest estimates for a request whose usage the provider did not report
//! (a stream cut off by either side, a server that never sends usage).
//!
//! - Input, from the request body: the text of its JSON string values (not
//!   member names, not `model`/`role`/`type`-like labels, not base64 media),
//!   counted with OpenAI's own tokenizer (tiktoken's `o200k_base` or
//!   `cl100k_base`, embedded in the binary) for OpenAI models, and at 4 bytes
//!   a token elsewhere (the rule of thumb the providers document for English
//!   text; their tokenizers are not public). Per-message framing tokens are
//!   not added, so the estimate leans low rather than high.
//! - Output, from the text that passed: the escaped length of the content
//!   fields the extractor counted ([`super::Extractor::content_bytes`]), at 4
//!   bytes a token.
//!
//! Only the first [`EXACT_PREFIX`] bytes of text are tokenized; the rest is
//! extrapolated at the ratio measured on them, so a 30 MiB request costs
//! milliseconds, not seconds.

use tiktoken_rs::CoreBPE;

/// Bytes per token assumed where no tokenizer applies.
const BYTES_PER_TOKEN: u64 = 4;
/// The most text tokenized exactly; beyond it the measured ratio is extrapolated.
const EXACT_PREFIX: usize = 256 * 1024;
/// The longest run of whitespace or of other characters handed to the tokenizer in one piece.
/// tiktoken's merge step is quadratic in the length of a piece, so one megabyte-long "word" (or
/// blank) would keep a proxy thread busy for minutes; real words are far shorter, so cutting
/// longer runs leaves real counts as they were.
const MAX_RUN: usize = 256;
/// String values longer than this are taken for binary data (base64 media), not text, when they
/// look encoded ([`looks_encoded`]); a pasted document that long is text all the same.
const MAX_TEXT_VALUE: usize = 1 << 20;
/// Members whose string values are labels or media, not text the model reads as tokens.
const NOT_TEXT: &[&str] = &[
    "model",
    "role",
    "type",
    "id",
    "tool_call_id",
    "media_type",
    "mime_type",
    "mimeType",
    "data",
    "url",
    "image_url",
    "detail",
    "format",
    "encoding_format",
    "service_tier",
    "reasoning_effort",
];

/// OpenAI's tokenizers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    O200k,
    Cl100k,
}

/// Which tokenizer an OpenAI model uses, when it is one (by name prefix, as tiktoken maps them).
fn tokenizer_kind(model: &str) -> Option<Kind> {
    const O200K: &[&str] = &[
        "gpt-4o",
        "gpt-4.1",
        "gpt-5",
        "gpt-oss",
        "chatgpt-4o",
        "o1",
        "o3",
        "o4",
    ];
    const CL100K: &[&str] = &["gpt-4", "gpt-3.5", "gpt-35", "text-embedding-"];
    let model = model.rsplit('/').next().unwrap_or(model);
    if O200K.iter().any(|p| model.starts_with(p)) {
        Some(Kind::O200k)
    } else if CL100K.iter().any(|p| model.starts_with(p)) {
        Some(Kind::Cl100k)
    } else {
        None
    }
}

impl Kind {
    /// The tokenizer, loaded on first use. Each holds tens of MB once loaded (`o200k_base` about
    /// 46, `cl100k_base` about 25), so only the ones in use are.
    fn bpe(self) -> &'static CoreBPE {
        match self {
            Kind::O200k => tiktoken_rs::o200k_base_singleton(),
            Kind::Cl100k => tiktoken_rs::cl100k_base_singleton(),
        }
    }
}

/// The tokenizer of an OpenAI model, when it is one.
fn tokenizer(model: &str) -> Option<&'static CoreBPE> {
    tokenizer_kind(model).map(Kind::bpe)
}

/// Loads `model`'s tokenizer in the background (the first load takes a moment), once; a
/// tokenizer no model in use needs is never loaded.
pub fn warm_up(model: &str) {
    use std::sync::Once;
    static O200K: Once = Once::new();
    static CL100K: Once = Once::new();
    let Some(kind) = tokenizer_kind(model) else {
        return;
    };
    let started = match kind {
        Kind::O200k => &O200K,
        Kind::Cl100k => &CL100K,
    };
    started.call_once(|| {
        std::thread::spawn(move || kind.bpe());
    });
}

/// Estimated input tokens of `request` (a JSON body) for `model`; 0 when it is not JSON.
pub fn input_tokens(model: &str, request: &[u8]) -> u64 {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(request) else {
        return 0;
    };
    let mut text = String::new();
    collect_text(&value, &mut text);
    text_tokens(model, &text)
}

/// Estimated output tokens for `content_bytes` bytes of generated text.
pub fn output_tokens(content_bytes: u64) -> u64 {
    content_bytes.div_ceil(BYTES_PER_TOKEN)
}

/// Tokens of `len` bytes at [`BYTES_PER_TOKEN`]: the estimate where no tokenizer applies, and
/// the one of last resort.
pub fn by_length(len: usize) -> u64 {
    (len as u64).div_ceil(BYTES_PER_TOKEN)
}

/// Tokens of `text` for `model`.
pub fn text_tokens(model: &str, text: &str) -> u64 {
    let Some(bpe) = tokenizer(model) else {
        return by_length(text.len());
    };
    if text.len() <= EXACT_PREFIX {
        return encoded_len(bpe, text);
    }
    let cut = (0..=EXACT_PREFIX)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let exact = encoded_len(bpe, &text[..cut]);
    let rest = (text.len() - cut) as u64;
    exact + (rest * exact).div_ceil(cut.max(1) as u64)
}

/// Tokens of `text`, tokenized in parts cut wherever a run of whitespace or of other
/// characters grows past [`MAX_RUN`] bytes.
fn encoded_len(bpe: &CoreBPE, text: &str) -> u64 {
    let mut tokens = 0;
    let (mut start, mut run, mut blank) = (0, 0, false);
    for (at, c) in text.char_indices() {
        if c.is_whitespace() != blank {
            blank = !blank;
            run = 0;
        }
        run += c.len_utf8();
        if run > MAX_RUN {
            tokens += bpe.encode_ordinary(&text[start..at]).len() as u64;
            start = at;
            run = c.len_utf8();
        }
    }
    tokens + bpe.encode_ordinary(&text[start..]).len() as u64
}

/// Appends the text of every string value under `value` to `out`, one per line.
fn collect_text(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::String(text) if text.len() <= MAX_TEXT_VALUE || !looks_encoded(text) => {
            out.push_str(text);
            out.push('\n');
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| collect_text(item, out)),
        serde_json::Value::Object(members) => {
            for (name, member) in members {
                if !NOT_TEXT.contains(&name.as_str()) {
                    collect_text(member, out);
                }
            }
        }
        _ => {}
    }
}

/// Whether a string is encoded data (base64, or a base64 `data:` URL) rather than text: its first
/// KiB of data is all of base64's alphabets.
fn looks_encoded(text: &str) -> bool {
    let data = text
        .strip_prefix("data:")
        .and_then(|url| url.split_once(','))
        .map_or(text, |(_, data)| data);
    data.bytes()
        .take(1024)
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_models_use_the_real_tokenizer() {
        let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"Count to two."}]}"#;
        // o200k_base: "Count", " to", " two", ".\n".
        assert_eq!(input_tokens("gpt-4o", body), 4);
        assert_eq!(input_tokens("openai/gpt-4.1-mini", body), 4);
        // cl100k_base splits it the same way.
        assert_eq!(input_tokens("gpt-4", body), 4);
        // Elsewhere, 4 bytes a token: "Count to two.\n" is 14 bytes.
        assert_eq!(input_tokens("claude-sonnet-4-5", body), 4);
        assert_eq!(input_tokens("gpt-4o", b"not json"), 0);
    }

    #[test]
    fn media_and_labels_are_not_text() {
        let image = "A".repeat(1000);
        let body = format!(
            r#"{{"model":"m","contents":[{{"role":"user","parts":[{{"text":"abcd"}},{{"inlineData":{{"mimeType":"image/png","data":"{image}"}}}}]}}]}}"#
        );
        assert_eq!(input_tokens("gemini-2.5-flash", body.as_bytes()), 2);
    }

    #[test]
    fn a_document_past_a_mebibyte_is_text_and_media_is_not() {
        let prose = "Minutes of the meeting, item by item. ".repeat(30_000);
        let media = format!("data:image/png;base64,{}", "iVBORw0KGgo+/=".repeat(80_000));
        assert!(prose.len() > MAX_TEXT_VALUE && media.len() > MAX_TEXT_VALUE);
        let body =
            |text: &str| serde_json::json!({"messages": [{"role": "user", "content": text}]});
        let tokens =
            |text: &str| input_tokens("claude-sonnet-4-5", body(text).to_string().as_bytes());
        assert_eq!(tokens(&prose), (prose.len() as u64 + 1).div_ceil(4));
        assert_eq!(tokens(&media), 0);
        assert_eq!(tokens(&media["data:image/png;base64,".len()..]), 0);
    }

    #[test]
    fn endless_words_and_blanks_are_tokenized_in_bounded_time() {
        let started = std::time::Instant::now();
        for text in ["x".repeat(1 << 20), " ".repeat(1 << 20)] {
            let tokens = text_tokens("gpt-4o", &text);
            assert!((1..=1 << 20).contains(&tokens), "{tokens}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        let prose = "The quick brown fox jumps over the lazy dog. ".repeat(50);
        let bpe = tokenizer("gpt-4o").unwrap();
        assert_eq!(
            text_tokens("gpt-4o", &prose),
            bpe.encode_ordinary(&prose).len() as u64
        );
    }

    #[test]
    fn long_text_is_extrapolated_from_its_start() {
        let text = "word ".repeat(200_000);
        let tokens = text_tokens("gpt-4o", &text);
        assert!((199_000..=201_000).contains(&tokens), "{tokens}");
        assert_eq!(output_tokens(9), 3);
    }
}
