//! The `x-sim-fault` request header: comma-separated switches that make the
//! simulator fail the way real providers do (error statuses, stalls, slow or
//! cut-off bodies, errors inside a 200 stream, a compressed or truncated body,
//! an HTTP/2 GOAWAY, graceful or abrupt; an idle connection closed), so tests can drive the proxy's failure paths on purpose.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

/// Request header carrying the fault switches.
pub const HEADER: &str = "x-sim-fault";

/// The faults asked for by one request; the default is none.
#[derive(Debug, Default, PartialEq)]
pub struct Faults {
    /// `status=N`: answer N with the route's error JSON instead of a fixture.
    pub status: Option<StatusCode>,
    /// `cut-after=N`: drop the connection after N body bytes.
    pub cut_after: Option<usize>,
    /// `stall-ms=N`: wait this long before the response headers.
    pub stall: Option<Duration>,
    /// `chunk-bytes=N`: write the body in pieces of this many bytes.
    pub chunk_bytes: Option<usize>,
    /// `chunk-delay-ms=M`: pause between body pieces.
    pub chunk_delay: Duration,
    /// `error-event`: end a stream half way with an `event: error`.
    pub error_event: bool,
    /// `gzip`: send the body gzip-coded (`content-encoding: gzip`), a stream flushed per piece.
    pub gzip: bool,
    /// `end-after=N`: end the body properly after its first N bytes (a short `content-length`).
    pub end_after: Option<usize>,
    /// `goaway`: on HTTP/2, send GOAWAY as the response starts (the stream in flight goes on).
    pub goaway: bool,
    /// `goaway-error=CODE`: on HTTP/2, end the connection abruptly, GOAWAY with
    /// this error code and close: before the response starts, or with
    /// `cut-after` in place of that cut's reset.
    pub goaway_error: Option<u32>,
    /// `close-after-ms=N`: close the connection N ms after the response starts, as a
    /// provider's keep-alive timeout ends a connection a proxy keeps idle.
    pub close_after: Option<Duration>,
    /// `once=ID`: apply the other faults only to the first request naming this
    /// ID; a retry of it is answered normally.
    pub once: Option<u64>,
}

impl Faults {
    /// The faults named by every `x-sim-fault` header of a request.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, String> {
        let mut spec = String::new();
        for value in headers.get_all(HEADER) {
            let value = value
                .to_str()
                .map_err(|_| format!("{HEADER} is not ASCII"))?;
            spec.push_str(value);
            spec.push(',');
        }
        Self::parse(&spec)
    }

    /// Parses `status=500,cut-after=10,error-event` and the like.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut faults = Self::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let flag = match item {
                "error-event" => Some(&mut faults.error_event),
                "gzip" => Some(&mut faults.gzip),
                "goaway" => Some(&mut faults.goaway),
                _ => None,
            };
            if let Some(flag) = flag {
                *flag = true;
                continue;
            }
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("unknown fault {item:?}"))?;
            let number: u64 = value
                .trim()
                .parse()
                .map_err(|_| format!("fault {name}: {value:?} is not a number"))?;
            let size = || usize::try_from(number).map_err(|_| format!("fault {name}: too large"));
            match name.trim() {
                "status" => {
                    let code = u16::try_from(number).unwrap_or(0);
                    faults.status = Some(
                        StatusCode::from_u16(code)
                            .map_err(|_| format!("fault status: {number} is not a status"))?,
                    );
                }
                "cut-after" => faults.cut_after = Some(size()?),
                "end-after" => faults.end_after = Some(size()?),
                "stall-ms" => faults.stall = Some(Duration::from_millis(number)),
                "chunk-bytes" if number > 0 => faults.chunk_bytes = Some(size()?),
                "chunk-delay-ms" => faults.chunk_delay = Duration::from_millis(number),
                "close-after-ms" => faults.close_after = Some(Duration::from_millis(number)),
                "once" => faults.once = Some(number),
                "goaway-error" => {
                    let code =
                        u32::try_from(number).map_err(|_| format!("fault {name}: too large"))?;
                    faults.goaway_error = Some(code);
                }
                _ => return Err(format!("unknown fault {item:?}")),
            }
        }
        Ok(faults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_switch() {
        let faults = Faults::parse(
            "status=429, cut-after=10,stall-ms=5,chunk-bytes=3,chunk-delay-ms=2,error-event,gzip,\
             end-after=7,goaway,goaway-error=2,close-after-ms=4,once=9",
        );
        assert_eq!(
            faults,
            Ok(Faults {
                status: Some(StatusCode::TOO_MANY_REQUESTS),
                cut_after: Some(10),
                stall: Some(Duration::from_millis(5)),
                chunk_bytes: Some(3),
                chunk_delay: Duration::from_millis(2),
                error_event: true,
                gzip: true,
                end_after: Some(7),
                goaway: true,
                goaway_error: Some(2),
                close_after: Some(Duration::from_millis(4)),
                once: Some(9),
            })
        );
        assert_eq!(Faults::parse(""), Ok(Faults::default()));
    }

    #[test]
    fn rejects_unknown_and_bad_values() {
        assert!(Faults::parse("explode").is_err());
        assert!(Faults::parse("status=abc").is_err());
        assert!(Faults::parse("status=70000").is_err());
        assert!(Faults::parse("chunk-bytes=0").is_err());
        assert!(Faults::parse("goaway-error=4294967296").is_err());
    }
}
