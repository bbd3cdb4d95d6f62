//! A stream's Gemini chunks differ in little but their text and their numbers:
//! `{"candidates": [{"content": {"parts": [{"text": "…"}], …}], "usageMetadata": {…}, …}`.
//! [`Layout`] keeps a chunk's bytes but its text with what the full pass found
//! in them, and reads the next chunk by comparing it with them: the bytes
//! before the text string, its end found by a vector search, then the rest,
//! where the usage object may differ in its runs of digits only. The same
//! bytes hold the same members; a run of digits in place of another changes
//! no member, and the counts are read from the runs that are counts.
//!
//! Keeping a layout is a copy; the usage object's [`Template`] is made only
//! when a chunk matches up to it, so chunks laid out each their own way (a
//! stream's last) cost the full pass and little more.

use std::ops::Range;

use super::{json, Found, COUNTS};

/// Chunks whose other bytes are longer are not kept (a whole body, a large chunk).
const MAX_KEPT: usize = 2048;

/// The bytes of one chunk but its text, and what they held.
#[derive(Debug, Default)]
pub(super) struct Layout {
    /// The chunk before its text's opening quote, then from just past its closing quote.
    kept: Vec<u8>,
    /// Where the text's opening quote is: the length of the part before it.
    text_at: usize,
    /// Where, among the kept bytes, the usage object lies.
    usage: Range<usize>,
    /// Where, in the usage object, each count read from it starts (None: absent or null).
    count_at: [Option<usize>; 5],
    /// The usage object but for its digits, made on first use.
    template: Template,
    /// The kept bytes held a model (see [`Layout::reread`]).
    has_model: bool,
}

impl Layout {
    /// Whether `data`, whose only text string is at `text` and only usage object at
    /// `usage_at`, can make a layout: not when the bytes around the text could join with it
    /// into other members (they must end a value there), nor when they are too long to keep.
    pub(super) fn fits(data: &[u8], text: &Range<usize>, usage_at: usize) -> bool {
        let ends_value = matches!(data.get(text.end), None | Some(b',' | b'}' | b']'));
        let kept_len = data.len() - text.len();
        text.end <= usage_at && ends_value && kept_len <= MAX_KEPT
    }

    /// Becomes the layout of `data` (see [`Layout::fits`]), its usage object read as `read`;
    /// `has_model` when the full pass found a model in it.
    pub(super) fn refill(
        &mut self,
        data: &[u8],
        text: Range<usize>,
        usage_at: usize,
        read: &json::Integers<5>,
        has_model: bool,
    ) {
        self.kept.clear();
        self.kept.extend_from_slice(&data[..text.start]);
        self.kept.extend_from_slice(&data[text.end..]);
        self.text_at = text.start;
        self.usage = usage_at - text.len()..read.end - text.len();
        self.count_at = std::array::from_fn(|n| read.values[n].map(|_| read.starts[n] - usage_at));
        self.template.made = false;
        self.has_model = has_model;
    }

    /// What `data` holds, read by comparison with this layout's chunk; None when it is laid out
    /// otherwise, or when the model it names is still to be read.
    pub(super) fn reread(&mut self, data: &[u8], model_known: bool) -> Option<Found> {
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
        if !self.template.made {
            self.template
                .make(&self.kept[self.usage.clone()], &self.count_at);
        }
        let (counts, usage_end) = self.template.counts(data, usage_at)?;
        if data.get(usage_end..)? != &self.kept[self.usage.end..] {
            return None;
        }
        Some(Found {
            text: (text_end - self.text_at - 2) as u64,
            usage: Some(counts.into()),
            usage_at: Some(usage_at..usage_end),
            finish: false,
            model: None,
            error: false,
        })
    }
}

/// A usage object with its runs of digits left out, and where they were.
#[derive(Debug, Default)]
struct Template {
    made: bool,
    /// The object's bytes but its digits.
    literal: Vec<u8>,
    /// Its runs of digits, in order.
    digits: Vec<Digits>,
}

/// A run of digits: where it stood among the literal bytes, and the count it is, if one.
#[derive(Debug)]
struct Digits {
    at: usize,
    count: Option<usize>,
}

impl Template {
    /// Makes the template of `usage`, whose counts start at `count_at`.
    fn make(&mut self, usage: &[u8], count_at: &[Option<usize>; 5]) {
        self.literal.clear();
        self.digits.clear();
        let mut at = 0;
        while let Some(run) = usage[at..].iter().position(u8::is_ascii_digit) {
            self.literal.extend_from_slice(&usage[at..at + run]);
            at += run;
            self.digits.push(Digits {
                at: self.literal.len(),
                count: (0..COUNTS.len()).find(|&n| count_at[n] == Some(at)),
            });
            at += digit_run(&usage[at..]);
        }
        self.literal.extend_from_slice(&usage[at..]);
        self.made = true;
    }

    /// The counts of the usage object at `at` of `data` and the offset past it, when it is
    /// this template's but for its runs of digits.
    fn counts(&self, data: &[u8], mut at: usize) -> Option<([Option<u64>; 5], usize)> {
        let mut counts = [None; 5];
        let mut from = 0;
        for run in &self.digits {
            let same = &self.literal[from..run.at];
            if data.get(at..at + same.len())? != same {
                return None;
            }
            at += same.len();
            let len = digit_run(&data[at..]);
            if len == 0 {
                return None;
            }
            if let Some(count) = run.count {
                counts[count] = Some(json::unsigned(&data[at..at + len])??);
            }
            at += len;
            from = run.at;
        }
        let same = &self.literal[from..];
        if data.get(at..at + same.len())? != same {
            return None;
        }
        Some((counts, at + same.len()))
    }
}

/// How many ASCII digits `bytes` starts with.
fn digit_run(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
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
            ..Found::read(data, &mut None)
        }
    }

    /// The layout a full pass over `data` keeps, with none before.
    fn layout(data: &[u8]) -> Option<Layout> {
        let mut layout = None;
        Found::read(data, &mut layout);
        layout
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
                let layout = layout(&pair[0]);
                if let Some(found) = layout.and_then(|mut l| l.reread(&pair[1], true)) {
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
        let mut layouts: Vec<Layout> = chunks.iter().filter_map(|c| layout(c)).collect();
        assert!(layouts.len() >= 2);
        let (mut reread, mut refused) = (0, 0);
        for chunk in &chunks {
            for at in 0..chunk.len() {
                for byte in *b"\"\\:{}[],1a \n" {
                    let mut changed = chunk.clone();
                    changed[at] = byte;
                    for layout in &mut layouts {
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
            // A finishing chunk (the candidate's last), and a later usage object that is not
            // valid (the chunk has no usage).
            r#"{"parts":[{"text":"a"}],"finishReason":"STOP","usageMetadata":{"promptTokenCount":1}}"#,
            r#"{"parts":[{"text":"a"}],"usageMetadata":{"promptTokenCount":1},"usageMetadata":{"promptTokenCount":"1"}}"#,
        ];
        for chunk in no_layout {
            assert!(layout(chunk.as_bytes()).is_none(), "{chunk}");
        }
        let chunk = br#"{"parts":[{"text":"a"}],"usageMetadata":{"promptTokenCount":1}}"#;
        let mut kept = layout(chunk).expect("a layout");
        // A model to read first: the full pass must run.
        let with_model = br#"{"parts":[{"text":"a"}],"usageMetadata":{"promptTokenCount":1},"modelVersion":"m"}"#;
        let mut model_layout = layout(with_model).expect("a layout");
        assert!(model_layout.reread(with_model, false).is_none());
        assert!(model_layout.reread(with_model, true).is_some());
        assert_eq!(kept.reread(chunk, false).map(|f| f.text), Some(1));
    }
}
