//! Which calls are the same operation (protocol section 7), so a retry gets the recorded answer.

use super::activity::{Activity, Generation};
use super::request::UpstreamRequest;

/// The idempotency key of a state-changing call and its fingerprint, or `None` for `queryInstance`.
///
/// The key is a JSON array of its parts (absent parts are `null`), so no value can make two different operations
/// look the same, whatever characters ids contain. The generation is part of the key: a V1 `newInstance` and a
/// V2 one without `orderLineId` for the same order id are different operations. A recorded answer is replayed only when the fingerprint matches
/// too: a status change keyed by instance replays `FREEZE` after `FREEZE` (a retry) but forwards `FREEZE` after
/// `UNFREEZE` (a new operation). Debugging calls (`testFlag`) live in their own namespace.
pub fn key(call: &UpstreamRequest) -> Option<(String, String)> {
    let (order, line, instance) = (
        call.order_id.as_deref(),
        call.order_line_id.as_deref(),
        call.instance_id.as_deref(),
    );
    let product = call.product_id.as_deref();
    let pay_per_use = call.terms.charging_mode.as_deref() == Some("ON_DEMAND");
    let (kind, parts, fingerprint): (&str, &[Option<&str>], _) = match call.activity {
        Activity::QueryInstance => return None,
        Activity::NewInstance => match (call.generation, line.is_some(), pay_per_use) {
            (Generation::V2, true, _) => ("order", &[order, line], None),
            (_, _, true) => ("order-product", &[order, product], None),
            _ => ("order", &[order], None),
        },
        Activity::RefreshInstance => (
            "refresh",
            &[instance, order, line],
            call.terms.expire_time.clone(),
        ),
        Activity::UpgradeInstance => ("upgrade", &[instance, order, line], None),
        Activity::ReleaseInstance => ("release", &[instance], None),
        Activity::ExpireInstance => ("expire", &[instance, order], None),
        Activity::UpdateInstanceStatus => ("status", &[instance], call.status.clone()),
        Activity::OrderNotify => ("notify", &[order, line], None),
    };
    let namespace = if call.test_flag { "test" } else { "real" };
    // `[namespace, generation, [kind, ids…]]`, written as compact JSON: the stored key string records written by
    // earlier versions were made with (`json!(…).to_string()`), so they still match after an upgrade.
    let mut out = Vec::with_capacity(KEY_CAPACITY);
    out.push(b'[');
    push_str(&mut out, namespace);
    out.push(b',');
    push_str(&mut out, call.generation.name());
    out.push(b',');
    push_parts(&mut out, kind, parts);
    out.push(b']');
    // Only JSON strings and punctuation were written: always UTF-8.
    let key = String::from_utf8(out).ok()?;
    Some((key, fingerprint.unwrap_or_default()))
}

/// Enough for KooGallery's ids (a few dozen characters each) without growing.
const KEY_CAPACITY: usize = 160;

/// `[kind, parts…]`, an absent part as `null`.
fn push_parts(out: &mut Vec<u8>, kind: &str, parts: &[Option<&str>]) {
    out.push(b'[');
    push_str(out, kind);
    for part in parts {
        out.push(b',');
        match part {
            Some(value) => push_str(out, value),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b']');
}

/// A JSON string, escaped exactly as `serde_json` escapes it.
fn push_str(out: &mut Vec<u8>, value: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::request::{OrderTerms, UpstreamRequest};
    use serde_json::{json, Map};

    /// How keys were built before (`json!` then `to_string`): the stored keys of earlier versions.
    fn key_as_before(call: &UpstreamRequest) -> Option<(String, String)> {
        let (order, line, instance) = (&call.order_id, &call.order_line_id, &call.instance_id);
        let (parts, fingerprint) = match call.activity {
            Activity::QueryInstance => return None,
            Activity::NewInstance => {
                let pay_per_use = call.terms.charging_mode.as_deref() == Some("ON_DEMAND");
                let parts = match (call.generation, line.is_some(), pay_per_use) {
                    (Generation::V2, true, _) => json!(["order", order, line]),
                    (_, _, true) => json!(["order-product", order, call.product_id]),
                    _ => json!(["order", order]),
                };
                (parts, None)
            }
            Activity::RefreshInstance => (
                json!(["refresh", instance, order, line]),
                call.terms.expire_time.clone(),
            ),
            Activity::UpgradeInstance => (json!(["upgrade", instance, order, line]), None),
            Activity::ReleaseInstance => (json!(["release", instance]), None),
            Activity::ExpireInstance => (json!(["expire", instance, order]), None),
            Activity::UpdateInstanceStatus => (json!(["status", instance]), call.status.clone()),
            Activity::OrderNotify => (json!(["notify", order, line]), None),
        };
        let namespace = if call.test_flag { "test" } else { "real" };
        Some((
            json!([namespace, call.generation.name(), parts]).to_string(),
            fingerprint.unwrap_or_default(),
        ))
    }

    #[test]
    fn keys_are_the_strings_earlier_versions_stored() {
        let odd = ["CS1", "a\"b\\c", "\u{1}\n\t", "é/ü\u{2028}", ""];
        for activity in Activity::ALL {
            for generation in [Generation::V1, Generation::V2] {
                for (i, id) in odd.iter().enumerate() {
                    let other = odd[(i + 1) % odd.len()];
                    let mut c = call(
                        activity,
                        Some(id),
                        (i % 2 == 0).then_some(other),
                        Some(other),
                    );
                    c.generation = generation;
                    c.test_flag = i % 3 == 0;
                    c.product_id = (i % 2 == 1).then(|| id.to_string());
                    c.status = Some(other.into());
                    c.terms.expire_time = Some(id.to_string());
                    c.terms.charging_mode = (i % 2 == 1).then(|| "ON_DEMAND".into());
                    assert_eq!(
                        key(&c),
                        key_as_before(&c),
                        "{activity:?} {generation:?} {id:?}"
                    );
                }
            }
        }
        let bare = call(Activity::ReleaseInstance, None, None, None);
        assert_eq!(key(&bare).unwrap().0, r#"["real","v2",["release",null]]"#);
    }

    fn call(
        activity: Activity,
        order: Option<&str>,
        line: Option<&str>,
        instance: Option<&str>,
    ) -> UpstreamRequest {
        UpstreamRequest {
            contract_version: 1,
            request_id: "r".into(),
            activity,
            generation: Generation::V2,
            test_flag: false,
            business_id: None,
            order_id: order.map(Into::into),
            order_line_id: line.map(Into::into),
            instance_id: instance.map(Into::into),
            instance_ids: None,
            product_id: None,
            sku_code: None,
            scene: None,
            trial_to_formal: None,
            status: None,
            terms: OrderTerms::default(),
            amount: None,
            disk_size: None,
            band_width: None,
            buyer: None,
            extend_params: None,
            orders: None,
            order: None,
            order_lookup: None,
            raw: crate::protocol::request::Raw::Params(Map::new()),
            traceparent: None,
        }
    }

    #[test]
    fn ids_containing_separators_never_collide() {
        let a = key(&call(Activity::NewInstance, Some("CS1:X"), Some("Y"), None)).unwrap();
        let b = key(&call(Activity::NewInstance, Some("CS1"), Some("X:Y"), None)).unwrap();
        assert_ne!(a, b);
        let absent = key(&call(Activity::RefreshInstance, None, None, Some("t:1"))).unwrap();
        let present = key(&call(Activity::RefreshInstance, Some("1"), None, Some("t"))).unwrap();
        assert_ne!(absent, present);
        let empty = key(&call(Activity::ReleaseInstance, None, None, Some(""))).unwrap();
        let missing = key(&call(Activity::ReleaseInstance, None, None, None)).unwrap();
        assert_ne!(empty, missing);
    }

    #[test]
    fn v1_and_v2_new_instance_without_an_order_line_do_not_share_a_key() {
        let v2 = call(Activity::NewInstance, Some("O"), None, None);
        let v1 = UpstreamRequest {
            generation: Generation::V1,
            ..v2.clone()
        };
        assert_ne!(key(&v1), key(&v2));
    }

    #[test]
    fn retries_share_a_key_and_debugging_calls_have_their_own() {
        let first = call(Activity::NewInstance, Some("O"), Some("O-1"), None);
        assert_eq!(
            key(&first),
            key(&UpstreamRequest {
                request_id: "other".into(),
                ..first.clone()
            })
        );
        assert_ne!(
            key(&first),
            key(&UpstreamRequest {
                test_flag: true,
                ..first.clone()
            })
        );
        assert_eq!(
            key(&call(Activity::QueryInstance, None, None, Some("i"))),
            None
        );
    }
}
