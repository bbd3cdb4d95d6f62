//! Cost from `[prices.MODEL]` (USD per million tokens), as the contract defines it: uncached
//! input at `input`, cache reads at `cache_read`, cache writes at `cache_write` (either falling
//! back to `input` when not priced), all output (reasoning included) at `output`.

use std::collections::BTreeMap;

use tailmeter_exporters::TokenCounts;

use crate::config::Price;

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

    /// The cost of `tokens` on `model`, or None when the model has no price.
    pub fn cost(&self, model: &str, tokens: &TokenCounts) -> Option<f64> {
        let price = self.by_model.get(model)?;
        let uncached = tokens
            .input
            .saturating_sub(tokens.cache_read)
            .saturating_sub(tokens.cache_write);
        let per_million = uncached as f64 * price.input
            + tokens.cache_read as f64 * price.cache_read.unwrap_or(price.input)
            + tokens.cache_write as f64 * price.cache_write.unwrap_or(price.input)
            + tokens.output as f64 * price.output;
        Some(per_million / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_each_part_and_falls_back_to_input() {
        let mut by_model = BTreeMap::new();
        by_model.insert(
            "m".to_owned(),
            Price {
                input: 2.0,
                output: 8.0,
                cache_read: Some(0.5),
                cache_write: None,
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
        let cost = prices.cost("m", &tokens).unwrap();
        assert!((cost - 0.0022).abs() < 1e-12, "{cost}");
        assert_eq!(prices.cost("other", &tokens), None);
    }
}
