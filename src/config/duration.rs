//! Duration keys: an integer in the key's unit (`deadline_ms = 4500`) or a string with a unit (`"4.5s"`).

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// What a duration key accepts; also the `expected …` of every error, which the config reader keys on.
const EXPECTED: &str = "a duration: an integer in the key's unit, or a string such as \"500ms\", \"4.5s\", \"2m\", \"1h\"";

/// Milliseconds from `text` such as `500ms`, `4.5s`, `2m` or `1h`; `None` if it is not one, or is not a whole
/// number of `unit_ms` (a `_seconds` key given `1.5s`).
pub fn parse(text: &str, unit_ms: u64) -> Option<u64> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits_end);
    let scale: u64 = match suffix.trim_start() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) || fraction.len() > 9 {
        return None;
    }
    let mut ms = whole.parse::<u64>().ok()?.checked_mul(scale)?;
    if !fraction.is_empty() {
        let denominator = 10u64.pow(fraction.len() as u32);
        let part = fraction.parse::<u64>().ok()?.checked_mul(scale)?;
        if part % denominator != 0 {
            return None;
        }
        ms = ms.checked_add(part / denominator)?;
    }
    (ms % unit_ms == 0).then_some(ms / unit_ms)
}

struct InUnit {
    unit_ms: u64,
}

impl Visitor<'_> for InUnit {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        Ok(value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
        u64::try_from(value).map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<u64, E> {
        parse(value, self.unit_ms).ok_or_else(|| {
            let whole = if self.unit_ms == 1 {
                ""
            } else {
                " (a whole number of seconds)"
            };
            E::custom(format!(
                "invalid duration \"{value}\"{whole}, expected {EXPECTED}"
            ))
        })
    }
}

/// A `_ms` key.
pub fn ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(InUnit { unit_ms: 1 })
}

/// An optional `_ms` key (used with `#[serde(default)]`).
pub fn opt_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    ms(deserializer).map(Some)
}

/// A `_seconds` key.
pub fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(InUnit { unit_ms: 1_000 })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn durations_with_units_are_read_exactly() {
        assert_eq!(parse("4.5s", 1), Some(4_500));
        assert_eq!(parse("500ms", 1), Some(500));
        assert_eq!(parse("2m", 1), Some(120_000));
        assert_eq!(parse("1h", 1), Some(3_600_000));
        assert_eq!(parse("0.25s", 1), Some(250));
        assert_eq!(parse("4h", 1_000), Some(14_400));
    }

    #[test]
    fn durations_without_unit_or_finer_than_the_unit_are_refused() {
        for bad in [
            "4.5", "s", ".5s", "1.5ms", "4.5x", "-1s", "1e3ms", "", "1.s5",
        ] {
            assert_eq!(parse(bad, 1), None, "{bad}");
        }
        assert_eq!(parse("1.5s", 1_000), None);
        assert_eq!(parse("99999999999999999999h", 1), None);
    }
}
