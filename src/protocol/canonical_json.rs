//! The canonical JSON form of a V2 body (what Huawei's Spring Boot sample signs) and the duplicate-key check.
//!
//! Huawei's V2 sample verifies the signature over the body re-serialised by Jackson from a `TreeMap` with null
//! values left out, not over the raw bytes. koogate verifies the raw bytes first and, only when they do not match,
//! this canonical form (specified in docs/upstream-contract.md, "Signatures over a canonical body"):
//!
//! * no whitespace; objects as `{"k":v,...}`, arrays as `[v,...]`;
//! * object members sorted by key in Java `String.compareTo` order (UTF-16 code units), at every depth; members
//!   whose value is `null` left out, at every depth (`null` inside an array stays);
//! * strings as Jackson writes them: `"` and `\` escaped, `\b \t \n \f \r` short escapes, other characters below
//!   U+0020 as `\u00XX` (uppercase hex), everything else raw UTF-8 (`/`, DEL, non-ASCII, U+2028 unescaped);
//! * integers (no `.`, `e` or `E` in the text) exactly as sent, `-0` as `0` (Jackson reads Integer/Long/BigInteger);
//!   other numbers as Java's `Double.toString` of the nearest double (JDK 19+: shortest round-trip digits;
//!   `12.78`, `100.0`, `1.0E7`, `1.0E-4`); a number out of double range has no canonical form;
//! * `true`, `false`, `null` as such.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::collections::HashSet;
use std::fmt::{self, Write};

/// The body repeats a key inside one object: refused before any signature check, since the two readings (first
/// or last value wins) would let a signed body mean different things to koogate and to the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a JSON object repeats a key")]
pub struct DuplicateKey;

/// Refuses a body whose JSON repeats a key in any object. A body that is not JSON passes (signature
/// verification and then parsing judge it). One linear pass; depth is bounded by serde_json's recursion limit.
pub fn check_unique_keys(body: &[u8]) -> Result<(), DuplicateKey> {
    match serde_json::from_slice::<UniqueKeys>(body) {
        Err(e) if e.classify() == serde_json::error::Category::Data => Err(DuplicateKey),
        Ok(_) | Err(_) => Ok(()),
    }
}

/// Walks any JSON value, failing (a data error) on a repeated key.
struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    // With serde_json's `arbitrary_precision`, a number also arrives here, as a one-entry map: harmless.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value::<UniqueKeys>()?;
        }
        Ok(UniqueKeys)
    }
}

/// The canonical form of `body`, or `None` when it is not JSON or has no canonical form (a number out of range).
pub fn canonicalise(body: &[u8]) -> Option<Vec<u8>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let mut out = String::with_capacity(body.len());
    write_value(&mut out, &value)?;
    Some(out.into_bytes())
}

fn write_value(out: &mut String, value: &Value) -> Option<()> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, &n.to_string())?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> =
                map.iter().filter(|(_, v)| !v.is_null()).collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, item)?;
            }
            out.push('}');
        }
    }
    Some(())
}

/// `text` is the number as it appeared in the body (serde_json's `arbitrary_precision`).
fn write_number(out: &mut String, text: &str) -> Option<()> {
    if !text.contains(['.', 'e', 'E']) {
        out.push_str(if text == "-0" { "0" } else { text });
        return Some(());
    }
    let value: f64 = text.parse().ok()?;
    value.is_finite().then(|| out.push_str(&java_double(value)))
}

/// Java's `Double.toString` (JDK 19+): the shortest decimal that reads back as `value` (Rust's digits agree
/// except for some subnormals), as `ddd.ddd` for 10⁻³ ≤ |v| < 10⁷, else `d.dddE±n`; always a digit after the point.
fn java_double(value: f64) -> String {
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_owned();
    }
    let sign = if value < 0.0 { "-" } else { "" };
    let abs = value.abs();
    let scientific = format!("{abs:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (1e-3..1e7).contains(&abs) {
        if exponent >= 0 {
            let point = usize::try_from(exponent).unwrap_or(0) + 1;
            let padded = format!("{digits:0<point$}");
            let (int, frac) = padded.split_at(point);
            format!("{sign}{int}.{}", if frac.is_empty() { "0" } else { frac })
        } else {
            let zeros = "0".repeat(usize::try_from(-exponent - 1).unwrap_or(0));
            format!("{sign}0.{zeros}{digits}")
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{sign}{first}.{rest}E{exponent}")
    }
}

/// A JSON string as Jackson's default generator writes it.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0C}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests;
