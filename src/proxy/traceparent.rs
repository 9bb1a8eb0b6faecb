//! W3C Trace Context: an incoming `traceparent` is kept (log line, journal) and passed on to the upstream as is.
//!
//! koogate takes no part in the trace (it exports no spans), so it neither invents a `traceparent` nor rewrites the
//! parent id: the upstream's spans hang off the caller's, and calls without one are correlated by
//! `X-Koogate-Request-Id` instead. A header that is not a valid version-00 value is dropped, never forwarded.

use http::HeaderMap;

pub const HEADER: &str = "traceparent";

/// The request's `traceparent` when it is well formed: `00-<32 hex>-<16 hex>-<2 hex>`, lower case, ids not all zero.
pub fn from_headers(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(HEADER).iter();
    let value = values.next()?.to_str().ok()?;
    // Two values are ambiguous: the specification says to ignore both.
    if values.next().is_some() {
        return None;
    }
    valid(value).then(|| value.to_owned())
}

fn valid(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    matches!(parts.as_slice(), [version, trace, parent, flags]
        if *version == "00" && hex(trace, 32) && nonzero(trace) && hex(parent, 16) && nonzero(parent) && hex(flags, 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(HEADER, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn a_valid_traceparent_is_kept_as_is() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(from_headers(&headers(&[tp])).as_deref(), Some(tp));
    }

    #[test]
    fn malformed_or_repeated_traceparents_are_dropped() {
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(from_headers(&headers(&[bad])), None, "{bad}");
        }
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(from_headers(&headers(&[tp, tp])), None);
        assert_eq!(from_headers(&HeaderMap::new()), None);
    }
}
