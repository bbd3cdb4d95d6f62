//! The admin listener (`server.admin_listen`): `/metrics` for Prometheus, `/healthz` (the
//! process is up) and `/readyz` (it accepts traffic; 503 while draining for shutdown). It is a
//! separate listener, so nothing of it is reachable through the API port.

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::gateway::SharedGateway;

/// The admin HTTP app.
pub struct AdminApp {
    gateway: SharedGateway,
}

impl AdminApp {
    /// The admin app over shared gateway state (the current generation at each request).
    pub fn new(gateway: SharedGateway) -> Self {
        Self { gateway }
    }
}

fn respond(status: u16, content_type: &str, body: Vec<u8>) -> http::Response<Vec<u8>> {
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    let len = response.body().len();
    response
        .headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    response
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let req = session.req_header();
        if req.method != http::Method::GET {
            return respond(
                405,
                "text/plain",
                b"admin endpoints are GET only\n".to_vec(),
            );
        }
        match req.uri.path() {
            "/metrics" => {
                // Idle budgets roll over to their new window before the gauges are read.
                self.gateway
                    .load()
                    .budgets
                    .refresh(crate::budgets::now_ms());
                respond(
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    self.gateway.load().metrics.render(),
                )
            }
            "/healthz" => respond(200, "text/plain", b"ok\n".to_vec()),
            "/readyz" if self.gateway.load().is_draining() => {
                respond(503, "text/plain", b"draining\n".to_vec())
            }
            "/readyz" => respond(200, "text/plain", b"ready\n".to_vec()),
            _ => respond(
                404,
                "text/plain",
                b"not found: the admin listener serves /metrics, /healthz and /readyz\n".to_vec(),
            ),
        }
    }
}
