//! A stream's Gemini chunks differ in little but their text and their numbers:
//! `{"candidates": [{"content": {"parts": [{"text": "…"}], …}], "usageMetadata": {…}, …}`.
//! [`Layout`] keeps a chunk's bytes but its text with what the full pass found
//! in them, and reads the next chunk by comparing it with them: the bytes
//! before the text string, its end found by a vector search, then the rest,
//! where the usage object may differ in its runs of digits only. The same
//! bytes hold the same members; a run of digits in place of another changes
//! no member, and the counts are read from the runs that are counts.

use std::ops::Range;

use super::{json, Found, COUNTS};

/// Chunks whose other bytes are longer are not kept (a whole body, a large chunk).
const MAX_KEPT: usize = 2048;

/// A run of digits in the usage object: where it stands among the kept bytes (which leave
/// the digits out) and the count it is, if one.
#[derive(Debug)]
struct Digits {
    at: usize,
    count: Option<usize>,
}

/// The bytes of one chunk but its text and its usage's digits, and what they held.
#[derive(Debug)]
pub(super) struct Layout {
    /// Before the text's opening quote; after its closing quote, to the end, without the
    /// usage object's runs of digits.
    kept: Vec<u8>,
    /// Where the text's opening quote is: the length of the part before it.
    text_at: usize,
    /// Where, among the kept bytes, the usage object starts and ends.
    usage: Range<usize>,
    /// The runs of digits of the usage object, in order.
    digits: Vec<Digits>,
    /// The kept bytes held a finish reason.
    finish: bool,
    /// The kept bytes held a model (see [`Layout::reread`]).
    has_model: bool,
}

impl Layout {
    /// The layout of `data`, whose only text string is at `text` and only usage object (read
    /// as `read`) at `usage_at`, and in which a full pass found `found`; None when the bytes
    /// around the text could join with it into other members (they must end a value there),
    /// or when they are too long to keep. `old`'s buffers are reused.
    pub(super) fn of(
        data: &[u8],
        text: Range<usize>,
        usage_at: usize,
        read: &json::Integers<5>,
        found: Found,
        old: Option<Layout>,
    ) -> Option<Layout> {
        let ends_value = |at: usize| matches!(data.get(at), None | Some(b',' | b'}' | b']'));
        let kept_len = data.len() - text.len();
        if text.end > usage_at || found.error || !ends_value(text.end) || kept_len > MAX_KEPT {
            return None;
        }
        let (mut kept, mut digits) =
            old.map_or_else(Default::default, |old| (old.kept, old.digits));
        kept.clear();
        digits.clear();
        kept.extend_from_slice(&data[..text.start]);
        kept.extend_from_slice(&data[text.end..usage_at]);
        let usage_start = kept.len();
        let mut at = usage_at;
        while at < read.end {
            let run = data[at..read.end]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if run == 0 {
                kept.push(data[at]);
                at += 1;
                continue;
            }
            let count =
                (0..COUNTS.len()).find(|&n| read.values[n].is_some() && read.starts[n] == at);
            digits.push(Digits {
                at: kept.len(),
                count,
            });
            at += run;
        }
        let usage = usage_start..kept.len();
        kept.extend_from_slice(&data[read.end..]);
        Some(Layout {
            kept,
            text_at: text.start,
            usage,
            digits,
            finish: found.finish,
            has_model: found.model.is_some(),
        })
    }

    /// What `data` holds, read by comparison with this layout's chunk; None when it is laid out
    /// otherwise, or when the model it names is still to be read.
    pub(super) fn reread(&self, data: &[u8], model_known: bool) -> Option<Found> {
        if self.has_model && !model_known {
            return None;
        }
        let before = &self.kept[..self.text_at];
        if !data.starts_with(before) || data.get(self.text_at) != Some(&b'"') {
            return None;
        }
        let text_end = json::string_end(data, self.text_at)?;
        let middle = &self.kept[self.text_at..self.usage.start];
        let usage_at = text_end + middle.len();
        if data.get(text_end..usage_at)? != middle {
            return None;
        }
        let (counts, usage_end) = self.counts(data, usage_at)?;
        if data.get(usage_end..)? != &self.kept[self.usage.end..] {
            return None;
        }
        Some(Found {
            text: (text_end - self.text_at - 2) as u64,
            usage: Some(counts.into()),
            finish: self.finish,
            model: None,
            error: false,
        })
    }

    /// The counts of the usage object at `at` of `data` and the offset past it, when it is
    /// this layout's but for its runs of digits.
    fn counts(&self, data: &[u8], mut at: usize) -> Option<([Option<u64>; 5], usize)> {
        let mut counts = [None; 5];
        let mut from = self.usage.start;
        for run in &self.digits {
            let same = &self.kept[from..run.at];
            if data.get(at..at + same.len())? != same {
                return None;
            }
            at += same.len();
            let len = data[at..].iter().take_while(|b| b.is_ascii_digit()).count();
            if len == 0 {
                return None;
            }
            if let Some(count) = run.count {
                counts[count] = Some(json::unsigned(&data[at..at + len])??);
            }
            at += len;
            from = run.at;
        }
        let same = &self.kept[from..self.usage.end];
        if data.get(at..at + same.len())? != same {
            return None;
        }
        Some((counts, at + same.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::tests::fixture;

    /// The data payloads of an SSE recording.
    fn payloads(file: &str) -> Vec<Vec<u8>> {
        let text = String::from_utf8(fixture(file)).expect("UTF-8");
        let lines = text.lines().filter_map(|line| line.strip_prefix("data: "));
        lines
            .map(|data| data.trim_end().as_bytes().to_vec())
            .collect()
    }

    /// What a full pass finds, but the model's place (a reread leaves the model to it).
    fn full(data: &[u8]) -> Found {
        Found {
            model: None,
            ..Found::read(data, None).0
        }
    }

    #[test]
    fn a_stream_is_reread_from_its_text_and_counts() {
        for file in [
            "gemini_stream_sse_usage_thoughts.sse",
            "gemini_stream_sse_prompt_count_changes.sse",
            "vertex_gemini_stream_sse_usage_last_only.sse",
        ] {
            let chunks = payloads(file);
            let mut reread = 0;
            for pair in chunks.windows(2) {
                let layout = Found::read(&pair[0], None).1;
                if let Some(found) = layout.and_then(|l| l.reread(&pair[1], true)) {
                    assert_eq!(found, full(&pair[1]), "{file}");
                    reread += 1;
                }
            }
            assert!(reread > 0, "{file}: no chunk was reread");
        }
    }

    #[test]
    fn a_reread_finds_what_the_full_pass_finds_whatever_byte_changed() {
        let mut chunks = payloads("gemini_stream_sse_usage_thoughts.sse");
        chunks.extend(payloads("vertex_gemini_stream_sse_usage_last_only.sse"));
        let layouts: Vec<Layout> = chunks
            .iter()
            .filter_map(|c| Found::read(c, None).1)
            .collect();
        assert!(layouts.len() >= 2);
        let (mut reread, mut refused) = (0, 0);
        for chunk in &chunks {
            for at in 0..chunk.len() {
                for byte in *b"\"\\:{}[],1a \n" {
                    let mut changed = chunk.clone();
                    changed[at] = byte;
                    for layout in &layouts {
                        match layout.reread(&changed, true) {
                            Some(found) => {
                                assert_eq!(
                                    found,
                                    full(&changed),
                                    "{}",
                                    String::from_utf8_lossy(&changed)
                                );
                                reread += 1;
                            }
                            None => refused += 1,
                        }
                    }
                }
            }
        }
        assert!(
            reread > 1000 && refused > 1000,
            "{reread} reread, {refused} refused"
        );
    }

    #[test]
    fn a_layout_is_not_kept_where_other_bytes_could_join_the_text_or_usage() {
        let no_layout = [
            // Two text parts, no usage, an error, a member glued to the text's end.
            r#"{"parts":[{"text":"a"},{"text":"b"}],"usageMetadata":{"promptTokenCount":1}}"#,
            r#"{"parts":[{"text":"a"}]}"#,
            r#"{"parts":[{"text":"a"}],"usageMetadata":{"promptTokenCount":1},"error":{"code":1}}"#,
            r#"{"parts":[{"text":"a": 1}],"usageMetadata":{"promptTokenCount":1}}"#,
            // A later usage object that is not valid: the chunk has no usage.
            r#"{"parts":[{"text":"a"}],"usageMetadata":{"promptTokenCount":1},"usageMetadata":{"promptTokenCount":"1"}}"#,
        ];
        for chunk in no_layout {
            assert!(Found::read(chunk.as_bytes(), None).1.is_none(), "{chunk}");
        }
        let chunk = br#"{"parts":[{"text":"a"}],"usageMetadata":{"promptTokenCount":1}}"#;
        let layout = Found::read(chunk, None).1.expect("a layout");
        // A model to read first: the full pass must run.
        let with_model = br#"{"parts":[{"text":"a"}],"usageMetadata":{"promptTokenCount":1},"modelVersion":"m"}"#;
        let model_layout = Found::read(with_model, None).1.expect("a layout");
        assert!(model_layout.reread(with_model, false).is_none());
        assert!(model_layout.reread(with_model, true).is_some());
        assert_eq!(layout.reread(chunk, false).map(|f| f.text), Some(1));
    }
}
