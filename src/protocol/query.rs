//! Raw query-string parsing that keeps a literal `+` as `+` (KooGallery sends unencoded base64 in queries).

use percent_encoding::percent_decode_str;
use std::borrow::Cow;

/// Why a query string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("query parameter `{0}` is repeated")]
    Repeated(&'static str),
    #[error("query parameter `{0}` is not valid percent-encoded UTF-8")]
    NotUtf8(&'static str),
}

/// Returns the percent-decoded value of each name in `names` (in the same order), `None` where absent.
///
/// Unlike `application/x-www-form-urlencoded`, `+` is not turned into a space. A parameter given twice is an
/// error, because two values for a signed field make the signature ambiguous.
pub fn extract<'q, const N: usize>(
    query: &'q str,
    names: [&'static str; N],
) -> Result<[Option<Cow<'q, str>>; N], QueryError> {
    let mut found: [Option<Cow<'q, str>>; N] = std::array::from_fn(|_| None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(slot) = names.iter().position(|n| decoded_equals(raw_name, n)) else {
            continue;
        };
        let name = names[slot];
        if found[slot].is_some() {
            return Err(QueryError::Repeated(name));
        }
        let value = percent_decode_str(raw_value)
            .decode_utf8()
            .map_err(|_| QueryError::NotUtf8(name))?;
        found[slot] = Some(value);
    }
    Ok(found)
}

fn decoded_equals(raw: &str, name: &str) -> bool {
    raw == name
        || percent_decode_str(raw)
            .decode_utf8()
            .is_ok_and(|d| d == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_stays_plus_and_percent_escapes_decode() {
        let [a, b, c] = extract("a=x+y&b=x%2By%20z&d=1", ["a", "b", "c"]).unwrap();
        assert_eq!(a.as_deref(), Some("x+y"));
        assert_eq!(b.as_deref(), Some("x+y z"));
        assert_eq!(c, None);
    }

    #[test]
    fn repeated_parameter_is_an_error() {
        assert_eq!(extract("a=1&a=2", ["a"]), Err(QueryError::Repeated("a")));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        assert_eq!(extract("a=%FF", ["a"]), Err(QueryError::NotUtf8("a")));
    }

    #[test]
    fn names_without_values_read_as_empty() {
        let [a] = extract("a&b=2", ["a"]).unwrap();
        assert_eq!(a.as_deref(), Some(""));
    }
}
