//! A `multipart/form-data` request body (OpenAI's audio endpoints and image edits) read into the
//! JSON object the synthesized endpoints take: each text field a string (a name given more than
//! once, or ending in `[]`, an array), each file an object with its name, content type, size and
//! SHA-256, so an answer can depend on the file and a test can check it arrived intact.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The form in `body`, when `content_type` says it is one; None when it is not, or is not a
/// form this reader can split (which the endpoint then answers as a body that is not JSON).
pub fn to_json(content_type: &str, body: &[u8]) -> Option<Value> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let boundary = params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        let value = value.trim().trim_matches('"');
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then_some(value)
    })?;
    let mut fields = Map::new();
    let mut rest = &body[find(body, format!("--{boundary}").as_bytes())? + boundary.len() + 2..];
    let delimiter = format!("\r\n--{boundary}");
    loop {
        if rest.starts_with(b"--") {
            return Some(Value::Object(fields));
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let end = find(rest, delimiter.as_bytes())?;
        let (headers, content) = split_part(&rest[..end])?;
        let (name, value) = field(&headers, content)?;
        add(&mut fields, name, value);
        rest = &rest[end + delimiter.len()..];
    }
}

/// A part's headers (as text) and its content.
fn split_part(part: &[u8]) -> Option<(String, &[u8])> {
    let blank = find(part, b"\r\n\r\n")?;
    let headers = String::from_utf8(part[..blank].to_vec()).ok()?;
    Some((headers, &part[blank + 4..]))
}

/// The field a part gives: its name, and its value (a string, or a file's description).
fn field(headers: &str, content: &[u8]) -> Option<(String, Value)> {
    let mut disposition = None;
    let mut content_type = "application/octet-stream";
    for line in headers.split("\r\n") {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-disposition" => disposition = Some(value),
            "content-type" => content_type = value.trim(),
            _ => {}
        }
    }
    let param = |wanted: &str| {
        disposition?.split(';').skip(1).find_map(|param| {
            let (name, value) = param.split_once('=')?;
            let value = value.trim().trim_matches('"').to_owned();
            (name.trim() == wanted).then_some(value)
        })
    };
    let name = param("name")?;
    let value = match param("filename") {
        Some(filename) => json!({
            "filename": filename,
            "content_type": content_type,
            "size": content.len(),
            "sha256": Sha256::digest(content).iter().map(|b| format!("{b:02x}")).collect::<String>(),
        }),
        None => Value::String(String::from_utf8(content.to_vec()).ok()?),
    };
    Some((name, value))
}

/// Adds a field: a second value under one name, or a name ending in `[]`, makes an array.
fn add(fields: &mut Map<String, Value>, name: String, value: Value) {
    let (name, listed) = match name.strip_suffix("[]") {
        Some(bare) => (bare.to_owned(), true),
        None => (name, false),
    };
    match fields.get_mut(&name) {
        Some(Value::Array(values)) => values.push(value),
        Some(first) => *first = json!([first.take(), value]),
        None if listed => {
            fields.insert(name, json!([value]));
        }
        None => {
            fields.insert(name, value);
        }
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_files_and_lists() {
        let body = b"--xx\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-image-1\r\n\
            --xx\r\nContent-Disposition: form-data; name=\"image[]\"; filename=\"a.png\"\r\n\
            Content-Type: image/png\r\n\r\n\x89PNG\r\n--xx\r\n\
            Content-Disposition: form-data; name=\"image[]\"; filename=\"b.png\"\r\n\r\nPNG\r\n--xx--\r\n";
        let form = to_json("multipart/form-data; boundary=xx", body).unwrap();
        assert_eq!(form["model"], "gpt-image-1");
        assert_eq!(form["image"][0]["filename"], "a.png");
        assert_eq!(form["image"][0]["content_type"], "image/png");
        assert_eq!(form["image"][0]["size"], 4);
        assert_eq!(form["image"][1]["size"], 3);
        assert_eq!(to_json("application/json", body), None);
        assert_eq!(to_json("multipart/form-data; boundary=yy", body), None);
    }
}
