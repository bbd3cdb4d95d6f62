//! `provider-sim`: a stand-in for the LLM providers on loopback, for
//! tailmeter's tests and README demo. It replays real recorded provider
//! responses from a fixtures directory, checks the provider credentials the
//! proxy must inject, records every request it receives, and fails on demand
//! through the `x-sim-fault` header. See README.md beside this file.

#![forbid(unsafe_code)]

mod anthropic;
mod bedrock;
mod deliver;
mod dialect;
mod faults;
mod fixtures;
mod form;
mod goaway;
mod openai;
mod realtime;
mod record;
mod routes;
mod service;
mod sse;
mod synth;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};

use crate::dialect::Keys;
use crate::fixtures::Fixtures;
use crate::goaway::{Ending, FrameWatch};
use crate::record::Recorder;
use crate::service::State;
use crate::synth::Synth;

/// Command line of `provider-sim`.
#[derive(Debug, Parser)]
#[command(about = "Simulated OpenAI, Anthropic and Gemini APIs replaying recorded responses")]
struct Args {
    /// Address to listen on; port 0 lets the OS choose.
    #[arg(long)]
    listen: SocketAddr,
    /// Directory holding the recorded fixtures.
    #[arg(long)]
    fixtures: PathBuf,
    /// Key OpenAI routes require as `Authorization: Bearer`.
    #[arg(long)]
    openai_key: String,
    /// Key Anthropic routes require as `x-api-key`.
    #[arg(long)]
    anthropic_key: String,
    /// Key Gemini routes require as `x-goog-api-key` or `?key=`.
    #[arg(long)]
    gemini_key: Option<String>,
    /// Key Bedrock routes require as `Authorization: Bearer` (a Bedrock API key).
    #[arg(long)]
    bedrock_key: Option<String>,
    /// Answer every request not pinned by `x-sim-fixture` with a response
    /// synthesized for it (OpenAI, Anthropic, Gemini and Bedrock InvokeModel
    /// routes) instead of a recording.
    #[arg(long)]
    synthesize: bool,
    /// Also speak HTTP/2 without TLS (prior knowledge, "h2c") on the same port.
    #[arg(long)]
    http2: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("provider-sim: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until SIGTERM or SIGINT.
async fn run(args: Args) -> Result<(), String> {
    let state = Arc::new(State {
        fixtures: Fixtures::load(&args.fixtures)?,
        keys: Keys {
            openai: args.openai_key,
            anthropic: args.anthropic_key,
            gemini: args.gemini_key,
            bedrock: args.bedrock_key,
        },
        recorder: Recorder::default(),
        synth: args.synthesize.then(Synth::default),
        once_seen: Mutex::default(),
    });
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // Handlers go in before the port is announced, so a test that signals
    // right after reading the line never meets the default (killing) action.
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
                Ok((stream, _)) => serve_connection(stream, Arc::clone(&state), args.http2),
                Err(error) => {
                    eprintln!("provider-sim: accept: {error}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}

/// Serves one connection (HTTP/1.1 with keep-alive, or HTTP/2 when `http2`)
/// on its own task. A request with the `goaway` fault ends the connection
/// gracefully: GOAWAY on HTTP/2 (streams in flight go on), no keep-alive on
/// HTTP/1.1; `close-after-ms` closes it. On HTTP/2 the socket is watched for the
/// `goaway-error` fault.
fn serve_connection(stream: TcpStream, state: Arc<State>, http2: bool) {
    // Each request carries its connection's peer address, so the log shows connection reuse.
    let peer = stream.peer_addr().ok();
    let ending = Arc::new(Ending::default());
    if http2 {
        let watched = FrameWatch::new(stream, Arc::clone(&ending));
        tokio::spawn(serve(watched, peer, state, ending, true));
    } else {
        tokio::spawn(serve(stream, peer, state, ending, false));
    }
}

/// [`serve_connection`]'s task.
async fn serve<S>(
    stream: S,
    peer: Option<SocketAddr>,
    state: Arc<State>,
    ending: Arc<Ending>,
    http2: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let asked = Arc::clone(&ending);
    let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        if let Some(peer) = peer {
            request.extensions_mut().insert(peer);
        }
        service::handle(Arc::clone(&state), Arc::clone(&asked), request)
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    if !http2 {
        builder = builder.http1_only();
    }
    // Realtime sessions are WebSocket upgrades.
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    // Faults drop connections on purpose and clients hang up mid-stream:
    // a connection ending in error is expected, so it is not reported.
    // Returning drops the connection, which closes its socket (the `close-after-ms` fault).
    tokio::select! {
        _ = connection.as_mut() => return,
        () = ending.close.notified() => return,
        () = ending.graceful.notified() => connection.as_mut().graceful_shutdown(),
    }
    tokio::select! {
        _ = connection => {}
        () = ending.close.notified() => {}
    }
}
