//! A request body its client compressed (`Content-Encoding`): Codex sends its Responses
//! requests in zstd, other clients gzip. tailmeter must read the JSON to route and meter it, so
//! the body is decoded, and the provider is sent the decoded body without the header (not
//! every provider takes a compressed request body).
//!
//! `gzip` (`x-gzip`), `deflate` (zlib, as HTTP defines it), `br` and `zstd` are decoded, one
//! coding per body. The decoded body is bounded by `max_request_body` like any other (a small
//! body can inflate a thousandfold): 413 past it. A body its coding cannot decode is 400
//! `invalid_encoding`; any other coding, or more than one, is 415 `unsupported_encoding`. A large
//! body is decoded on the blocking pool, so its decoding holds up no other connection of its
//! worker thread.

use std::io::{self, Read};

use bytes::Bytes;
use http::header::CONTENT_ENCODING;
use http::HeaderMap;

use crate::api_error::{ApiError, ErrorKind};

/// Bodies up to this size, as sent, are decoded where they are (well under a millisecond);
/// larger ones on the blocking pool.
const DECODE_HERE_UP_TO: usize = 64 * 1024;
/// The largest zstd window a body may ask for, as a power of two: 16 MiB, Brotli's largest too
/// (Codex compresses at level 3, a window of a few MiB at most). A decoder allocates the window
/// a frame declares, up to 2 GiB, so a few small bodies asking for more must not be honoured.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// A content coding tailmeter decodes: all four in a request body, gzip and deflate in a response
/// (`meter::decode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `gzip` or `x-gzip` (one or more members).
    Gzip,
    /// `deflate`: a zlib stream.
    Deflate,
    /// `br`.
    Brotli,
    /// `zstd` (one or more frames).
    Zstd,
}

impl Coding {
    /// The coding a `Content-Encoding` value names (any case, spaces around it), if it is one of
    /// these.
    pub fn named(value: &[u8]) -> Option<Coding> {
        const NAMES: [(&[u8], Coding); 5] = [
            (b"gzip", Coding::Gzip),
            (b"x-gzip", Coding::Gzip),
            (b"deflate", Coding::Deflate),
            (b"br", Coding::Brotli),
            (b"zstd", Coding::Zstd),
        ];
        let value = value.trim_ascii();
        NAMES
            .iter()
            .find(|(name, _)| value.eq_ignore_ascii_case(name))
            .map(|&(_, coding)| coding)
    }

    fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }
}

/// The body's coding, from its `Content-Encoding`: `None` when it has none (or `identity`).
pub fn coding(headers: &HeaderMap) -> Result<Option<Coding>, ApiError> {
    let mut values = headers.get_all(CONTENT_ENCODING).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let named = value.as_bytes().trim_ascii();
    if values.next().is_some() || named.contains(&b',') {
        return Err(unsupported("more than one coding"));
    }
    if named.is_empty() || named.eq_ignore_ascii_case(b"identity") {
        return Ok(None);
    }
    Coding::named(named).map(Some).ok_or_else(|| {
        let named = String::from_utf8_lossy(named).to_ascii_lowercase();
        unsupported(&format!("`{named}`"))
    })
}

/// The body decoded, at most `limit` bytes of it; a large body on the blocking pool.
pub async fn decode(coding: Coding, body: Bytes, limit: u64) -> Result<Bytes, ApiError> {
    if body.len() <= DECODE_HERE_UP_TO {
        return decode_here(coding, &body, limit);
    }
    tokio::task::spawn_blocking(move || decode_here(coding, &body, limit))
        .await
        .unwrap_or_else(|e| Err(invalid(coding, &e.to_string())))
}

/// [`decode`] on this thread, whatever the body's size.
pub fn decode_here(coding: Coding, body: &[u8], limit: u64) -> Result<Bytes, ApiError> {
    let room = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut decoded = Vec::with_capacity(body.len().saturating_mul(4).min(room));
    // One byte past the limit tells a body over it from one exactly at it.
    let most = limit.saturating_add(1);
    let outcome = match coding {
        // A second member's header is expected after each member: other bytes are an error.
        Coding::Gzip => drain(
            flate2::bufread::MultiGzDecoder::new(body),
            most,
            &mut decoded,
        ),
        Coding::Deflate => {
            let mut decoder = flate2::bufread::ZlibDecoder::new(body);
            drain(&mut decoder, most, &mut decoded).and_then(|()| match decoder.get_ref().len() {
                0 => Ok(()),
                left => Err(io::Error::other(format!("{left} bytes after its end"))),
            })
        }
        Coding::Brotli => {
            let mut decoder = brotli_decompressor::Decompressor::new(body, 4096);
            // Once the stream has ended, one more read fails if bytes are left after it.
            drain(&mut decoder, most, &mut decoded)
                .and_then(|()| decoder.read(&mut [0; 1]).map(drop))
        }
        // Frame after frame to the end of the input: other bytes are an error.
        Coding::Zstd => zstd::stream::read::Decoder::with_buffer(body).and_then(|mut decoder| {
            decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            drain(decoder, most, &mut decoded)
        }),
    };
    if decoded.len() as u64 > limit {
        return Err(ApiError::new(
            ErrorKind::TooLarge,
            "request_too_large",
            format!(
                "the request body, decoded from {}, is larger than this gateway's max_request_body of {limit} bytes",
                coding.name()
            ),
        ));
    }
    outcome.map_err(|e| invalid(coding, &e.to_string()))?;
    Ok(Bytes::from(decoded))
}

/// Reads `decoder` to its end into `out`, or until `most` bytes.
fn drain(decoder: impl Read, most: u64, out: &mut Vec<u8>) -> io::Result<()> {
    decoder.take(most).read_to_end(out).map(drop)
}

fn invalid(coding: Coding, why: &str) -> ApiError {
    ApiError::new(
        ErrorKind::InvalidRequest,
        "invalid_encoding",
        format!(
            "the request body is not valid {} (Content-Encoding): {why}",
            coding.name()
        ),
    )
}

fn unsupported(what: &str) -> ApiError {
    ApiError::new(
        ErrorKind::UnsupportedEncoding,
        "unsupported_encoding",
        format!(
            "the request body's Content-Encoding is {what}; this gateway decodes one of gzip, deflate, br or zstd, or an uncompressed body"
        ),
    )
}

#[cfg(test)]
mod tests;
