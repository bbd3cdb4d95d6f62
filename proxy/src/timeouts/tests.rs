use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::upstream::{ResponseTimeouts, Timed, UpstreamTimeout};
use super::HeaderEnd;

#[test]
fn header_end_is_found_across_pieces_and_line_endings() {
    let mut end = HeaderEnd::default();
    assert_eq!(end.feed(b"GET / HTTP/1.1\r\nHost: x\r"), None);
    assert_eq!(end.feed(b"\n\r"), None);
    assert_eq!(end.feed(b"\n{\"body\":1}"), Some(1));
    let mut bare = HeaderEnd::default();
    assert_eq!(bare.feed(b"HTTP/1.1 200 OK\nA: b\n\nrest"), Some(22));
    // Empty lines before the request line are not the end of a header.
    let mut leading = HeaderEnd::default();
    assert_eq!(leading.feed(b"\r\n\r\n"), None);
    assert_eq!(leading.feed(b"GET / HTTP/1.1\r\n\r\n"), Some(18));
}

/// Where a header ends, read a byte at a time: the reading `HeaderEnd` must agree with.
fn header_end_byte_by_byte(bytes: &[u8]) -> Option<usize> {
    let (mut line, mut started) = (0, false);
    for (i, &byte) in bytes.iter().enumerate() {
        match byte {
            b'\n' if line == 0 && started => return Some(i + 1),
            b'\n' => line = 0,
            b'\r' => {}
            _ => {
                line += 1;
                started = true;
            }
        }
    }
    None
}

#[test]
fn header_end_fed_in_two_pieces_anywhere_agrees_with_a_byte_by_byte_reading() {
    let inputs: [&[u8]; 7] = [
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
        b"\r\n\n\rGET / HTTP/1.1\nA: b\r\r\n\r\r\nrest",
        b"GET / HTTP/1.1\r\nA: \r\n\r\r\r\n",
        b"\r\r\r\n\n\n",
        b"GET / HTTP/1.1\r\nNo-End: yet\r\n",
        b"",
        b"x\n\n",
    ];
    for bytes in inputs {
        let expected = header_end_byte_by_byte(bytes);
        for cut in 0..=bytes.len() {
            let mut end = HeaderEnd::default();
            let found = match end.feed(&bytes[..cut]) {
                Some(n) => Some(n),
                None => end.feed(&bytes[cut..]).map(|n| cut + n),
            };
            assert_eq!(
                found,
                expected,
                "{:?} cut at {cut}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

fn timeouts(first_byte_ms: u64, idle_ms: u64) -> ResponseTimeouts {
    ResponseTimeouts {
        first_byte: Duration::from_millis(first_byte_ms),
        idle: Duration::from_millis(idle_ms),
    }
}

/// A provider that answers `script`: (pause before, bytes) after reading a request.
async fn provider(script: Vec<(u64, &'static [u8])>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = sock.read(&mut buf).await;
        for (pause, bytes) in script {
            tokio::time::sleep(Duration::from_millis(pause)).await;
            if sock.write_all(bytes).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    addr
}

async fn read_all(timed: &mut Timed, until: usize) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < until {
        let n = timed.read(&mut buf).await?;
        got.extend_from_slice(&buf[..n]);
    }
    Ok(got)
}

fn which(e: &std::io::Error) -> Option<UpstreamTimeout> {
    e.get_ref()?.downcast_ref::<UpstreamTimeout>().copied()
}

#[tokio::test]
async fn a_header_trickling_past_first_byte_timeout_is_cut() {
    // Each piece comes well within idle_timeout, the whole header not within first_byte_timeout.
    let script = (0..10).map(|_| (60, &b"H"[..])).collect();
    let addr = provider(script).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut timed = Timed::new(tcp, timeouts(300, 1000), true);
    timed.write_all(b"POST / HTTP/1.1\r\n\r\n").await.unwrap();
    let e = read_all(&mut timed, 100).await.unwrap_err();
    assert_eq!(
        which(&e),
        Some(UpstreamTimeout::FirstByte(Duration::from_millis(300)))
    );
}

#[tokio::test]
async fn pauses_in_the_body_longer_than_first_byte_timeout_are_served() {
    let head: &[u8] = b"HTTP/1.1 200 OK\r\n\r\n";
    let addr = provider(vec![(0, head), (400, b"one"), (400, b"two")]).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut timed = Timed::new(tcp, timeouts(200, 1000), true);
    timed.write_all(b"POST / HTTP/1.1\r\n\r\n").await.unwrap();
    let got = read_all(&mut timed, head.len() + 6).await.unwrap();
    assert!(got.ends_with(b"onetwo"));
}

#[tokio::test]
async fn silence_in_the_body_past_idle_timeout_is_cut() {
    let addr = provider(vec![(0, b"HTTP/1.1 200 OK\r\n\r\nx"), (800, b"late")]).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut timed = Timed::new(tcp, timeouts(1000, 300), true);
    timed.write_all(b"POST / HTTP/1.1\r\n\r\n").await.unwrap();
    let e = read_all(&mut timed, 100).await.unwrap_err();
    assert_eq!(
        which(&e),
        Some(UpstreamTimeout::Idle(Duration::from_millis(300)))
    );
}

/// A client connection over one end of an in-memory pipe, and the other end (the client).
fn client_connection() -> (super::client::HeaderDeadline, tokio::io::DuplexStream) {
    let (server, client) = tokio::io::duplex(64 * 1024);
    let stream: pingora::protocols::Stream = Box::new(server);
    let connection = super::client::HeaderDeadline::new(stream, Duration::from_secs(10));
    (connection, client)
}

/// Whether the client has bytes to read right now.
fn readable(client: &mut tokio::io::DuplexStream) -> bool {
    use tokio::io::AsyncRead;
    let mut buf = [0u8; 1];
    let mut buf = tokio::io::ReadBuf::new(&mut buf);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(client)
        .poll_read(&mut cx, &mut buf)
        .is_ready()
}

#[tokio::test]
async fn a_header_and_small_body_leave_together_at_the_flush() {
    let (mut connection, mut client) = client_connection();
    connection
        .write_all(b"HTTP/1.1 200 OK\r\n\r\n")
        .await
        .unwrap();
    let slices = [
        std::io::IoSlice::new(b"{\"a\":"),
        std::io::IoSlice::new(b"1}"),
    ];
    assert_eq!(connection.write_vectored(&slices).await.unwrap(), 7);
    assert!(!readable(&mut client), "nothing is sent before the flush");
    connection.flush().await.unwrap();
    let mut got = [0u8; 26];
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"HTTP/1.1 200 OK\r\n\r\n{\"a\":1}");
}

#[tokio::test]
async fn a_large_write_goes_out_at_once_after_what_was_held() {
    let (mut connection, mut client) = client_connection();
    connection.write_all(b"head").await.unwrap();
    let large = vec![b'x'; pingora::protocols::l4::stream::DEFAULT_L4_WRITE_BUFFER_SIZE];
    connection.write_all(&large).await.unwrap();
    let mut got = vec![0u8; 4 + large.len()];
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(&got[..4], b"head");
    assert_eq!(&got[4..], &large[..]);
}

#[tokio::test]
async fn what_is_held_is_sent_when_the_connection_is_dropped() {
    let (mut connection, mut client) = client_connection();
    connection
        .write_all(b"HTTP/1.1 200 OK\r\n\r\n{\"cut")
        .await
        .unwrap();
    assert!(!readable(&mut client));
    drop(connection);
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"HTTP/1.1 200 OK\r\n\r\n{\"cut");
}

/// The server's read after it answered `status_line` and the client sent more bytes, then went
/// quiet for longer than the header deadline before its last ones.
async fn read_after_answer(status_line: &[u8]) -> std::io::Result<Vec<u8>> {
    let (server, mut client) = tokio::io::duplex(64 * 1024);
    let stream: pingora::protocols::Stream = Box::new(server);
    let mut connection = super::client::HeaderDeadline::new(stream, Duration::from_millis(100));
    client
        .write_all(b"GET /v1/realtime HTTP/1.1\r\n\r\n")
        .await?;
    let mut head = [0u8; 29];
    connection.read_exact(&mut head).await?;
    connection.write_all(status_line).await?;
    connection.flush().await?;
    client.write_all(b"\x81\x05hello").await?;
    let mut frame = [0u8; 7];
    connection.read_exact(&mut frame).await?;
    let late = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.write_all(b"\x81\x03bye").await
    };
    let mut next = [0u8; 5];
    let (read, wrote) = tokio::join!(connection.read_exact(&mut next), late);
    wrote?;
    read?;
    Ok(next.to_vec())
}

#[tokio::test]
async fn an_upgraded_connection_has_no_header_deadline() {
    let upgraded = read_after_answer(b"HTTP/1.1 101 Switching Protocols\r\n\r\n").await;
    assert_eq!(upgraded.unwrap(), b"\x81\x03bye");
    // After an ordinary answer the next bytes are a header, due within the deadline.
    let answered = read_after_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
    assert!(answered.is_err(), "{answered:?}");
}
