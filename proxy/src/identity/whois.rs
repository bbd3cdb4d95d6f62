//! A Tailscale LocalAPI client for one call: `GET /localapi/v0/whois?addr=IP:PORT` over
//! tailscaled's unix socket, parsed into a [`Caller`].
//!
//! The answer is tailscale's `apitype.WhoIsResponse`, Go's default JSON encoding of
//!
//! ```text
//! WhoIsResponse { Node *tailcfg.Node; UserProfile *tailcfg.UserProfile; CapMap tailcfg.PeerCapMap }
//! Node        { ID, StableID, Name ("host.tailnet.ts.net."), User, Key, KeyExpiry, Machine,
//!               DiscoKey, Addresses, AllowedIPs, Endpoints, HomeDERP, Hostinfo, Created, Cap,
//!               Tags (omitempty), PrimaryRoutes, Online, MachineAuthorized, CapMap,
//!               ComputedName, ComputedNameWithHost, … }
//! UserProfile { ID, LoginName, DisplayName, ProfilePicURL (omitempty) }
//! PeerCapMap  map[capability name] []RawJSON   (what the tailnet policy grants the peer here)
//! ```
//!
//! Only the fields tailmeter uses are read; everything else is ignored, so new fields in later
//! tailscale versions change nothing. A 404 ("no match for IP:port") means tailscaled knows no
//! node at that address. The crate `tailscale-localapi` does the same call but does not parse
//! `CapMap`, so this client keeps its own wire types; it uses one hyper HTTP/1.1 connection per
//! lookup (lookups are rare: see the cache), bounded by a timeout and a body limit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::UnixStream;

use super::Caller;
use crate::config::Who;

/// The `Host` header tailscaled's LocalAPI expects (`apitype.LocalAPIHost`).
const LOCALAPI_HOST: &str = "local-tailscaled.sock";
/// Largest whois answer read; a real one is a few KiB.
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// Characters of an error body quoted in a message.
const MAX_QUOTED: usize = 200;

/// Why a whois lookup gave no answer. Each is "tailscaled is down" for the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhoisError {
    /// The socket could not be connected to (missing, refused, no permission).
    Unreachable(String),
    /// No complete answer within `whois_timeout`.
    Timeout(Duration),
    /// An HTTP status other than 200 or 404.
    Status(u16, String),
    /// The answer was not a usable `WhoIsResponse`.
    Malformed(String),
}

impl WhoisError {
    /// The `result` label of `tailmeter_identity_lookups_total`.
    pub fn label(&self) -> &'static str {
        match self {
            WhoisError::Timeout(_) => "timeout",
            WhoisError::Unreachable(_) => "unreachable",
            WhoisError::Status(..) | WhoisError::Malformed(_) => "error",
        }
    }
}

impl std::fmt::Display for WhoisError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WhoisError::Unreachable(e) => write!(f, "cannot connect to tailscaled: {e}"),
            WhoisError::Timeout(t) => write!(f, "tailscaled did not answer whois within {t:?}"),
            WhoisError::Status(code, body) => {
                write!(f, "tailscaled answered whois with HTTP {code}: {body}")
            }
            WhoisError::Malformed(e) => write!(f, "tailscaled's whois answer is unusable: {e}"),
        }
    }
}

/// What a whois lookup says about an address: a caller, or no node there (HTTP 404).
pub type WhoisAnswer = Result<Option<Arc<Caller>>, WhoisError>;

/// The LocalAPI client.
#[derive(Debug)]
pub struct WhoisClient {
    socket: PathBuf,
    timeout: Duration,
    capability: Option<String>,
}

impl WhoisClient {
    /// A client of the tailscaled at `socket`; `capability` is the app capability whose CapMap
    /// values grant models.
    pub fn new(socket: impl Into<PathBuf>, timeout: Duration, capability: Option<String>) -> Self {
        Self {
            socket: socket.into(),
            timeout,
            capability,
        }
    }

    /// Who is at `peer` (the TCP peer's address and source port), within the timeout.
    pub async fn whois(&self, peer: SocketAddr) -> WhoisAnswer {
        let (status, body) = tokio::time::timeout(self.timeout, self.get(peer))
            .await
            .map_err(|_| WhoisError::Timeout(self.timeout))??;
        match status {
            200 => parse(&body, self.capability.as_deref()).map(|caller| Some(Arc::new(caller))),
            404 => Ok(None),
            code => Err(WhoisError::Status(code, quote(&body))),
        }
    }

    /// One GET over a fresh connection: the status and the whole (bounded) body.
    async fn get(&self, peer: SocketAddr) -> Result<(u16, Bytes), WhoisError> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| WhoisError::Unreachable(format!("{}: {e}", self.socket.display())))?;
        let broken = |e: hyper::Error| WhoisError::Unreachable(format!("LocalAPI connection: {e}"));
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(broken)?;
        let request = http::Request::get(whois_path(peer))
            .header(http::header::HOST, LOCALAPI_HOST)
            .header(http::header::USER_AGENT, "tailmeter")
            .body(Empty::new())
            .map_err(|e| WhoisError::Malformed(e.to_string()))?;
        // The connection is driven beside the request; dropping `sender` once the body is read
        // lets it finish, so no task is spawned.
        let exchange = async move {
            let response = sender.send_request(request).await.map_err(broken)?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| WhoisError::Malformed(format!("reading the answer: {e}")))?
                .to_bytes();
            drop(sender);
            Ok((status, body))
        };
        let (answer, _closed) = tokio::join!(exchange, connection);
        answer
    }
}

/// `/localapi/v0/whois?addr=IP:PORT`, with an IPv6 address's brackets escaped.
fn whois_path(peer: SocketAddr) -> String {
    let addr = peer.to_string().replace('[', "%5B").replace(']', "%5D");
    format!("/localapi/v0/whois?addr={addr}")
}

fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// `apitype.WhoIsResponse`, the parts tailmeter reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WhoIsResponse {
    node: Option<Node>,
    user_profile: Option<UserProfile>,
    #[serde(default)]
    cap_map: Option<HashMap<String, Option<Vec<Value>>>>,
}

/// `tailcfg.Node`, the parts tailmeter reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Node {
    #[serde(rename = "StableID", default)]
    stable_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    computed_name: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// `tailcfg.UserProfile`, the parts tailmeter reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserProfile {
    #[serde(default)]
    login_name: String,
    #[serde(default)]
    display_name: String,
}

/// One value of the tailmeter capability in the tailnet policy: `{"models": ["openai/*"]}`.
#[derive(Debug, Deserialize)]
struct CapValue {
    #[serde(default)]
    models: Vec<String>,
}

/// The caller a 200 answer describes: its tags sorted and joined when tagged, else its login.
pub(super) fn parse(body: &[u8], capability: Option<&str>) -> Result<Caller, WhoisError> {
    let answer: WhoIsResponse =
        serde_json::from_slice(body).map_err(|e| WhoisError::Malformed(e.to_string()))?;
    let node = answer
        .node
        .ok_or_else(|| WhoisError::Malformed("no Node".to_owned()))?;
    let profile = answer.user_profile;
    let mut tags = node.tags.unwrap_or_default();
    tags.retain(|tag| !tag.is_empty());
    tags.sort();
    tags.dedup();
    let who = if tags.is_empty() {
        match profile.as_ref().map(|p| p.login_name.trim()) {
            Some(login) if !login.is_empty() => Who::Login(login.to_owned()),
            _ => {
                return Err(WhoisError::Malformed(
                    "the node has no tags and no UserProfile.LoginName".to_owned(),
                ))
            }
        }
    } else {
        Who::Tags(tags)
    };
    let node_name = if node.computed_name.is_empty() {
        node.name.trim_end_matches('.').to_owned()
    } else {
        node.computed_name
    };
    let mut caller = Caller::from_who(&who, non_empty(node_name));
    caller.node_id = non_empty(node.stable_id);
    caller.display_name = profile
        .filter(|_| caller.tags.is_empty())
        .and_then(|p| non_empty(p.display_name));
    caller.capability_models = capability
        .and_then(|cap| answer.cap_map.and_then(|mut map| map.remove(cap)))
        .flatten()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|value| match serde_json::from_value::<CapValue>(value) {
            Ok(cap) => Some(cap.models),
            Err(e) => {
                tracing::debug!(error = %e, "ignoring a malformed tailmeter capability value");
                None
            }
        })
        .flatten()
        .filter(|pattern| !pattern.is_empty())
        .collect();
    Ok(caller)
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}
