//! The `Body-Sign` response header (protocol section 4).

use super::mac::hmac_sha256;
use base64::{engine::general_purpose::STANDARD, Engine};

/// The header name, exactly as KooGallery expects it.
pub const HEADER: &str = "Body-Sign";

/// base64(HMAC-SHA256(key, body)) over the exact bytes written.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    STANDARD.encode(hmac_sha256(key, &[body]))
}

/// The full header value, with the space after `signature=` that KooGallery's samples emit.
pub fn header_value(key: &[u8], body: &[u8]) -> String {
    format!(
        "sign_type=\"HMAC-SHA256\", signature= \"{}\"",
        signature(key, body)
    )
}

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
