//! The `Body-Sign` response header (protocol section 4).

use super::mac::{hmac_sha256, PreparedKey};
use base64::{engine::general_purpose::STANDARD, Engine};

/// The header name, exactly as KooGallery expects it.
pub const HEADER: &str = "Body-Sign";

/// base64(HMAC-SHA256(key, body)) over the exact bytes written.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    STANDARD.encode(hmac_sha256(key, &[body]))
}

/// The full header value, with the space after `signature=` that KooGallery's samples emit.
pub fn header_value(key: &[u8], body: &[u8]) -> String {
    header_value_prepared(&PreparedKey::new(key), body)
}

/// [`header_value`] with the key's HMAC schedule computed once (the request path).
pub fn header_value_prepared(key: &PreparedKey, body: &[u8]) -> String {
    let mut value = String::with_capacity(HEADER_VALUE_LEN);
    value.push_str("sign_type=\"HMAC-SHA256\", signature= \"");
    STANDARD.encode_string(key.mac(&[body]), &mut value);
    value.push('"');
    value
}

/// `sign_type="HMAC-SHA256", signature= "` + 44 base64 characters + `"`.
const HEADER_VALUE_LEN: usize = 37 + 44 + 1;

/// Extracts the base64 signature from a header value; tolerant of spacing, strict about both quoted fields.
pub fn parse_header(value: &str) -> Option<&str> {
    let mut sign_type = None;
    let mut signature = None;
    for part in value.split(',') {
        let (name, quoted) = part.split_once('=')?;
        let quoted = quoted.trim();
        let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
        match name.trim() {
            "sign_type" => sign_type = Some(inner),
            "signature" => signature = Some(inner),
            _ => return None,
        }
    }
    (sign_type? == "HMAC-SHA256").then_some(signature?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prepared_header_value_is_the_documented_format() {
        let (key, body) = ("test-access-key-0001", b"{}");
        let value = header_value_prepared(&PreparedKey::new(key.as_bytes()), body);
        let expected = format!(
            "sign_type=\"HMAC-SHA256\", signature= \"{}\"",
            signature(key.as_bytes(), body)
        );
        assert_eq!(value, expected);
        assert_eq!(value.len(), HEADER_VALUE_LEN);
        assert_eq!(
            parse_header(&value),
            Some(&signature(key.as_bytes(), body)[..])
        );
    }

    /// Protocol section 8, "Body-Sign".
    #[test]
    fn body_sign_vectors_match() {
        let cases: [(&str, &str, &str); 3] = [
            (
                "abcde",
                "a=1&b=2",
                "4sbEVd9vKZQGPRRr8TyjWery0lZV7tetTnzfX3Gb9Ok=",
            ),
            (
                "test-access-key-0001",
                r#"{"resultCode":"000000","resultMsg":"success.","instanceId":"instance-0001"}"#,
                "NES9zi0AKjFoEsx8i6DgTUcTiA4QLnHZv2/0FFDGAUo=",
            ),
            (
                "test-access-key-0001",
                r#"{"resultCode":"000000", "resultMsg":"success.", "instanceId":"instance-0001"}"#,
                "HD65iFa8Z5VuzJUA5y7EmS4wtZNyWqniqaBKud7a5fs=",
            ),
        ];
        for (key, body, expected) in cases {
            assert_eq!(
                signature(key.as_bytes(), body.as_bytes()),
                expected,
                "{body}"
            );
        }
    }

    #[test]
    fn header_has_the_documented_shape_and_parses_back() {
        let value = header_value(b"abcde", b"a=1&b=2");
        assert_eq!(
            value,
            r#"sign_type="HMAC-SHA256", signature= "4sbEVd9vKZQGPRRr8TyjWery0lZV7tetTnzfX3Gb9Ok=""#
        );
        assert_eq!(
            parse_header(&value),
            Some("4sbEVd9vKZQGPRRr8TyjWery0lZV7tetTnzfX3Gb9Ok=")
        );
    }

    #[test]
    fn malformed_headers_do_not_parse() {
        for v in [
            "",
            "signature=\"x\"",
            "sign_type=\"HMAC-SHA1\", signature=\"x\"",
            "sign_type=HMAC-SHA256, signature=\"x\"",
        ] {
            assert_eq!(parse_header(v), None, "{v}");
        }
    }
}
