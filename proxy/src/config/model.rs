//! The validated configuration: the types the rest of tailmeter reads.
//!
//! Everything here has already been through `${VAR}` substitution and
//! validation, so consumers never re-check it. Secrets (`api_key`,
//! `password`) are kept out of `Debug` by hand-written impls, so a config
//! that reaches a log line cannot leak them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Stand-in printed wherever a secret would otherwise appear.
const REDACTED: &str = "<redacted>";

/// The whole configuration file, resolved and validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// `[server]`: listeners and process limits.
    pub server: Server,
    /// `[identity]`: how callers are identified.
    pub identity: Identity,
    /// `[[providers]]`, in file order (the first one offering a bare model name wins).
    pub providers: Vec<Provider>,
    /// `[[grants]]`; empty means every caller may use every model.
    pub grants: Vec<Grant>,
    /// `[[budgets]]`.
    pub budgets: Vec<Budget>,
    /// `[prices.MODEL]`, keyed by model name as listed in a provider's `models`.
    pub prices: BTreeMap<String, Price>,
    /// `[metrics]`.
    pub metrics: Metrics,
    /// `[clickhouse]`; `None` sends events to the embedded sink.
    pub clickhouse: Option<ClickHouse>,
    /// `[otlp]`; `None` exports no traces.
    pub otlp: Option<Otlp>,
    /// `[events]`: the embedded sink.
    pub events: Events,
    /// `[log]`.
    pub log: Log,
}

/// `[server]`: where tailmeter listens and how the process is sized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// The LLM API clients point at (`listen`).
    pub listen: SocketAddr,
    /// `/metrics`, `/healthz`, `/readyz` (`admin_listen`).
    pub admin_listen: SocketAddr,
    /// Largest request body accepted, in bytes (`max_request_body`).
    pub max_request_body: u64,
    /// How long in-flight streams may finish after SIGTERM (`shutdown_grace`).
    pub shutdown_grace: Duration,
    /// Worker threads (`threads`); defaults to the number of CPUs.
    pub threads: usize,
    /// Longest a client may take to send its whole request body (`client_body_timeout`,
    /// default 60s); past it the request is refused with 408 (a slowloris body).
    pub client_body_timeout: Duration,
    /// Longest a client may take to send a whole request header (`client_header_timeout`,
    /// default 30s; from accept for a connection's first request, from its first byte for a
    /// later one); past it the connection gets 408 and is closed (a slowloris header).
    pub client_header_timeout: Duration,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            admin_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9090)),
            max_request_body: 32 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(30),
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            client_body_timeout: Duration::from_secs(60),
            client_header_timeout: Duration::from_secs(30),
        }
    }
}

/// `[identity]`: how a caller's identity is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// tailscaled LocalAPI socket; empty turns whois off.
    pub tailscale_socket: String,
    /// Honour `Tailscale-User-Login` from loopback peers.
    pub trust_serve_headers: bool,
    /// What an unidentified caller gets.
    pub unknown: UnknownPolicy,
    /// `[[identity.static]]`: fixed identities by source address, consulted before whois.
    pub static_: Vec<StaticIdentity>,
    /// App capability whose CapMap values (`{"models": [...]}`) grant models (`capability`);
    /// `None` takes grants from `[[grants]]` only.
    pub capability: Option<String>,
    /// Longest wait for one whois answer (`whois_timeout`).
    pub whois_timeout: Duration,
    /// How long a whois answer is reused for the same address (`cache_ttl`).
    pub cache_ttl: Duration,
    /// How long "no such node" or a failed lookup is reused (`negative_cache_ttl`).
    pub negative_cache_ttl: Duration,
    /// What happens when tailscaled cannot answer (`on_tailscaled_down`).
    pub on_tailscaled_down: TailscaledDown,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            tailscale_socket: "/var/run/tailscale/tailscaled.sock".to_owned(),
            trust_serve_headers: false,
            unknown: UnknownPolicy::Reject,
            static_: Vec::new(),
            capability: None,
            whois_timeout: Duration::from_secs(1),
            cache_ttl: Duration::from_secs(60),
            negative_cache_ttl: Duration::from_secs(5),
            on_tailscaled_down: TailscaledDown::Reject,
        }
    }
}

/// What a caller gets when tailscaled is down, stalled or answers nonsense (`on_tailscaled_down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailscaledDown {
    /// Fail closed: answer 503 (`"reject"`, the default).
    Reject,
    /// Treat the caller as unidentified, so `unknown` decides (`"fallback"`).
    Fallback,
}

/// What an unidentified caller gets (`unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownPolicy {
    /// Answer 403 (`"reject"`).
    Reject,
    /// Proceed as identity `anonymous` (`"anonymous"`).
    Anonymous,
}

/// One `[[identity.static]]` entry: a source range mapped to an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticIdentity {
    /// Source addresses this entry covers (a bare address means /32 or /128).
    pub cidr: ipnet::IpNet,
    /// Who those addresses are.
    pub who: Who,
}

/// A static identity: a user, or a tagged node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A user's login name (`login`).
    Login(String),
    /// A tagged node's tags (`tags`), each starting with `tag:`, sorted and deduplicated.
    Tags(Vec<String>),
}

/// One `[[providers]]` entry: an upstream and the models it serves.
#[derive(Clone, PartialEq, Eq)]
pub struct Provider {
    /// Unique name, used in `provider/model` and in labels.
    pub name: String,
    /// Which API dialect it speaks.
    pub kind: ProviderKind,
    /// Where to send requests.
    pub base_url: BaseUrl,
    /// The provider's key, injected upstream; never printed.
    pub api_key: String,
    /// Exact model names it serves, in file order, without duplicates.
    pub models: Vec<String>,
    /// Longest wait for the next bytes of a response (`idle_timeout`, default 300s): past it
    /// the response is cut and its usage estimated.
    pub idle_timeout: Duration,
    /// Longest wait for the provider's address (when none is cached) and for the TCP (and TLS)
    /// connection to it (`connect_timeout`, default 10s): past it the request fails with 504.
    pub connect_timeout: Duration,
    /// Longest wait for the response header once the request was sent (`first_byte_timeout`,
    /// default: the provider's `idle_timeout`): past it the request fails with 504.
    pub first_byte_timeout: Duration,
    /// Speak HTTP/2 to the provider (`http2`, default false): offered by ALPN beside HTTP/1.1
    /// over TLS; to an `http://` base URL, HTTP/2 without TLS by prior knowledge (h2c).
    pub http2: bool,
}

impl Provider {
    /// `idle_timeout` when the file does not set it: long enough for a model that thinks for
    /// minutes before its first byte.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

    /// `connect_timeout` when the file does not set it.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &REDACTED)
            .field("models", &self.models)
            .field("idle_timeout", &self.idle_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("first_byte_timeout", &self.first_byte_timeout)
            .field("http2", &self.http2)
            .finish()
    }
}

/// A provider's API dialect (`kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// `"openai"`
    OpenAi,
    /// `"anthropic"`
    Anthropic,
    /// `"gemini"`
    Gemini,
    /// `"bedrock"`
    Bedrock,
    /// `"openai-compatible"`
    OpenAiCompatible,
}

impl ProviderKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [ProviderKind; 5] = [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::Bedrock,
        ProviderKind::OpenAiCompatible,
    ];

    /// The name used in the config file.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::OpenAiCompatible => "openai-compatible",
        }
    }
}

/// A parsed `base_url`: http or https, a host, a port, and a path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// `https` (true) or `http` (false).
    pub tls: bool,
    /// Host name (lowercased) or IP address; IPv6 without brackets.
    pub host: String,
    /// Port, defaulted to 443/80 from the scheme.
    pub port: u16,
    /// Path prefix without a trailing `/`; `""` when none.
    pub path_prefix: String,
}

impl BaseUrl {
    /// `host`, or `host:port` when the port is not the scheme's default (IPv6 in brackets).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.path_prefix)
    }
}

/// One `[[grants]]` entry: who may use which models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Identities, tags, or `*`.
    pub src: Vec<String>,
    /// Globs over `provider/model` (`*` wildcard), or `*` alone.
    pub models: Vec<String>,
}

/// One `[[budgets]]` entry: a token allowance over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Unique name, used in labels.
    pub name: String,
    /// Whose usage counts against it.
    pub subject: BudgetSubject,
    /// Input + output tokens allowed per window (> 0).
    pub tokens: u64,
    /// Window length (> 0).
    pub window: Duration,
    /// What happens once it is used up.
    pub on_exceed: OnExceed,
}

/// Whose usage a budget counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetSubject {
    /// Every caller carrying this tag (`tag = "tag:…"`).
    Tag(String),
    /// One identity (`identity = "…"`).
    Identity(String),
}

/// What a budget does once exhausted (`on_exceed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExceed {
    /// Keep serving; the gauges show it (`"alert"`, the default).
    Alert,
    /// Answer 429 until the window frees tokens (`"reject"`).
    Reject,
}

/// `[prices.MODEL]`: USD per million tokens, and for the image and audio models billed
/// otherwise, per minute, character or image ([`MediaPrice`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    /// Uncached input.
    pub input: f64,
    /// Output, reasoning included.
    pub output: f64,
    /// Cache reads; `None` falls back to `input`.
    pub cache_read: Option<f64>,
    /// Cache writes; `None` falls back to `input`.
    pub cache_write: Option<f64>,
    /// Uncached audio input tokens; `None` falls back to `input`.
    pub audio_input: Option<f64>,
    /// Uncached image input tokens; `None` falls back to `input`.
    pub image_input: Option<f64>,
    /// Audio output tokens; `None` falls back to `output`.
    pub audio_output: Option<f64>,
    /// Image output tokens (Gemini's image models); `None` falls back to `output`.
    pub image_output: Option<f64>,
    /// Cache writes kept an hour (Anthropic's 1h TTL); `None` falls back to `cache_write`.
    pub cache_write_1h: Option<f64>,
    /// What is billed other than tokens.
    pub media: MediaPrice,
}

#[cfg(test)]
impl Price {
    /// `input` and `output` alone: no cache, part or per-unit price of its own.
    pub fn tokens(input: f64, output: f64) -> Price {
        Price {
            input,
            output,
            cache_read: None,
            cache_write: None,
            audio_input: None,
            image_input: None,
            audio_output: None,
            image_output: None,
            cache_write_1h: None,
            media: MediaPrice::default(),
        }
    }
}

/// The prices of `[prices.MODEL]` for what image and audio models bill other than tokens, as
/// OpenAI lists them: added to the model's token cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaPrice {
    /// USD per minute of audio a transcription or translation reports (`audio_minute`,
    /// `whisper-1`).
    pub audio_minute: Option<f64>,
    /// USD per million characters of text to speak (`characters`, `tts-1`).
    pub characters: Option<f64>,
    /// USD per image made, when `images` has no price for the request's size and quality
    /// (`image`, DALL·E).
    pub image: Option<f64>,
    /// USD per image by what the request asks for: `"QUALITY SIZE"`, `"SIZE"` or `"QUALITY"`
    /// (`images`, e.g. `"hd 1024x1792" = 0.12`), tried in that order before `image`.
    pub images: BTreeMap<String, f64>,
}

impl MediaPrice {
    /// Whether anything is priced.
    pub fn is_set(&self) -> bool {
        self.audio_minute.is_some()
            || self.characters.is_some()
            || self.image.is_some()
            || !self.images.is_empty()
    }
}

/// `[metrics]`: bounds on label sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    /// Distinct identities labelled before the rest count as `__other__`.
    pub max_identities: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            max_identities: 1000,
        }
    }
}

/// `[clickhouse]`: the usage-event sink.
#[derive(Clone, PartialEq, Eq)]
pub struct ClickHouse {
    /// HTTP interface URL (no credentials: those go in `user`/`password`).
    pub url: String,
    /// Database holding the `requests` table.
    pub database: String,
    /// User, when not the server default.
    pub user: Option<String>,
    /// Password; never printed.
    pub password: Option<String>,
    /// Rows older than this expire (`ttl`, whole days; modern servers only); `None` keeps them.
    pub ttl: Option<Duration>,
}

impl fmt::Debug for ClickHouse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouse")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// `[otlp]`: where traces go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Otlp {
    /// Collector URL (`endpoint`): the gRPC address, or the HTTP base URL.
    pub endpoint: String,
    /// `protocol`: `"grpc"` (the default) or `"http"` (OTLP/HTTP with protobuf).
    pub protocol: OtlpProtocol,
}

/// How spans travel to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP, protobuf bodies.
    Http,
}

/// `[events]`: the usage-row pipeline and the embedded default sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Events {
    /// Directory the embedded sink's JSON-lines files go to (`dir`).
    pub dir: PathBuf,
    /// Whether rows are written at all (`enabled`); off leaves metrics only.
    pub enabled: bool,
    /// Rows per batch (`batch_rows`). The default, 10,000, with `batch_interval`'s 1 s, keeps
    /// ClickHouse at about one insert a second up to 10,000 requests a second, as ClickHouse
    /// asks of synchronous inserts: each insert is a part to merge, and with 1,000-row batches
    /// the server spent two to three times the CPU per row (tests/bench/RESULTS.md, item 34).
    pub batch_rows: usize,
    /// Longest a row waits for its batch (`batch_interval`).
    pub batch_interval: Duration,
    /// The journal of undelivered rows (`spool_dir`, default `DIR/spool`): the pipeline's queue.
    pub spool_dir: PathBuf,
    /// The spool's disk limit (`spool_max_bytes`); past it rows are dropped, loudly.
    pub spool_max_bytes: u64,
    /// The embedded sink starts a new file past this size (`rotate_size`), and every UTC day.
    pub rotate_size: u64,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            dir: PathBuf::from("./tailmeter-data"),
            enabled: true,
            batch_rows: 10_000,
            batch_interval: Duration::from_secs(1),
            spool_dir: PathBuf::from("./tailmeter-data/spool"),
            spool_max_bytes: 1 << 30,
            rotate_size: 100 << 20,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Log {
    /// Filter directive such as `info`; `RUST_LOG` wins when set.
    pub level: Option<String>,
}
