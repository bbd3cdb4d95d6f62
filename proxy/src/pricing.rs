//! Cost from `[prices.MODEL]` (USD per million tokens), as the contract defines it: uncached
//! input at `input`, cache reads at `cache_read`, cache writes at `cache_write` (either falling
//! back to `input` when not priced), all output (reasoning included) at `output`. The parts
//! the provider reports and prices on their own, at prices falling back to those: of the
//! uncached input and the output, audio and images (`audio_input`, `image_input`,
//! `audio_output`, `image_output`); of the cache writes, those kept an hour (`cache_write_1h`).
//! Added to it, what image and audio models bill otherwise ([`MediaUse`]): minutes of audio
//! transcribed, characters spoken, images made, each at its own price ([`MediaPrice`]).

use std::collections::BTreeMap;

use tailmeter_exporters::TokenCounts;

use crate::config::{MediaPrice, Price};
use crate::usage::Parts;

mod asked;

pub use asked::{Asked, ImagesAsked};

/// What a request used that its model may bill other than as text tokens.
#[derive(Debug, Default, Clone, Copy)]
pub struct MediaUse<'a> {
    /// What a successful image or speech request asked for.
    pub asked: Option<&'a Asked>,
    /// The audio and image tokens and the seconds of audio the answer reported.
    pub parts: Parts,
}

/// The configured prices, by model name.
#[derive(Debug, Default)]
pub struct Prices {
    by_model: BTreeMap<String, Price>,
}

impl Prices {
    /// Prices from the configuration.
    pub fn new(by_model: BTreeMap<String, Price>) -> Self {
        Self { by_model }
    }

    /// The cost of `tokens` and `media` on `model`, or None when the model has no price.
    pub fn cost(&self, model: &str, tokens: &TokenCounts, media: MediaUse<'_>) -> Option<f64> {
        let price = self.by_model.get(model)?;
        let uncached = tokens
            .input
            .saturating_sub(tokens.cache_read)
            .saturating_sub(tokens.cache_write);
        // The parts priced apart, never more than the whole they are part of.
        let parts = media.parts;
        let audio_input = parts.audio_input.unwrap_or(0).min(uncached);
        let image_input = parts.image_input.unwrap_or(0).min(uncached - audio_input);
        let text_input = uncached - audio_input - image_input;
        let audio_output = parts.audio_output.unwrap_or(0).min(tokens.output);
        let image_output = parts
            .image_output
            .unwrap_or(0)
            .min(tokens.output - audio_output);
        let text_output = tokens.output - audio_output - image_output;
        let hour_writes = parts.cache_write_1h.unwrap_or(0).min(tokens.cache_write);
        let cache_write = price.cache_write.unwrap_or(price.input);
        let per_million = text_input as f64 * price.input
            + audio_input as f64 * price.audio_input.unwrap_or(price.input)
            + image_input as f64 * price.image_input.unwrap_or(price.input)
            + tokens.cache_read as f64 * price.cache_read.unwrap_or(price.input)
            + (tokens.cache_write - hour_writes) as f64 * cache_write
            + hour_writes as f64 * price.cache_write_1h.unwrap_or(cache_write)
            + text_output as f64 * price.output
            + audio_output as f64 * price.audio_output.unwrap_or(price.output)
            + image_output as f64 * price.image_output.unwrap_or(price.output);
        Some(per_million / 1_000_000.0 + media_cost(&price.media, media))
    }
}

/// What `media` costs at `price` (0 for what it does not price).
fn media_cost(price: &MediaPrice, media: MediaUse<'_>) -> f64 {
    let per_minute = price.audio_minute.unwrap_or(0.0);
    let audio = media.parts.audio_ms.unwrap_or(0) as f64 / 60_000.0 * per_minute;
    let asked = match media.asked {
        None => 0.0,
        Some(Asked::Speech { characters }) => {
            *characters as f64 * price.characters.unwrap_or(0.0) / 1_000_000.0
        }
        Some(Asked::Images(images)) => f64::from(images.n) * per_image(price, images),
    };
    audio + asked
}

/// The price of one image of the size and quality `images` asks for: `images`' entry for
/// `"QUALITY SIZE"`, `"SIZE"` or `"QUALITY"`, in that order, else `image`, else 0.
fn per_image(price: &MediaPrice, images: &ImagesAsked) -> f64 {
    let (size, quality) = (images.size.as_deref(), images.quality.as_deref());
    let both = size
        .zip(quality)
        .map(|(size, quality)| format!("{quality} {size}"));
    let listed = [both.as_deref(), size, quality]
        .into_iter()
        .flatten()
        .find_map(|asked| price.images.get(asked));
    listed.or(price.image.as_ref()).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests;
