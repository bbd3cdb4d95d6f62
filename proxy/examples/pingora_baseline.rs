//! The benchmark's Pingora baseline: a proxy on the same Pingora build as tailmeter that only
//! forwards every request to one upstream, with no identity, routing, usage parsing, metrics or
//! sink. tests/bench runs it beside tailmeter so the results show what the framework itself
//! costs on a machine and what tailmeter's metering adds on top. It keeps Pingora's default
//! runtime (work stealing), where tailmeter runs one runtime per thread (`tailmeter::home`), so
//! it is also the stock framework that change is measured against.
//!
//! `pingora_baseline LISTEN UPSTREAM THREADS`, for example
//! `pingora_baseline 127.0.0.1:8080 127.0.0.1:9000 2`.

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::prelude::{http_proxy_service, HttpPeer, ProxyHttp, Result, Server, Session};
use pingora::server::configuration::ServerConf;

/// Forwards to one plain-HTTP upstream, its address read once (as tailmeter resolves a
/// provider's once per 30 s, not per request).
struct Forward {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Forward {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, threads] = args.as_slice() else {
        eprintln!("usage: pingora_baseline LISTEN UPSTREAM THREADS");
        std::process::exit(2);
    };
    let Ok(upstream) = upstream.parse::<SocketAddr>() else {
        eprintln!("UPSTREAM must be an address such as 127.0.0.1:9000, not {upstream:?}");
        std::process::exit(2);
    };
    let Ok(threads) = threads.parse::<usize>() else {
        eprintln!("THREADS must be a number, not {threads:?}");
        std::process::exit(2);
    };
    let conf = ServerConf {
        threads: threads.max(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Forward { upstream });
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever();
}
