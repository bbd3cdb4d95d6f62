//! Where each key of the file sits: dotted paths mapped to byte spans.
//!
//! Typed deserialization throws away positions, and `toml`'s errors carry a
//! span but not the key path. This index is built from a second, untyped
//! parse that keeps the span of every key and array element, so any error
//! (serde's or our own validation's) can name both its line and its key.

use std::ops::Range;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

use super::error::KeyPath;

/// Every key and array element of a document, in file order.
#[derive(Debug, Default)]
pub(super) struct KeyIndex {
    /// `(path, span of the key or element)`, sorted by span start.
    entries: Vec<(KeyPath, Range<usize>)>,
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
}

impl KeyIndex {
    /// Parses `text` untyped and records every key; fails on TOML syntax errors
    /// (and on datetimes, which `toml` cannot hand over with a spanned key).
    pub(super) fn build(text: &str) -> Result<KeyIndex, toml::de::Error> {
        let root: Node = toml::from_str(text)?;
        let mut entries = Vec::new();
        root.record(&KeyPath::default(), &mut entries);
        entries.sort_by_key(|(_, span)| span.start);
        Ok(KeyIndex {
            entries,
            line_starts: line_starts(text),
        })
    }

    /// An index with no keys, for a file [`KeyIndex::build`] could not map.
    pub(super) fn lines_only(text: &str) -> KeyIndex {
        KeyIndex {
            entries: Vec::new(),
            line_starts: line_starts(text),
        }
    }

    /// 1-based line holding byte `offset`.
    pub(super) fn line_at(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset)
    }

    /// Line of `path`, or of its nearest enclosing key that is in the file.
    pub(super) fn line_of(&self, path: &KeyPath) -> Option<usize> {
        let mut current = Some(path.clone());
        while let Some(path) = current {
            if let Some((_, span)) = self.entries.iter().find(|(p, _)| *p == path) {
                return Some(self.line_at(span.start));
            }
            current = path.parent();
        }
        None
    }

    /// The key or element an error spanning `span` belongs to: the first one
    /// starting inside it (a table's header key, an unknown key itself), else
    /// the last one starting before it (a value follows its key).
    pub(super) fn path_at(&self, span: &Range<usize>) -> Option<&KeyPath> {
        let first_inside = self.entries.partition_point(|(_, s)| s.start < span.start);
        match self.entries.get(first_inside) {
            Some((path, s)) if s.start < span.end.max(span.start + 1) => Some(path),
            _ => first_inside.checked_sub(1).map(|i| &self.entries[i].0),
        }
    }
}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// An untyped TOML value keeping key and array-element spans.
///
/// Table values themselves are not `Spanned`: `toml` gives no span to
/// implicit (dotted-key) tables, and asking for one fails the parse.
enum Node {
    Table(Vec<(Spanned<String>, Node)>),
    Array(Vec<Spanned<Node>>),
    Scalar,
}

impl Node {
    fn record(&self, path: &KeyPath, out: &mut Vec<(KeyPath, Range<usize>)>) {
        match self {
            Node::Table(entries) => {
                for (key, value) in entries {
                    let child = path.key(key.get_ref());
                    value.record(&child, out);
                    out.push((child, key.span()));
                }
            }
            Node::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let child = path.index(i);
                    item.get_ref().record(&child, out);
                    out.push((child, item.span()));
                }
            }
            Node::Scalar => {}
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any TOML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Node::Table(entries))
    }
}
