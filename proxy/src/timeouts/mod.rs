//! Timeouts Pingora 0.9 does not have, enforced on the sockets themselves.
//!
//! Pingora bounds each single read with a timeout that starts again whenever a byte arrives, and
//! it reads a request header before any `ProxyHttp` phase runs (cloudflare/pingora#447), and a
//! response header inside its own client (cloudflare/pingora#992). So neither a header that
//! trickles in a byte at a time nor a provider that takes long to answer but then streams with
//! short pauses can be told apart from normal traffic by the phases. These wrappers watch the
//! bytes as they pass instead:
//! - [`client`]: `server.client_header_timeout`, the whole request header of a client
//!   connection within one deadline (a slowloris client is cut, answered 408);
//! - [`upstream`]: a provider's `first_byte_timeout`, the wait for the response header after
//!   the request was written, apart from its `idle_timeout` between the pieces of a response.
//!
//! The client wrapper also keeps the small write buffer Pingora's listener gives a connection,
//! which a connection moved to its serving thread no longer has.

pub mod client;
pub mod upstream;

#[cfg(test)]
mod tests;

/// Finds the end of an HTTP/1 header (an empty line) in bytes fed in pieces of any size.
///
/// Lines may end in CRLF or a bare LF (both are accepted by Pingora's parser); empty lines before
/// the first header line (allowed before a request line, RFC 9112 §2.2) do not count. Every read
/// of a client connection passes through here, so it goes from line end to line end (`memchr`),
/// not byte by byte.
#[derive(Debug, Default, Clone, Copy)]
pub struct HeaderEnd {
    /// Whether the current line has had anything but CR on it.
    line_has_text: bool,
    /// Whether any line has had text yet.
    started: bool,
}

impl HeaderEnd {
    /// Feeds `bytes`; returns how many of them belong to the header when its end is among them.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut from = 0;
        loop {
            let newline = memchr::memchr(b'\n', &bytes[from..]).map(|i| from + i);
            let line = &bytes[from..newline.unwrap_or(bytes.len())];
            if !self.line_has_text && line.iter().any(|&b| b != b'\r') {
                self.line_has_text = true;
                self.started = true;
            }
            let newline = newline?;
            if !self.line_has_text && self.started {
                return Some(newline + 1);
            }
            self.line_has_text = false;
            from = newline + 1;
        }
    }
}
