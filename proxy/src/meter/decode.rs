//! The usage tap behind a response's content coding.
//!
//! tailmeter asks providers for `accept-encoding: identity`, but a provider (or a CDN in front of
//! it) may compress anyway. The client gets the body exactly as the provider sent it; the usage
//! reader gets a decoded copy, so the provider's usage is still read:
//! - `gzip` (and `x-gzip`) and `deflate` (zlib, as HTTP defines it) are inflated on the fly,
//!   through the one buffer of the inflater, straight into the [`UsageTap`];
//! - at most `limit` decoded bytes reach the tap (a small body can inflate a thousandfold):
//!   past it nothing more is decoded and the request is metered `oversized`;
//! - a body whose coding ends early or is corrupt (a truncated gzip member, a bad checksum)
//!   is metered `bad_encoding` when its HTTP framing ended properly (a connection cut short is
//!   the ending's reason, `upstream_reset`, as for any body);
//! - any other coding (`br`, `zstd`, a list of codings) is not read: `unsupported_encoding`.
//!
//! All of this runs only when a provider ignored the identity request; an unencoded body goes
//! to the tap untouched.

#[cfg(test)]
mod tests;

use std::io::{self, Write};

use flate2::write::{GzDecoder, ZlibDecoder};
use http::header::CONTENT_ENCODING;
use http::HeaderMap;

use crate::body::coding::Coding as ContentCoding;
use crate::usage::UsageTap;

/// Why the tap could not read a coded body whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// More than the limit decoded.
    Oversized,
    /// The coding ended early or is corrupt.
    BadEncoding,
    /// A coding tailmeter does not decode.
    Unsupported,
}

impl Fault {
    /// The `reason` label of `tailmeter_usage_missing_total` it gives.
    pub fn reason(self) -> &'static str {
        match self {
            Fault::Oversized => "oversized",
            Fault::BadEncoding => "bad_encoding",
            Fault::Unsupported => "unsupported_encoding",
        }
    }
}

/// Whether a response with these headers is sent without a content coding.
pub fn is_identity(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_ENCODING)
        .is_none_or(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"))
}

/// The tap itself, counting what the inflater hands it against the limit.
struct Sink {
    tap: UsageTap,
    left: usize,
    over: bool,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > self.left {
            self.over = true;
            return Err(io::Error::other("decoded body over the limit"));
        }
        self.left -= buf.len();
        self.tap.feed(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An inflater writing into the [`Sink`].
enum Inflate {
    Gzip(GzDecoder<Sink>),
    Zlib(ZlibDecoder<Sink>),
}

impl Inflate {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Inflate::Gzip(d) => d,
            Inflate::Zlib(d) => d,
        }
    }

    fn sink(&self) -> &Sink {
        match self {
            Inflate::Gzip(d) => d.get_ref(),
            Inflate::Zlib(d) => d.get_ref(),
        }
    }

    fn sink_mut(&mut self) -> &mut Sink {
        match self {
            Inflate::Gzip(d) => d.get_mut(),
            Inflate::Zlib(d) => d.get_mut(),
        }
    }

    /// Why it stopped: the sink's limit, or a bad coding.
    fn fault(&self) -> Fault {
        if self.sink().over {
            Fault::Oversized
        } else {
            Fault::BadEncoding
        }
    }

    /// Ends the coding: Ok only for a whole stream (for gzip, its checksum and length too).
    fn try_finish(&mut self) -> io::Result<()> {
        match self {
            Inflate::Gzip(d) => d.try_finish(),
            Inflate::Zlib(d) => d.try_finish(),
        }
    }
}

enum Coding {
    Identity(UsageTap),
    Inflate(Box<Inflate>),
    /// Not decoded: the tap sees nothing of the body.
    Unsupported(UsageTap),
}

/// A [`UsageTap`] fed through the response's content coding.
pub struct CodedTap {
    coding: Coding,
    fault: Option<Fault>,
}

impl CodedTap {
    /// `tap` for a response with `headers`; at most `limit` decoded bytes reach it.
    pub fn new(tap: UsageTap, headers: &HeaderMap, limit: usize) -> Self {
        let sink = |tap| Sink {
            tap,
            left: limit,
            over: false,
        };
        let named = headers
            .get(CONTENT_ENCODING)
            .and_then(|v| ContentCoding::named(v.as_bytes()));
        let coding = match named {
            _ if is_identity(headers) => Coding::Identity(tap),
            Some(ContentCoding::Gzip) => {
                Coding::Inflate(Box::new(Inflate::Gzip(GzDecoder::new(sink(tap)))))
            }
            Some(ContentCoding::Deflate) => {
                Coding::Inflate(Box::new(Inflate::Zlib(ZlibDecoder::new(sink(tap)))))
            }
            Some(ContentCoding::Brotli | ContentCoding::Zstd) | None => Coding::Unsupported(tap),
        };
        let fault = matches!(coding, Coding::Unsupported(_)).then_some(Fault::Unsupported);
        Self { coding, fault }
    }

    /// The next piece of the body exactly as the provider sent it.
    pub fn feed(&mut self, chunk: &[u8]) {
        match &mut self.coding {
            Coding::Identity(tap) => tap.feed(chunk),
            Coding::Inflate(inflate) if self.fault.is_none() => {
                // A flush after each piece hands the tap all it decoded, so a stream cut later
                // has had every whole event read.
                let writer = inflate.writer();
                if writer
                    .write_all(chunk)
                    .and_then(|()| writer.flush())
                    .is_err()
                {
                    self.fault = Some(inflate.fault());
                }
            }
            Coding::Inflate(_) | Coding::Unsupported(_) => {}
        }
    }

    /// The body ended: a coding that did not end whole is a fault; the tap reads what it holds.
    pub fn finish(&mut self) {
        if let Coding::Inflate(inflate) = &mut self.coding {
            if self.fault.is_none() && inflate.try_finish().is_err() {
                self.fault = Some(inflate.fault());
            }
        }
        self.tap_mut().finish();
    }

    /// Why the body could not be read whole, if it could not.
    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    /// The usage reader.
    pub fn tap(&self) -> &UsageTap {
        match &self.coding {
            Coding::Identity(tap) | Coding::Unsupported(tap) => tap,
            Coding::Inflate(inflate) => &inflate.sink().tap,
        }
    }

    fn tap_mut(&mut self) -> &mut UsageTap {
        match &mut self.coding {
            Coding::Identity(tap) | Coding::Unsupported(tap) => tap,
            Coding::Inflate(inflate) => &mut inflate.sink_mut().tap,
        }
    }
}
