//! V2 request signatures (protocol section 2): signing, and verification that yields a [`Verified`] call.
//!
//! ```text
//! payloadMac = HMAC-SHA256(accessKey, raw body)
//! signature  = hex(HMAC-SHA256(accessKey, accessKey + nonce + timestamp + lowercase_hex(payloadMac)))
//! ```

pub use super::auth::AuthError;
use super::auth::{check_freshness, matching_key};
use super::canonical_json;
use super::keys::AccessKeys;
use super::mac::{hmac_sha256, PreparedKey};
use super::query;
use super::verified::{Payload, SignedForm, Verified};
use bytes::Bytes;
use std::time::Duration;

/// Longest nonce accepted. KooGallery sends 16 to 64 characters; the bound keeps the replay cache small.
pub const MAX_NONCE_LEN: usize = 128;

/// The signed query parameters of a V2 call, checked for shape but not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedQuery {
    signature: [u8; 32],
    timestamp: String,
    timestamp_ms: u64,
    nonce: String,
}

impl SignedQuery {
    /// Reads `signature`, `timestamp` and `nonce` from a raw query string. Other parameters are ignored: they are
    /// not covered by the signature.
    pub fn parse(raw_query: &str) -> Result<Self, AuthError> {
        let [signature, timestamp, nonce] =
            query::extract(raw_query, ["signature", "timestamp", "nonce"])?;
        let signature = signature.ok_or(AuthError::MissingParameter("signature"))?;
        let timestamp = timestamp.ok_or(AuthError::MissingParameter("timestamp"))?;
        let nonce = nonce.ok_or(AuthError::MissingParameter("nonce"))?;

        let mut sig = [0u8; 32];
        hex::decode_to_slice(signature.as_bytes(), &mut sig)
            .map_err(|_| AuthError::MalformedParameter("signature"))?;
        // Unix milliseconds: 13 digits today; allow a little headroom but never an unbounded number.
        if timestamp.is_empty()
            || timestamp.len() > 16
            || !timestamp.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(AuthError::MalformedParameter("timestamp"));
        }
        let timestamp_ms = timestamp
            .parse()
            .map_err(|_| AuthError::MalformedParameter("timestamp"))?;
        if nonce.is_empty()
            || nonce.len() > MAX_NONCE_LEN
            || !nonce.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(AuthError::MalformedParameter("nonce"));
        }
        Ok(Self {
            signature: sig,
            timestamp: timestamp.into_owned(),
            timestamp_ms,
            nonce: nonce.into_owned(),
        })
    }

    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }
}

/// The inner step: a MAC of the body. One documentation copy uses plain SHA-256 here; two sources confirm the
/// keyed form, and this is the single place to change if a live console ever proves otherwise.
pub fn payload_mac(key: &[u8], body: &[u8]) -> [u8; 32] {
    hmac_sha256(key, &[body])
}

/// The 32-byte V2 signature of a call.
pub fn signature(key: &[u8], nonce: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
    signature_prepared(&PreparedKey::new(key), key, nonce, timestamp, body)
}

/// [`signature`] with the key's HMAC schedule computed once (`prepared` is `key` prepared); both MACs clone it.
fn signature_prepared(
    prepared: &PreparedKey,
    key: &[u8],
    nonce: &str,
    timestamp: &str,
    body: &[u8],
) -> [u8; 32] {
    let mut inner = [0u8; 64];
    // Cannot fail: 32 bytes are 64 hex digits.
    let _ = hex::encode_to_slice(prepared.mac(&[body]), &mut inner);
    prepared.mac(&[key, nonce.as_bytes(), timestamp.as_bytes(), &inner])
}

/// The query string KooGallery would send for `body` (lowercase hex signature).
pub fn signed_query(key: &[u8], nonce: &str, timestamp_ms: u64, body: &[u8]) -> String {
    let timestamp = timestamp_ms.to_string();
    let sig = hex::encode(signature(key, nonce, &timestamp, body));
    format!(
        "signature={sig}&timestamp={timestamp}&nonce={}",
        percent_encode_nonce(nonce)
    )
}

fn percent_encode_nonce(nonce: &str) -> String {
    percent_encoding::utf8_percent_encode(nonce, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Checks the timestamp window (cheap, first), refuses a body that repeats a JSON key, and then checks the
/// signature against every configured key, in constant time per key: over the raw body first, and only when that
/// fails over its canonical form ([`canonical_json`]), so the extra work is spent only on mismatching calls.
/// `now_ms` is injected so tests control time.
pub fn verify(
    keys: &AccessKeys,
    query: SignedQuery,
    body: Bytes,
    now_ms: u64,
    window: Duration,
) -> Result<Verified, AuthError> {
    let expires_ms = check_freshness(query.timestamp_ms, now_ms, window)?;
    canonical_json::check_unique_keys(&body)?;
    let over = |bytes: &[u8]| {
        matching_key(keys, &query.signature, |key| {
            signature_prepared(
                key.hmac(),
                key.expose(),
                &query.nonce,
                &query.timestamp,
                bytes,
            )
        })
    };
    let (key, form) = match over(&body) {
        Ok(key) => (key, SignedForm::Raw),
        Err(mismatch) => {
            let canonical = canonical_json::canonicalise(&body)
                .filter(|c| c[..] != body[..])
                .ok_or(mismatch)?;
            (over(&canonical)?, SignedForm::Canonical)
        }
    };
    Ok(
        Verified::new(key, query.nonce, (expires_ms, now_ms), Payload::V2(body))
            .with_signed_form(form),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::keys::AccessKey;
    use crate::protocol::query::QueryError;
    use proptest::prelude::*;

    const KEY: &str = "test-access-key-0001";
    const NONCE: &str = "7F3A9C2E5B1D4F6A8C0E2B4D6F8A1C3E";
    const TS: u64 = 1_700_000_000_000;
    const BODY: &str = r#"{"activity":"newInstance","businessId":"1a2b3c4d-0000-0000-0000-000000000001","orderId":"CS2306070000ABCDE","orderLineId":"CS2306070000ABCDE-000001","testFlag":"1"}"#;
    const WINDOW: Duration = Duration::from_secs(60);

    fn keys(list: &[&str]) -> AccessKeys {
        AccessKeys::new(
            list.iter()
                .enumerate()
                .map(|(i, k)| AccessKey::new(format!("k{i}"), *k))
                .collect(),
        )
        .unwrap()
    }

    fn query_for(sig_hex: &str) -> SignedQuery {
        SignedQuery::parse(&format!("signature={sig_hex}&timestamp={TS}&nonce={NONCE}")).unwrap()
    }

    /// Protocol section 8, vector V2-B.
    #[test]
    fn v2b_vector_matches() {
        assert_eq!(
            hex::encode(payload_mac(KEY.as_bytes(), BODY.as_bytes())),
            "d95312519396f1f4c2027fe762f168444edb40990be607bb8396393735ab060a"
        );
        assert_eq!(
            hex::encode(signature(
                KEY.as_bytes(),
                NONCE,
                &TS.to_string(),
                BODY.as_bytes()
            )),
            "b3b0332111128d8538b3b5d7708286ff568ecadf50b8d5b4697daeff3aa9e940"
        );
    }

    #[test]
    fn v2b_vector_verifies_in_either_hex_case() {
        for sig in [
            "b3b0332111128d8538b3b5d7708286ff568ecadf50b8d5b4697daeff3aa9e940",
            "B3B0332111128D8538B3B5D7708286FF568ECADF50B8D5B4697DAEFF3AA9E940",
        ] {
            let v = verify(
                &keys(&[KEY]),
                query_for(sig),
                Bytes::from_static(BODY.as_bytes()),
                TS,
                WINDOW,
            )
            .unwrap();
            assert_eq!(
                v.replay_key(),
                format!(
                    "v2:{}",
                    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(NONCE))
                )
            );
            assert_eq!(
                v.replay_expires_ms(),
                TS + 60_000 + crate::protocol::verified::REPLAY_MARGIN.as_millis() as u64
            );
            assert!(matches!(v.payload(), Payload::V2(b) if b.as_ref() == BODY.as_bytes()));
        }
    }

    #[test]
    fn second_key_of_a_rotation_verifies_and_is_reported() {
        let q =
            SignedQuery::parse(&signed_query(KEY.as_bytes(), NONCE, TS, BODY.as_bytes())).unwrap();
        let v = verify(
            &keys(&["old-key", KEY]),
            q,
            Bytes::from_static(BODY.as_bytes()),
            TS,
            WINDOW,
        )
        .unwrap();
        assert_eq!(v.key(), keys(&["a", "b"]).iter().nth(1).unwrap().0);
    }

    #[test]
    fn wrong_key_is_rejected() {
        let q = SignedQuery::parse(&signed_query(b"other", NONCE, TS, BODY.as_bytes())).unwrap();
        let err = verify(
            &keys(&[KEY]),
            q,
            Bytes::from_static(BODY.as_bytes()),
            TS,
            WINDOW,
        )
        .unwrap_err();
        assert_eq!(err, AuthError::SignatureMismatch);
    }

    #[test]
    fn stale_and_future_timestamps_are_rejected_at_the_window_edge() {
        let q = || {
            SignedQuery::parse(&signed_query(KEY.as_bytes(), NONCE, TS, BODY.as_bytes())).unwrap()
        };
        let body = || Bytes::from_static(BODY.as_bytes());
        let k = keys(&[KEY]);
        assert!(verify(&k, q(), body(), TS + 60_000, WINDOW).is_ok());
        assert_eq!(
            verify(&k, q(), body(), TS + 60_001, WINDOW).unwrap_err(),
            AuthError::StaleTimestamp
        );
        assert!(verify(&k, q(), body(), TS - 60_000, WINDOW).is_ok());
        assert_eq!(
            verify(&k, q(), body(), TS - 60_001, WINDOW).unwrap_err(),
            AuthError::FutureTimestamp
        );
    }

    #[test]
    fn malformed_query_parameters_are_rejected() {
        let sig = "b3b0332111128d8538b3b5d7708286ff568ecadf50b8d5b4697daeff3aa9e940";
        let cases = [
            (
                format!("timestamp={TS}&nonce={NONCE}"),
                AuthError::MissingParameter("signature"),
            ),
            (
                format!("signature={sig}&nonce={NONCE}"),
                AuthError::MissingParameter("timestamp"),
            ),
            (
                format!("signature={sig}&timestamp={TS}"),
                AuthError::MissingParameter("nonce"),
            ),
            (
                format!("signature=zz{}&timestamp={TS}&nonce=n", &sig[2..]),
                AuthError::MalformedParameter("signature"),
            ),
            (
                format!("signature={}&timestamp={TS}&nonce=n", &sig[2..]),
                AuthError::MalformedParameter("signature"),
            ),
            (
                format!("signature={sig}&timestamp=17e11&nonce=n"),
                AuthError::MalformedParameter("timestamp"),
            ),
            (
                format!("signature={sig}&timestamp=-1&nonce=n"),
                AuthError::MalformedParameter("timestamp"),
            ),
            (
                format!("signature={sig}&timestamp=99999999999999999&nonce=n"),
                AuthError::MalformedParameter("timestamp"),
            ),
            (
                format!("signature={sig}&timestamp={TS}&nonce="),
                AuthError::MalformedParameter("nonce"),
            ),
            (
                format!("signature={sig}&timestamp={TS}&nonce=a%20b"),
                AuthError::MalformedParameter("nonce"),
            ),
            (
                format!("signature={sig}&timestamp={TS}&nonce={}", "n".repeat(129)),
                AuthError::MalformedParameter("nonce"),
            ),
            (
                format!("signature={sig}&signature={sig}&timestamp={TS}&nonce=n"),
                QueryError::Repeated("signature").into(),
            ),
        ];
        for (q, expected) in cases {
            assert_eq!(SignedQuery::parse(&q).unwrap_err(), expected, "{q}");
        }
    }

    #[test]
    fn unsigned_extra_query_parameters_are_ignored() {
        let q = format!(
            "{}&product=abc",
            signed_query(KEY.as_bytes(), NONCE, TS, BODY.as_bytes())
        );
        assert!(verify(
            &keys(&[KEY]),
            SignedQuery::parse(&q).unwrap(),
            Bytes::from_static(BODY.as_bytes()),
            TS,
            WINDOW
        )
        .is_ok());
    }

    proptest! {
        /// Any single flipped byte of the body fails verification.
        #[test]
        fn any_flipped_body_byte_fails(index in 0usize..BODY.len(), flip in 1u8..=255) {
            let mut body = BODY.as_bytes().to_vec();
            body[index] ^= flip;
            let q = SignedQuery::parse(&signed_query(KEY.as_bytes(), NONCE, TS, BODY.as_bytes())).unwrap();
            prop_assert_eq!(verify(&keys(&[KEY]), q, Bytes::from(body), TS, WINDOW).unwrap_err(), AuthError::SignatureMismatch);
        }

        /// Any changed nonce or timestamp fails verification.
        #[test]
        fn changed_nonce_or_timestamp_fails(nonce in "[A-Za-z0-9]{1,64}", delta in 1u64..30_000) {
            prop_assume!(nonce != NONCE);
            let sig = hex::encode(signature(KEY.as_bytes(), NONCE, &TS.to_string(), BODY.as_bytes()));
            let body = || Bytes::from_static(BODY.as_bytes());
            let other_nonce = SignedQuery::parse(&format!("signature={sig}&timestamp={TS}&nonce={nonce}")).unwrap();
            prop_assert!(verify(&keys(&[KEY]), other_nonce, body(), TS, WINDOW).is_err());
            let other_ts = SignedQuery::parse(&format!("signature={sig}&timestamp={}&nonce={NONCE}", TS + delta)).unwrap();
            prop_assert!(verify(&keys(&[KEY]), other_ts, body(), TS, WINDOW).is_err());
        }
    }
}
