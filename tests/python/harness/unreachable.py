"""Providers that cannot be reached, each in its own way, for the upstream-failure tests.

- `blackhole()`: a port whose connections never complete. The listener never accepts and its
  queue is kept full, so Linux drops every further SYN and a connect waits until it times out,
  as it does towards a host that is down.
- `self_signed_tls(workdir)`: a TLS server whose certificate no one trusts, as an on-premises
  model server set up with `openssl req -x509` is: the handshake fails on the client's side.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def blackhole() -> Iterator[int]:
    """A loopback port that takes no connection: its listener's queue (of one) is filled."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(2):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            fillers.append(filler)
        yield listener.getsockname()[1]
    finally:
        for s in [*fillers, listener]:
            s.close()


@contextmanager
def self_signed_tls(workdir: Path) -> Iterator[int]:
    """A loopback TLS server with a freshly made self-signed certificate; it completes its side
    of every handshake it can and then closes the connection."""
    cert, key = workdir / "self-signed.pem", workdir / "self-signed.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                pass  # the client refused the certificate: what the tests expect
            finally:
                conn.close()

    thread = threading.Thread(target=serve, name="self-signed-tls", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        try:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        except OSError:
            pass
        listener.close()
        thread.join(timeout=5)
