//! Verified KooGallery bodies turned into the one normalised JSON shape the upstream receives.
//!
//! The contract is documented in `docs/upstream-contract.md` and `docs/schema/upstream-request.schema.json`.

use super::activity::{Activity, Generation};
use super::timefmt::expire_time_to_rfc3339;
use super::verified::{Payload, Verified};
use serde::Serialize;
use serde_json::{Map, Value};

/// Version of the upstream contract; bumped only for incompatible changes.
pub const CONTRACT_VERSION: u32 = 1;
/// Longest `activity` KooGallery documents.
const MAX_ACTIVITY_LEN: usize = 32;
/// Longest id accepted in any field. Real ids are under 64 characters; the bound keeps upstream input sane.
const MAX_ID_LEN: usize = 256;
/// `queryInstance` carries at most this many ids.
pub const MAX_QUERY_IDS: usize = 100;

/// Why a verified body is not a valid call. Every variant maps to result code `000002`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("body is not valid JSON")]
    NotJson,
    #[error("body is not a JSON object")]
    NotObject,
    #[error("field `activity` is missing")]
    MissingActivity,
    #[error("activity is not supported")]
    UnknownActivity,
    #[error("mandatory field `{0}` is missing or empty")]
    MissingField(&'static str),
    #[error("field `{0}` has an invalid value")]
    InvalidField(&'static str),
}

/// What the upstream receives: canonical activity, generation, ids, a request id, and the raw fields.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamRequest {
    pub contract_version: u32,
    pub request_id: String,
    pub activity: Activity,
    pub generation: Generation,
    pub test_flag: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_line_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// `queryInstance` only: the comma-separated list split into ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scene: Option<String>,
    /// RFC 3339 UTC, converted from KooGallery's 14- or 17-digit form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// KooGallery's body as parsed, for anything the contract does not normalise (key order and number formatting
    /// are not preserved; the signature was checked over the original bytes).
    pub raw: Map<String, Value>,
}

/// Fields each V2 activity must carry (protocol section 2.1), in the order they are checked.
fn mandatory_fields(activity: Activity) -> &'static [&'static str] {
    match activity {
        Activity::NewInstance => &["businessId", "orderId", "orderLineId"],
        Activity::QueryInstance => &["instanceId"],
        Activity::RefreshInstance => &[
            "scene",
            "orderId",
            "orderLineId",
            "instanceId",
            "expireTime",
        ],
        Activity::UpdateInstanceStatus => &["instanceId", "status"],
        Activity::ReleaseInstance => &["instanceId"],
        Activity::UpgradeInstance => &["instanceId", "orderId", "orderLineId"],
        Activity::OrderNotify => &["orderId", "orderLineId"],
    }
}

/// A verified V2 body whose activity is known; [`V2Call::normalise`] checks the rest.
#[derive(Debug, Clone)]
pub struct V2Call {
    pub activity: Activity,
    raw: Map<String, Value>,
}

/// Reads a verified V2 body as a JSON object and finds its activity.
pub fn parse_v2(verified: &Verified) -> Result<V2Call, ParamError> {
    let Payload::V2(body) = verified.payload() else {
        return Err(ParamError::NotObject);
    };
    let text = std::str::from_utf8(body).map_err(|_| ParamError::NotUtf8)?;
    let value: Value = serde_json::from_str(text).map_err(|_| ParamError::NotJson)?;
    let Value::Object(raw) = value else {
        return Err(ParamError::NotObject);
    };
    let activity = match raw.get("activity") {
        None | Some(Value::Null) => return Err(ParamError::MissingActivity),
        Some(Value::String(s)) if s.len() <= MAX_ACTIVITY_LEN => {
            Activity::from_v2(s).ok_or(ParamError::UnknownActivity)?
        }
        Some(_) => return Err(ParamError::UnknownActivity),
    };
    Ok(V2Call { activity, raw })
}

impl V2Call {
    /// Checks the activity's mandatory fields and builds the normalised request.
    pub fn normalise(self, request_id: String) -> Result<UpstreamRequest, ParamError> {
        let V2Call { activity, raw } = self;
        for field in mandatory_fields(activity) {
            if string_field(&raw, field)?.is_none() {
                return Err(ParamError::MissingField(field));
            }
        }
        let id = |name: &'static str| -> Result<Option<String>, ParamError> {
            match string_field(&raw, name)? {
                Some(v) if v.len() > MAX_ID_LEN => Err(ParamError::InvalidField(name)),
                other => Ok(other.map(str::to_owned)),
            }
        };

        let mut request = UpstreamRequest {
            contract_version: CONTRACT_VERSION,
            request_id,
            activity,
            generation: Generation::V2,
            test_flag: test_flag(&raw)?,
            business_id: id("businessId")?,
            order_id: id("orderId")?,
            order_line_id: id("orderLineId")?,
            instance_id: None,
            instance_ids: None,
            product_id: id("productId")?,
            scene: None,
            expire_time: None,
            status: None,
            raw: Map::new(),
        };
        match activity {
            Activity::QueryInstance => request.instance_ids = Some(split_instance_ids(&raw)?),
            _ => request.instance_id = id("instanceId")?,
        }
        if activity == Activity::RefreshInstance {
            request.scene = id("scene")?;
        }
        // Strict where KooGallery documents the field; elsewhere an unreadable value stays in `raw` only.
        let expire = string_field(&raw, "expireTime").ok().flatten();
        request.expire_time = expire.and_then(expire_time_to_rfc3339);
        if activity == Activity::RefreshInstance && request.expire_time.is_none() {
            return Err(ParamError::InvalidField("expireTime"));
        }
        if activity == Activity::UpdateInstanceStatus {
            let status = string_field(&raw, "status")?.unwrap_or_default();
            if !matches!(status, "FREEZE" | "UNFREEZE") {
                return Err(ParamError::InvalidField("status"));
            }
            request.status = Some(status.to_owned());
        }
        request.raw = raw;
        Ok(request)
    }
}

/// A non-empty string field; `None` when absent, null or empty; an error when of another JSON type.
fn string_field<'a>(
    raw: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, ParamError> {
    match raw.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ParamError::InvalidField(name)),
    }
}

/// `testFlag`: `"1"` marks a debugging call; absent or `"0"` is real. Numbers and booleans are tolerated.
fn test_flag(raw: &Map<String, Value>) -> Result<bool, ParamError> {
    match raw.get("testFlag") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(s)) if s == "1" => Ok(true),
        Some(Value::String(s)) if s == "0" || s.is_empty() => Ok(false),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(true),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ParamError::InvalidField("testFlag")),
    }
}

fn split_instance_ids(raw: &Map<String, Value>) -> Result<Vec<String>, ParamError> {
    let list = string_field(raw, "instanceId")?.ok_or(ParamError::MissingField("instanceId"))?;
    let ids: Vec<String> = list.split(',').map(str::trim).map(str::to_owned).collect();
    if ids.len() > MAX_QUERY_IDS || ids.iter().any(|id| id.is_empty() || id.len() > MAX_ID_LEN) {
        return Err(ParamError::InvalidField("instanceId"));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::v2::{signed_query, verify, SignedQuery};
    use crate::protocol::verified::Verified;
    use crate::secret::{AccessKey, AccessKeys};
    use bytes::Bytes;
    use serde_json::json;
    use std::time::Duration;

    fn verified(body: &str) -> Verified {
        let keys = AccessKeys::new(vec![AccessKey::new("k", "key")]).unwrap();
        let q = SignedQuery::parse(&signed_query(b"key", "n1", 1000, body.as_bytes())).unwrap();
        verify(
            &keys,
            q,
            Bytes::copy_from_slice(body.as_bytes()),
            1000,
            Duration::from_secs(60),
        )
        .unwrap()
    }

    fn normalise(body: &str) -> Result<UpstreamRequest, ParamError> {
        parse_v2(&verified(body))?.normalise("req-1".into())
    }

    #[test]
    fn new_instance_is_normalised_with_raw_fields_kept() {
        let r = normalise(r#"{"activity":"newInstance","businessId":"b","orderId":"o","orderLineId":"o-1","testFlag":"1","extra":5}"#).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["activity"], "newInstance");
        assert_eq!(v["generation"], "v2");
        assert_eq!(v["testFlag"], true);
        assert_eq!(v["orderLineId"], "o-1");
        assert_eq!(v["raw"]["extra"], 5);
        assert!(v.get("instanceId").is_none());
    }

    #[test]
    fn query_instance_ids_are_split() {
        let r = normalise(r#"{"activity":"queryInstance","instanceId":"a,b , c"}"#).unwrap();
        assert_eq!(
            r.instance_ids,
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert!(!r.test_flag);
    }

    #[test]
    fn refresh_expire_time_becomes_rfc3339() {
        let r = normalise(r#"{"activity":"refreshInstance","scene":"RENEWAL","orderId":"o","orderLineId":"l","instanceId":"i","expireTime":"20250101000000"}"#).unwrap();
        assert_eq!(r.expire_time.as_deref(), Some("2025-01-01T00:00:00Z"));
        assert_eq!(r.scene.as_deref(), Some("RENEWAL"));
    }

    #[test]
    fn bad_bodies_are_refused_with_the_right_reason() {
        let long_ids = vec!["x"; 101].join(",");
        let cases: Vec<(String, ParamError)> = vec![
            ("{".into(), ParamError::NotJson),
            ("[1,2]".into(), ParamError::NotObject),
            ("\"s\"".into(), ParamError::NotObject),
            ("{}".into(), ParamError::MissingActivity),
            (r#"{"activity":"mineBitcoin"}"#.into(), ParamError::UnknownActivity),
            (r#"{"activity":7}"#.into(), ParamError::UnknownActivity),
            (r#"{"activity":"newInstance","orderId":"o","orderLineId":"l"}"#.into(), ParamError::MissingField("businessId")),
            (r#"{"activity":"newInstance","businessId":" ","orderId":"o","orderLineId":"l"}"#.into(), ParamError::MissingField("businessId")),
            (r#"{"activity":"newInstance","businessId":1,"orderId":"o","orderLineId":"l"}"#.into(), ParamError::InvalidField("businessId")),
            (r#"{"activity":"updateInstanceStatus","instanceId":"i","status":"DELETE"}"#.into(), ParamError::InvalidField("status")),
            (r#"{"activity":"refreshInstance","scene":"RENEWAL","orderId":"o","orderLineId":"l","instanceId":"i","expireTime":"2025"}"#.into(), ParamError::InvalidField("expireTime")),
            (format!(r#"{{"activity":"queryInstance","instanceId":"{long_ids}"}}"#), ParamError::InvalidField("instanceId")),
            (r#"{"activity":"orderNotify","orderId":"o","orderLineId":"l","testFlag":"yes"}"#.into(), ParamError::InvalidField("testFlag")),
        ];
        for (body, expected) in cases {
            assert_eq!(normalise(&body).unwrap_err(), expected, "{body}");
        }
    }

    #[test]
    fn an_undocumented_unreadable_expire_time_is_left_in_raw() {
        let r = normalise(
            r#"{"activity":"orderNotify","orderId":"o","orderLineId":"l","expireTime":"soon"}"#,
        )
        .unwrap();
        assert_eq!(r.expire_time, None);
        assert_eq!(r.raw["expireTime"], "soon");
    }

    #[test]
    fn every_activity_accepts_its_documented_minimum() {
        let bodies = [
            json!({"activity":"newInstance","businessId":"b","orderId":"o","orderLineId":"l"}),
            json!({"activity":"queryInstance","instanceId":"i"}),
            json!({"activity":"refreshInstance","scene":"RENEWAL","orderId":"o","orderLineId":"l","instanceId":"i","expireTime":"20250101000000000"}),
            json!({"activity":"updateInstanceStatus","instanceId":"i","status":"UNFREEZE"}),
            json!({"activity":"releaseInstance","instanceId":"i"}),
            json!({"activity":"upgradeInstance","instanceId":"i","orderId":"o","orderLineId":"l"}),
            json!({"activity":"orderNotify","orderId":"o","orderLineId":"l"}),
        ];
        for body in bodies {
            let r = normalise(&body.to_string()).unwrap();
            assert_eq!(r.activity.name(), body["activity"]);
        }
    }
}
