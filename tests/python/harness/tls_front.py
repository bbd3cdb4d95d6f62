"""A provider's HTTPS edge on loopback, for the path every real provider takes: nginx (Debian's
package) terminating TLS in front of the simulator, HTTP/2 or HTTP/1.1 as ALPN settles, with a
certificate for `localhost` issued by a private CA made for the test (tailmeter trusts it through
`SSL_CERT_FILE`, as an operator trusts a private CA). Its access log records, per request, the
TLS connection it came on, the SNI name, the protocol and the credential it carried, so a test
sees what tailmeter did on the wire.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .procs import Process, free_port, ipv6_loopback

# `localhost` may resolve to [::1] first: the edge listens there too when it can.
HOST = "localhost"

NGINX_CONF = """
daemon off;
master_process on;
user root;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format edge escape=json '{{"connection": $connection, "requests": $connection_requests, '
        '"sni": "$ssl_server_name", "protocol": "$server_protocol", "uri": "$request_uri", '
        '"status": $status, "authorization": "$http_authorization", "x_api_key": "$http_x_api_key"}}';
    access_log {dir}/access.log edge;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
{listen}
        ssl_certificate {dir}/server.pem;
        ssl_certificate_key {dir}/server.key;
        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""


@dataclass
class TlsFront:
    """The running edge: `https://localhost:{port}`, the CA bundle that trusts it, its log."""

    port: int
    ca_bundle: Path
    access_log: Path

    @property
    def base_url(self) -> str:
        return f"https://{HOST}:{self.port}"

    def requests(self) -> list[dict]:
        """Every request the edge has logged, oldest first."""
        if not self.access_log.exists():
            return []
        return [json.loads(line) for line in self.access_log.read_text().splitlines()]


def available() -> str | None:
    """Why the edge cannot run here, or None when it can."""
    for tool in ("nginx", "openssl"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} is missing (.ci/run installs it)"
    return None


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def issue_certificate(workdir: Path) -> Path:
    """A private CA (`ca.pem`, returned) and a server certificate it signed for `localhost` and
    127.0.0.1 (`server.pem`, `server.key`), in `workdir`."""
    ca_key, ca = workdir / "ca.key", workdir / "ca.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=tailmeter e2e CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", str(ca_key), "-out", str(ca))
    csr = workdir / "server.csr"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={HOST}",
             "-keyout", str(workdir / "server.key"), "-out", str(csr))
    extensions = workdir / "server.ext"
    extensions.write_text(f"subjectAltName=DNS:{HOST},IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                          "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-days", "2", "-extfile", str(extensions), "-out", str(workdir / "server.pem"))
    return ca


@contextmanager
def tls_front(workdir: Path, upstream: str) -> Iterator[TlsFront]:
    """The edge in front of `upstream` (host:port), started in `workdir` and stopped after."""
    ca = issue_certificate(workdir)
    port = free_port()
    addresses = ["127.0.0.1"] + (["[::1]"] if ipv6_loopback() else [])
    listen = "\n".join(f"        listen {address}:{port} ssl http2;" for address in addresses)
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, listen=listen, upstream=upstream))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = Process("nginx", [nginx, "-p", str(workdir), "-c", str(conf)], workdir / "nginx.out", workdir, dict(os.environ))
    try:
        _wait_listening(proc, port)
        yield TlsFront(port, ca, workdir / "access.log")
    finally:
        proc.stop()


def _wait_listening(proc: Process, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(proc.describe_failure("exited before listening"))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(proc.describe_failure(f"did not listen on {port} within {timeout_s}s"))
