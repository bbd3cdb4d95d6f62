//! `bench-upstream`: the upstream of tailmeter's benchmark (tests/bench/run).
//!
//! It answers the OpenAI chat and Anthropic messages routes from bodies loaded once at start and
//! parses nothing: whether a request streams is a byte search for `"stream":true` in its body,
//! done frame by frame as the body arrives. That keeps its own ceiling far above the proxies the
//! benchmark measures (the provider simulator parses and hashes every request, which a 1 MiB
//! body makes expensive). Streams are written one event per frame; a request whose body names
//! a model ending in `-slow` gets one event every `--drip-ms` (the slow-stream memory test and
//! time to first token).
//!
//! ```text
//! bench-upstream --listen 127.0.0.1:0 --bodies DIR [--drip-ms 100] [--threads N]
//! ```
//!
//! `DIR` holds `chat.json`, `chat_stream.sse`, `messages.json` and `messages_stream.sse`. After
//! binding it prints `listening on ADDR`; SIGTERM or SIGINT ends it.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use memchr::memmem;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::{sleep, Sleep};

/// What a request body is searched for; each shorter than [`OVERLAP`].
const STREAM_MARKS: [&[u8]; 2] = [b"\"stream\":true", b"\"stream\": true"];
/// Marks a request whose stream is dripped.
const SLOW_MARK: &[u8] = b"-slow\"";
/// Bytes of the previous frame kept so a mark split across frames is still found.
const OVERLAP: usize = 32;

/// Command line.
struct Args {
    listen: SocketAddr,
    bodies: String,
    drip: Duration,
    threads: usize,
}

/// One prepared answer: its pieces (one per SSE event, or the whole JSON) and content type.
struct Answer {
    pieces: Arc<[Bytes]>,
    content_type: &'static str,
    stream: bool,
}

/// Every answer, loaded at start.
struct Bodies {
    chat_json: Answer,
    chat_stream: Answer,
    messages_json: Answer,
    messages_stream: Answer,
    drip: Duration,
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        runtime.block_on(run(args))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench-upstream: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut bodies = None;
    let mut drip = Duration::from_millis(100);
    let mut threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: {value:?}"))
        };
        match flag.as_str() {
            "--listen" => listen = Some(value.parse().map_err(|_| format!("--listen {value:?}"))?),
            "--bodies" => bodies = Some(value.clone()),
            "--drip-ms" => drip = Duration::from_millis(number()?),
            "--threads" => threads = usize::try_from(number()?.max(1)).unwrap_or(1),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("--listen is required")?,
        bodies: bodies.ok_or("--bodies is required")?,
        drip,
        threads,
    })
}

async fn run(args: Args) -> Result<(), String> {
    let dir = Path::new(&args.bodies);
    let bodies = Arc::new(Bodies {
        chat_json: Answer::json(read(dir, "chat.json")?),
        chat_stream: Answer::sse(&read(dir, "chat_stream.sse")?),
        messages_json: Answer::json(read(dir, "messages.json")?),
        messages_stream: Answer::sse(&read(dir, "messages_stream.sse")?),
        drip: args.drip,
    });
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {local}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("stdout: {e}"))?;
    drop(stdout);
    loop {
        tokio::select! {
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let bodies = Arc::clone(&bodies);
                    tokio::spawn(async move {
                        let service = service_fn(move |request| handle(Arc::clone(&bodies), request));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(error) => {
                    eprintln!("bench-upstream: accept: {error}");
                    sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}

fn read(dir: &Path, name: &str) -> Result<Bytes, String> {
    let path = dir.join(name);
    std::fs::read(&path)
        .map(Bytes::from)
        .map_err(|e| format!("{}: {e}", path.display()))
}

impl Answer {
    fn json(body: Bytes) -> Self {
        Self {
            pieces: Arc::from(vec![body]),
            content_type: "application/json",
            stream: false,
        }
    }

    /// An event stream split after each blank line, one piece per event.
    fn sse(body: &Bytes) -> Self {
        let mut pieces = Vec::new();
        let mut start = 0;
        for end in memmem::find_iter(body, b"\n\n") {
            pieces.push(body.slice(start..end + 2));
            start = end + 2;
        }
        if start < body.len() {
            pieces.push(body.slice(start..));
        }
        Self {
            pieces: Arc::from(pieces),
            content_type: "text/event-stream; charset=utf-8",
            stream: true,
        }
    }
}

/// What the request body said, found by byte search.
#[derive(Default)]
struct Marks {
    stream: bool,
    slow: bool,
}

impl Marks {
    fn scan(&mut self, bytes: &[u8]) {
        self.stream |= STREAM_MARKS
            .iter()
            .any(|mark| memmem::find(bytes, mark).is_some());
        self.slow |= memmem::find(bytes, SLOW_MARK).is_some();
    }
}

/// Reads the request body frame by frame, searching it without copying it.
async fn scan_body(mut body: Incoming) -> Result<Marks, hyper::Error> {
    let mut marks = Marks::default();
    let mut seam: Vec<u8> = Vec::with_capacity(2 * OVERLAP);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        seam.extend_from_slice(&data[..data.len().min(OVERLAP)]);
        marks.scan(&seam);
        marks.scan(&data);
        seam.clear();
        seam.extend_from_slice(&data[data.len().saturating_sub(OVERLAP)..]);
    }
    Ok(marks)
}

async fn handle(
    bodies: Arc<Bodies>,
    request: Request<Incoming>,
) -> Result<Response<Reply>, Infallible> {
    let (parts, body) = request.into_parts();
    // Clients differ in the prefix they put before the route (LiteLLM's `api_base`).
    let chat = parts.uri.path().ends_with("/chat/completions");
    let messages = parts.uri.path().ends_with("/messages");
    if parts.method != Method::POST || !(chat || messages) {
        return Ok(status(StatusCode::NOT_FOUND, "no such route\n"));
    }
    let Ok(marks) = scan_body(body).await else {
        return Ok(status(StatusCode::BAD_REQUEST, "unreadable body\n"));
    };
    let answer = match (chat, marks.stream) {
        (true, true) => &bodies.chat_stream,
        (true, false) => &bodies.chat_json,
        (false, true) => &bodies.messages_stream,
        (false, false) => &bodies.messages_json,
    };
    let delay = if marks.slow && answer.stream {
        bodies.drip
    } else {
        Duration::ZERO
    };
    let mut response = Response::new(Reply::new(Arc::clone(&answer.pieces), answer.stream, delay));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
    Ok(response)
}

fn status(code: StatusCode, text: &'static str) -> Response<Reply> {
    let mut response = Response::new(Reply::new(
        Arc::from(vec![Bytes::from_static(text.as_bytes())]),
        false,
        Duration::ZERO,
    ));
    *response.status_mut() = code;
    response
}

/// A response body: the pieces in order, `delay` apart; chunked when `stream`.
struct Reply {
    pieces: Arc<[Bytes]>,
    next: usize,
    length: Option<u64>,
    delay: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Reply {
    fn new(pieces: Arc<[Bytes]>, stream: bool, delay: Duration) -> Self {
        let length = (!stream).then(|| pieces.iter().map(|p| p.len() as u64).sum());
        Self {
            pieces,
            next: 0,
            length,
            delay,
            timer: None,
        }
    }
}

impl Body for Reply {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(timer) = this.timer.as_mut() {
            ready!(timer.as_mut().poll(cx));
            this.timer = None;
        }
        let Some(piece) = this.pieces.get(this.next).cloned() else {
            return Poll::Ready(None);
        };
        this.next += 1;
        if this.next < this.pieces.len() && !this.delay.is_zero() {
            this.timer = Some(Box::pin(sleep(this.delay)));
        }
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.pieces.len()
    }

    fn size_hint(&self) -> SizeHint {
        self.length
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}
