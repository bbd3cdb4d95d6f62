//! `otlp-receiver`: a minimal OpenTelemetry collector for tailmeter's trace tests, built on the
//! official OTLP protobuf definitions (`opentelemetry-proto`). It accepts
//! `TraceService/Export` over gRPC and `POST /v1/traces` (protobuf) over HTTP, and appends every
//! span it receives as one JSON line to `--out`, with its transport, ids in lowercase hex,
//! timing, status, and attributes (resource attributes under `resource`).
//!
//! After binding it prints exactly one line, `listening grpc=127.0.0.1:P http=127.0.0.1:Q`.
//! SIGTERM or SIGINT makes it exit 0.

#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use prost::Message;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

/// Command line of `otlp-receiver`.
#[derive(Debug, Parser)]
struct Args {
    /// File the received spans are appended to, one JSON object per line.
    #[arg(long)]
    out: PathBuf,
}

/// Where spans are written.
#[derive(Clone)]
struct Sink(Arc<Mutex<File>>);

impl Sink {
    fn write(&self, transport: &str, request: &ExportTraceServiceRequest) {
        let mut lines = String::new();
        for resource_spans in &request.resource_spans {
            let resource = resource_spans
                .resource
                .as_ref()
                .map_or_else(Map::new, |r| attributes(&r.attributes));
            for scope_spans in &resource_spans.scope_spans {
                for span in &scope_spans.spans {
                    let line = json!({
                        "transport": transport,
                        "trace_id": hex(&span.trace_id),
                        "span_id": hex(&span.span_id),
                        "parent_span_id": hex(&span.parent_span_id),
                        "name": span.name,
                        "kind": span.kind,
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "status_code": span.status.as_ref().map_or(0, |s| s.code),
                        "scope": scope_spans.scope.as_ref().map_or("", |s| s.name.as_str()),
                        "attributes": attributes(&span.attributes),
                        "resource": resource,
                    });
                    lines.push_str(&line.to_string());
                    lines.push('\n');
                }
            }
        }
        let mut file = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(lines.as_bytes()).and_then(|()| file.flush()) {
            eprintln!("otlp-receiver: cannot write spans: {e}");
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(kvs: &[KeyValue]) -> Map<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, any)))
        .collect()
}

fn any(value: &AnyValue) -> Value {
    match &value.value {
        Some(Any::StringValue(s)) => json!(s),
        Some(Any::BoolValue(b)) => json!(b),
        Some(Any::IntValue(i)) => json!(i),
        Some(Any::DoubleValue(d)) => json!(d),
        Some(Any::ArrayValue(a)) => Value::Array(a.values.iter().map(any).collect()),
        Some(Any::KvlistValue(l)) => Value::Object(attributes(&l.values)),
        Some(Any::BytesValue(b)) => json!(hex(b)),
        Some(Any::StringValueStrindex(_)) | None => Value::Null,
    }
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.write("grpc", request.get_ref());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// `POST /v1/traces` with a protobuf body.
async fn http_export(
    sink: Sink,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let reply = |status: u16, body: Vec<u8>| {
        let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/x-protobuf"),
        );
        response
    };
    if request.method() != hyper::Method::POST || request.uri().path() != "/v1/traces" {
        return Ok(reply(404, Vec::new()));
    }
    let body = request.into_body().collect().await?.to_bytes();
    Ok(match ExportTraceServiceRequest::decode(body) {
        Ok(export) => {
            sink.write("http", &export);
            reply(
                200,
                ExportTraceServiceResponse {
                    partial_success: None,
                }
                .encode_to_vec(),
            )
        }
        Err(e) => reply(400, e.to_string().into_bytes()),
    })
}

async fn serve_http(listener: TcpListener, sink: Sink) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let sink = sink.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| http_export(sink.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)?;
    let sink = Sink(Arc::new(Mutex::new(file)));
    let grpc = TcpListener::bind("127.0.0.1:0").await?;
    let http = TcpListener::bind("127.0.0.1:0").await?;
    println!(
        "listening grpc={} http={}",
        grpc.local_addr()?,
        http.local_addr()?
    );
    std::io::stdout().flush()?;
    let grpc_server = tonic::transport::Server::builder().serve_with_incoming(
        TraceServiceServer::new(sink.clone()),
        tonic::transport::server::TcpIncoming::from(grpc),
    );
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        result = grpc_server => {
            if let Err(e) = result {
                eprintln!("otlp-receiver: gRPC server failed: {e}");
            }
        }
        () = serve_http(http, sink) => {}
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
