//! Human-written byte sizes (`"32MiB"`) and durations (`"1h30m"`), both ways.
//!
//! Parsing is strict (integers only, known units, no overflow) so a typo is
//! an error rather than a silently different limit; formatting gives back
//! the shortest exact spelling for the `check` summary.

use std::time::Duration;

/// Size units, largest first, as written in the file.
const SIZE_UNITS: [(&str, u64); 7] = [
    ("GiB", 1 << 30),
    ("GB", 1_000_000_000),
    ("MiB", 1 << 20),
    ("MB", 1_000_000),
    ("KiB", 1 << 10),
    ("KB", 1_000),
    ("B", 1),
];

/// Duration units, largest first.
const DURATION_UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses `"32MiB"`, `"512 KB"`, `"1024"` (bytes); units B, KB, KiB, MB, MiB, GB, GiB,
/// case-insensitive.
pub(super) fn parse_size(text: &str) -> Result<u64, String> {
    let help = "expected a size such as \"32MiB\" (units B, KB, KiB, MB, MiB, GB, GiB)";
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    if number.is_empty() {
        return Err(format!("`{text}` does not start with a number; {help}"));
    }
    let unit = unit.trim_start();
    let multiplier = if unit.is_empty() {
        1
    } else {
        SIZE_UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|&(_, m)| m)
            .ok_or_else(|| format!("unknown unit `{unit}` in `{text}`; {help}"))?
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses `"24h"`, `"30m"`, `"7d"`, `"1h30m"`, `"45s"`, `"500ms"`: integers each followed
/// by a unit (d, h, m, s, ms), summed.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let help = "expected a duration such as \"30s\", \"24h\" or \"1h30m\" (units d, h, m, s, ms)";
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(format!("empty duration; {help}"));
    }
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(format!("`{text}`: expected a number at `{rest}`; {help}"));
        }
        let (number, tail) = rest.split_at(digits_end);
        let tail = tail.trim_start();
        let unit_end = tail
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        if unit.is_empty() {
            return Err(format!("`{text}`: `{number}` has no unit; {help}"));
        }
        let per_unit = DURATION_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|&(_, ms)| ms)
            .ok_or_else(|| format!("unknown unit `{unit}` in `{text}`; {help}"))?;
        total_ms = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(per_unit))
            .and_then(|ms| ms.checked_add(total_ms))
            .ok_or_else(|| format!("`{text}` is too long"))?;
        rest = tail.trim_start();
    }
    Ok(Duration::from_millis(total_ms))
}

/// The shortest exact spelling of `bytes`: `"32MiB"`, `"1500B"`.
pub(super) fn format_size(bytes: u64) -> String {
    SIZE_UNITS
        .iter()
        .find(|&&(_, m)| bytes != 0 && bytes.checked_rem(m) == Some(0))
        .map_or_else(
            || "0B".to_owned(),
            |(unit, m)| format!("{}{unit}", bytes / m),
        )
}

/// A duration as `"1h30m"`, `"24h"`, `"0s"` (whole milliseconds).
pub fn format_duration(duration: Duration) -> String {
    let mut rest = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if rest == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, per_unit) in DURATION_UNITS {
        // "24h" reads better than "1d"; days only from two on.
        if rest >= per_unit && !(unit == "d" && rest < 2 * per_unit) {
            out.push_str(&format!("{}{unit}", rest / per_unit));
            rest %= per_unit;
        }
    }
    out
}
