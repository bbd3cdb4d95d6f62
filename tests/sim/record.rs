//! The log of requests the simulator received, served at `/_sim/requests`,
//! so tests can check what the proxy really sent upstream (credentials,
//! paths, bodies) without trusting the proxy's own account of it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http::request::Parts;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::synth::Tokens;

/// How many requests are kept; past it the oldest are forgotten.
const MAX_RECORDS: usize = 10_000;

/// One received request.
#[derive(Debug, Serialize)]
pub struct Record {
    method: String,
    /// `HTTP/1.1` or `HTTP/2.0`: how the proxy spoke to the provider.
    version: String,
    path: String,
    /// The proxy's end of the connection (`127.0.0.1:PORT`): one value per connection.
    peer: Option<String>,
    headers: BTreeMap<String, String>,
    body_len: usize,
    body_sha256: String,
    model: Option<String>,
    /// What a synthesized answer reported (`--synthesize`); null for replays.
    usage: Option<Tokens>,
}

impl Record {
    /// The record of a request head, its body and the model it named.
    pub fn new(parts: &Parts, body: &[u8], model: Option<String>) -> Self {
        let mut headers = BTreeMap::<String, String>::new();
        for (name, value) in &parts.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
        let body_sha256 = Sha256::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            method: parts.method.to_string(),
            version: format!("{:?}", parts.version),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
            peer: parts
                .extensions
                .get::<std::net::SocketAddr>()
                .map(ToString::to_string),
            headers,
            body_len: body.len(),
            body_sha256,
            model,
            usage: None,
        }
    }

    /// The record, noting the usage the answer reported.
    pub fn with_usage(self, usage: Option<Tokens>) -> Self {
        Self { usage, ..self }
    }
}

/// The shared, bounded request log.
#[derive(Debug, Default)]
pub struct Recorder {
    records: Mutex<VecDeque<Record>>,
}

impl Recorder {
    /// Appends a record, forgetting the oldest past the bound.
    pub fn push(&self, record: Record) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records.len() == MAX_RECORDS {
            records.pop_front();
        }
        records.push_back(record);
    }

    /// Every kept record as a JSON array, oldest first.
    pub fn to_json(&self) -> Bytes {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        serde_json::to_vec(&*records).map_or_else(|_| Bytes::from_static(b"[]"), Bytes::from)
    }

    /// Forgets every record.
    pub fn clear(&self) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
