//! A `multipart/form-data` request body (RFC 7578), as OpenAI's audio endpoints and image edits
//! take one: where its `model` and `stream` fields hold their values. The parts' contents (an
//! audio file, an image) are stepped over with one search for the next delimiter, never copied,
//! decoded or checked.

use std::ops::Range;

use memchr::memmem;

/// Where the fields tailmeter reads hold their values (the value's bytes, as sent).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FormFields {
    /// The `model` field's value.
    pub model: Option<Range<usize>>,
    /// The `stream` field's value.
    pub stream: Option<Range<usize>>,
}

/// The boundary a `multipart/form-data` content type names, or None for any other content type.
/// A form without a usable boundary is refused by [`scan`] as malformed, so this gives an empty
/// one rather than None.
pub fn boundary(content_type: &[u8]) -> Option<&[u8]> {
    let content_type = content_type.trim_ascii();
    let (kind, mut params) = match memchr::memchr(b';', content_type) {
        Some(at) => (&content_type[..at], &content_type[at..]),
        None => (content_type, &b""[..]),
    };
    if !kind
        .trim_ascii()
        .eq_ignore_ascii_case(b"multipart/form-data")
    {
        return None;
    }
    while let Some((name, value, rest)) = next_param(params) {
        if name.eq_ignore_ascii_case(b"boundary") {
            return Some(value);
        }
        params = rest;
    }
    Some(b"")
}

/// Finds the `model` and `stream` fields of a form with `boundary`. The body must be a whole
/// form ([`parts`]). Either field given twice is refused, as in a JSON body (a proxy reading one
/// and a provider the other would meter and grant one model and serve another).
pub fn scan(body: &[u8], boundary: &[u8]) -> Result<FormFields, String> {
    let mut fields = FormFields::default();
    for part in parts(body, boundary)? {
        let (name, content) = part?;
        let slot = match name {
            b"model" => Some(("model", &mut fields.model)),
            b"stream" => Some(("stream", &mut fields.stream)),
            _ => None,
        };
        if let Some((name, slot)) = slot {
            if slot.replace(content).is_some() {
                return Err(format!("its `{name}` field is given twice"));
            }
        }
    }
    Ok(fields)
}

/// The parts of a form with `boundary`, in order: each field's name and where its value is. The
/// body must be a whole form: a first delimiter, parts each with a `Content-Disposition:
/// form-data` naming it, and the closing delimiter; what is not ends the walk with an error.
pub fn parts<'a>(body: &'a [u8], boundary: &[u8]) -> Result<Parts<'a>, String> {
    // RFC 2046: 1 to 70 characters.
    if boundary.is_empty() || boundary.len() > 70 {
        return Err("its Content-Type names no usable multipart boundary".to_owned());
    }
    let mut delimiter = Vec::with_capacity(boundary.len() + 4);
    delimiter.extend_from_slice(b"\r\n--");
    delimiter.extend_from_slice(boundary);
    let next_delimiter = memmem::Finder::new(&delimiter).into_owned();
    // The first delimiter may open the body without the line break before it.
    let at = if body.starts_with(&delimiter[2..]) {
        delimiter.len() - 2
    } else {
        let found = next_delimiter.find(body).ok_or("it has no part")?;
        found + delimiter.len()
    };
    Ok(Parts {
        body,
        next_delimiter,
        at: Some(at),
    })
}

/// A part's field name and where its value is.
pub type Part<'a> = (&'a [u8], Range<usize>);

/// The walk over a form's parts ([`parts`]).
pub struct Parts<'a> {
    body: &'a [u8],
    next_delimiter: memmem::Finder<'static>,
    /// Where the next delimiter line's rest begins; None once the walk is over.
    at: Option<usize>,
}

impl<'a> Iterator for Parts<'a> {
    type Item = Result<Part<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.at.take()?;
        let part = self.part_at(at);
        if let Ok(Some((_, content))) = &part {
            self.at = Some(content.end + self.next_delimiter.needle().len());
        }
        part.transpose()
    }
}

impl<'a> Parts<'a> {
    /// The part whose delimiter line's rest begins at `at`, or None after the closing one.
    fn part_at(&self, at: usize) -> Result<Option<Part<'a>>, String> {
        let body = self.body;
        let after = &body[at..];
        if after.starts_with(b"--") {
            return Ok(None);
        }
        // Transport padding, then the line break that ends the delimiter line.
        let line_end = after
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t'))
            .filter(|&p| after[p..].starts_with(b"\r\n"))
            .ok_or_else(|| format!("a delimiter is not followed by a line break at byte {at}"))?;
        let headers_start = at + line_end + 2;
        let headers_len = if body[headers_start..].starts_with(b"\r\n") {
            0
        } else {
            memmem::find(&body[headers_start..], b"\r\n\r\n")
                .map(|len| len + 2)
                .ok_or_else(|| format!("a part's headers do not end, from byte {headers_start}"))?
        };
        let headers = &body[headers_start..headers_start + headers_len];
        let content_start = headers_start + headers_len + 2;
        let content_len = self
            .next_delimiter
            .find(&body[content_start..])
            .ok_or("it ends before its closing boundary")?;
        let name = field_name(headers).map_err(|why| format!("{why} at byte {at}"))?;
        Ok(Some((name, content_start..content_start + content_len)))
    }
}

/// The field name a part's headers give (`Content-Disposition: form-data; name="…"`).
fn field_name(headers: &[u8]) -> Result<&[u8], &'static str> {
    for line in headers.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        if !line[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(b"content-disposition")
        {
            continue;
        }
        let value = &line[colon + 1..];
        let (kind, mut params) = match memchr::memchr(b';', value) {
            Some(at) => (&value[..at], &value[at..]),
            None => (value, &b""[..]),
        };
        if !kind.trim_ascii().eq_ignore_ascii_case(b"form-data") {
            return Err("a part is not form-data");
        }
        while let Some((name, value, rest)) = next_param(params) {
            if name.eq_ignore_ascii_case(b"name") {
                return Ok(value);
            }
            params = rest;
        }
        return Err("a part's Content-Disposition names no field");
    }
    Err("a part has no Content-Disposition")
}

/// The next `; name=value` parameter of a header value (`value` unquoted, its backslash escapes
/// left as sent: field names and boundaries have none), and what follows it.
fn next_param(params: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let params = params
        .trim_ascii_start()
        .strip_prefix(b";")?
        .trim_ascii_start();
    let eq = memchr::memchr(b'=', params)?;
    let name = params[..eq].trim_ascii();
    let rest = params[eq + 1..].trim_ascii_start();
    if let Some(quoted) = rest.strip_prefix(b"\"") {
        let mut i = 0;
        while i < quoted.len() {
            match quoted[i] {
                b'\\' => i += 2,
                b'"' => return Some((name, &quoted[..i], &quoted[i + 1..])),
                _ => i += 1,
            }
        }
        return None;
    }
    let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
    Some((name, rest[..end].trim_ascii_end(), &rest[end..]))
}

#[cfg(test)]
mod tests;
