use super::*;

#[test]
fn prices_each_part_and_falls_back_to_input() {
    let mut by_model = BTreeMap::new();
    by_model.insert(
        "m".to_owned(),
        Price {
            cache_read: Some(0.5),
            ..Price::tokens(2.0, 8.0)
        },
    );
    let prices = Prices::new(by_model);
    let tokens = TokenCounts {
        input: 1000,
        output: 100,
        cache_read: 400,
        cache_write: 100,
        reasoning: 50,
    };
    // 500 uncached * 2 + 400 * 0.5 + 100 * 2 (fallback) + 100 * 8 = 2200 per million
    let cost = prices.cost("m", &tokens, MediaUse::default()).unwrap();
    assert!((cost - 0.0022).abs() < 1e-12, "{cost}");
    assert_eq!(prices.cost("other", &tokens, MediaUse::default()), None);
}

/// DALL·E 3's prices as OpenAI lists them: standard 1024×1024 at the flat price, the tall
/// and wide sizes and HD dearer.
fn dall_e_3() -> MediaPrice {
    let images = [
        ("1024x1792", 0.08),
        ("1792x1024", 0.08),
        ("hd", 0.08),
        ("hd 1024x1792", 0.12),
        ("hd 1792x1024", 0.12),
    ];
    MediaPrice {
        image: Some(0.04),
        images: images.map(|(k, v)| (k.to_owned(), v)).into(),
        ..MediaPrice::default()
    }
}

fn images(n: u32, size: Option<&str>, quality: Option<&str>) -> Asked {
    Asked::Images(ImagesAsked {
        n,
        size: size.map(Into::into),
        quality: quality.map(Into::into),
    })
}

#[test]
fn images_are_priced_by_quality_and_size_then_size_then_quality_then_flat() {
    let price = dall_e_3();
    let cost = |asked: &Asked| {
        let media = MediaUse {
            asked: Some(asked),
            parts: Parts::default(),
        };
        (media_cost(&price, media) * 1e6).round() / 1e6
    };
    assert_eq!(cost(&images(1, None, None)), 0.04);
    assert_eq!(cost(&images(2, Some("1024x1024"), Some("standard"))), 0.08);
    assert_eq!(cost(&images(1, Some("1792x1024"), Some("standard"))), 0.08);
    assert_eq!(cost(&images(1, Some("1792x1024"), Some("hd"))), 0.12);
    assert_eq!(cost(&images(3, Some("1024x1024"), Some("hd"))), 0.24);
    assert_eq!(cost(&images(1, None, Some("hd"))), 0.08);
    let unpriced = MediaPrice::default();
    let media = MediaUse {
        asked: Some(&images(4, None, None)),
        parts: Parts::default(),
    };
    assert_eq!(media_cost(&unpriced, media), 0.0);
}

#[test]
fn audio_is_priced_per_minute_and_speech_per_million_characters() {
    let price = MediaPrice {
        audio_minute: Some(0.006),
        characters: Some(15.0),
        ..MediaPrice::default()
    };
    let ninety_seconds = MediaUse {
        asked: None,
        parts: Parts {
            audio_ms: Some(90_000),
            ..Parts::default()
        },
    };
    assert!((media_cost(&price, ninety_seconds) - 0.009).abs() < 1e-12);
    let speech = Asked::Speech { characters: 2_000 };
    let spoken = MediaUse {
        asked: Some(&speech),
        parts: Parts::default(),
    };
    assert!((media_cost(&price, spoken) - 0.03).abs() < 1e-12);
}

#[test]
fn media_prices_add_to_the_token_cost() {
    let price = Price {
        media: dall_e_3(),
        ..Price::tokens(5.0, 40.0)
    };
    let prices = Prices::new(BTreeMap::from([("gpt-image-1".to_owned(), price)]));
    let tokens = TokenCounts {
        input: 1_000,
        output: 1_000,
        ..TokenCounts::default()
    };
    let asked = images(1, None, None);
    let media = MediaUse {
        asked: Some(&asked),
        parts: Parts::default(),
    };
    let cost = prices.cost("gpt-image-1", &tokens, media).unwrap();
    assert!((cost - (0.045 + 0.04)).abs() < 1e-12, "{cost}");
}

#[test]
fn audio_and_image_tokens_are_priced_apart_within_what_they_are_part_of() {
    let price = |audio_input, image_input, audio_output| Price {
        cache_read: Some(1.25),
        audio_input,
        image_input,
        audio_output,
        ..Price::tokens(2.5, 10.0)
    };
    let tokens = TokenCounts {
        input: 1_000,
        output: 500,
        cache_read: 200,
        ..TokenCounts::default()
    };
    let parts = Parts {
        audio_input: Some(600),
        image_input: Some(100),
        audio_output: Some(400),
        ..Parts::default()
    };
    let cost = |price: Price, parts: Parts| {
        let prices = Prices::new(BTreeMap::from([("m".to_owned(), price)]));
        let media = MediaUse { asked: None, parts };
        prices.cost("m", &tokens, media).unwrap() * 1e6
    };
    // Unpriced parts fall back: 800 uncached * 2.5 + 200 * 1.25 + 500 * 10.
    let plain = 800.0 * 2.5 + 200.0 * 1.25 + 500.0 * 10.0;
    assert!((cost(price(None, None, None), parts) - plain).abs() < 1e-6);
    // 100 text, 600 audio, 100 image in; 100 text, 400 audio out.
    let apart =
        100.0 * 2.5 + 600.0 * 40.0 + 100.0 * 10.0 + 200.0 * 1.25 + 100.0 * 10.0 + 400.0 * 80.0;
    let priced = price(Some(40.0), Some(10.0), Some(80.0));
    assert!((cost(priced.clone(), parts) - apart).abs() < 1e-6);
    // Parts reported larger than the uncached input count up to it only.
    let oversized = Parts {
        audio_input: Some(5_000),
        image_input: Some(5_000),
        audio_output: Some(5_000),
        ..Parts::default()
    };
    let capped = 800.0 * 40.0 + 200.0 * 1.25 + 500.0 * 80.0;
    assert!((cost(priced, oversized) - capped).abs() < 1e-6);
}

#[test]
fn cache_writes_kept_an_hour_are_priced_apart_else_as_the_other_writes() {
    let price = |cache_write_1h| Price {
        cache_read: Some(0.3),
        cache_write: Some(3.75),
        cache_write_1h,
        ..Price::tokens(3.0, 15.0)
    };
    let tokens = TokenCounts {
        input: 10_000,
        output: 100,
        cache_read: 1_000,
        cache_write: 8_000,
        reasoning: 0,
    };
    let parts = Parts {
        cache_write_1h: Some(6_000),
        ..Parts::default()
    };
    let cost = |price: Price| {
        let prices = Prices::new(BTreeMap::from([("m".to_owned(), price)]));
        let media = MediaUse { asked: None, parts };
        prices.cost("m", &tokens, media).unwrap() * 1e6
    };
    let base = 1_000.0 * 3.0 + 1_000.0 * 0.3 + 100.0 * 15.0;
    let fallback = base + 8_000.0 * 3.75;
    assert!((cost(price(None)) - fallback).abs() < 1e-6);
    let apart = base + 2_000.0 * 3.75 + 6_000.0 * 6.0;
    assert!((cost(price(Some(6.0))) - apart).abs() < 1e-6);
}

#[test]
fn image_output_tokens_are_priced_apart_after_audio() {
    let price = Price {
        audio_input: Some(1.0),
        image_output: Some(30.0),
        ..Price::tokens(0.3, 2.5)
    };
    let prices = Prices::new(BTreeMap::from([("m".to_owned(), price)]));
    let tokens = TokenCounts {
        input: 900,
        output: 1_292,
        ..TokenCounts::default()
    };
    let parts = Parts {
        audio_input: Some(632),
        image_input: Some(258),
        image_output: Some(1_290),
        ..Parts::default()
    };
    let media = MediaUse { asked: None, parts };
    let cost = prices.cost("m", &tokens, media).unwrap() * 1e6;
    let want = 268.0 * 0.3 + 632.0 * 1.0 + 2.0 * 2.5 + 1_290.0 * 30.0;
    assert!((cost - want).abs() < 1e-6, "{cost} {want}");
}
