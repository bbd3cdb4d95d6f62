//! What an image or speech request asks for that its model bills per unit: how many images, of
//! which size and quality (DALL·E), or how many characters to speak (`tts-1`). Read from the
//! request body (JSON, or a form's fields) for those endpoints only, after the body was checked;
//! no other request pays for it.

use std::borrow::Cow;

use serde::Deserialize;

use crate::body::form;
use crate::endpoint::Endpoint;

/// What a request asks for, in the units its model may be priced in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// Images to make (`/v1/images/*`).
    Images(ImagesAsked),
    /// Text to speak (`/v1/audio/speech`): its length in characters.
    Speech {
        /// Characters (Unicode scalar values) of `input`.
        characters: u64,
    },
}

/// The images a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagesAsked {
    /// How many (`n`, 1 when not given).
    pub n: u32,
    /// `size` as sent (`1024x1792`, `auto`), when given.
    pub size: Option<Box<str>>,
    /// `quality` as sent (`hd`, `standard`, `high`), when given.
    pub quality: Option<Box<str>>,
}

/// The fields read, from JSON.
#[derive(Deserialize)]
struct WireAsked<'a> {
    n: Option<u32>,
    #[serde(borrow)]
    size: Option<Cow<'a, str>>,
    #[serde(borrow)]
    quality: Option<Cow<'a, str>>,
    #[serde(borrow)]
    input: Option<Cow<'a, str>>,
}

impl Asked {
    /// What `body` (a form with `boundary`, else JSON) asks of `endpoint`: images for an image
    /// request, characters for a speech request (a JSON body with `input`). None for any other
    /// request (an audio upload's form is not read again), or for fields the provider will
    /// refuse (`n` not a whole number).
    pub fn read(endpoint: Endpoint, body: &[u8], boundary: Option<&[u8]>) -> Option<Asked> {
        let wire = match (endpoint, boundary) {
            (Endpoint::Images, Some(boundary)) => form_fields(body, boundary)?,
            (Endpoint::Images | Endpoint::Audio, None) => serde_json::from_slice(body).ok()?,
            _ => return None,
        };
        match endpoint {
            Endpoint::Images => Some(Asked::Images(ImagesAsked {
                n: wire.n.unwrap_or(1),
                size: wire.size.map(|s| s.trim().into()),
                quality: wire.quality.map(|q| q.trim().into()),
            })),
            _ => wire.input.map(|input| Asked::Speech {
                characters: input.chars().count() as u64,
            }),
        }
    }
}

/// The fields read, from a form (checked by [`form::scan`]) in one walk over its parts.
fn form_fields<'a>(body: &'a [u8], boundary: &[u8]) -> Option<WireAsked<'a>> {
    let mut wire = WireAsked {
        n: None,
        size: None,
        quality: None,
        input: None,
    };
    for part in form::parts(body, boundary).ok()? {
        let (name, value) = part.ok()?;
        let text = || std::str::from_utf8(&body[value]).ok().map(Cow::Borrowed);
        match name {
            b"n" if wire.n.is_none() => wire.n = Some(text()?.trim().parse().ok()?),
            b"size" if wire.size.is_none() => wire.size = text(),
            b"quality" if wire.quality.is_none() => wire.quality = text(),
            _ => {}
        }
    }
    Some(wire)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(n: u32, size: Option<&str>, quality: Option<&str>) -> Option<Asked> {
        Some(Asked::Images(ImagesAsked {
            n,
            size: size.map(Into::into),
            quality: quality.map(Into::into),
        }))
    }

    #[test]
    fn an_image_request_asks_for_n_images_of_its_size_and_quality() {
        let body =
            br#"{"model":"dall-e-3","prompt":"a bicycle","n":2,"size":"1024x1792","quality":"hd"}"#;
        let asked = Asked::read(Endpoint::Images, body, None);
        assert_eq!(asked, images(2, Some("1024x1792"), Some("hd")));
        let plain = Asked::read(
            Endpoint::Images,
            br#"{"model":"dall-e-3","prompt":"x"}"#,
            None,
        );
        assert_eq!(plain, images(1, None, None));
    }

    #[test]
    fn an_image_form_is_read_by_its_fields() {
        let form = b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n\x89PNG n=9\r\n--b\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n3\r\n--b\r\nContent-Disposition: form-data; name=\"size\"\r\n\r\n512x512\r\n--b--\r\n";
        let asked = Asked::read(Endpoint::Images, form, Some(b"b"));
        assert_eq!(asked, images(3, Some("512x512"), None));
    }

    #[test]
    fn speech_asks_for_its_characters_and_nothing_else_asks_for_anything() {
        let body = r#"{"model":"tts-1","voice":"coral","input":"Dîner est prêt."}"#;
        let asked = Asked::read(Endpoint::Audio, body.as_bytes(), None);
        assert_eq!(asked, Some(Asked::Speech { characters: 15 }));
        let chat = br#"{"model":"gpt-4o","n":2,"input":"x"}"#;
        assert_eq!(Asked::read(Endpoint::ChatCompletions, chat, None), None);
        let refused = br#"{"model":"dall-e-3","n":-1}"#;
        assert_eq!(Asked::read(Endpoint::Images, refused, None), None);
    }
}
