//! Verified KooGallery calls (V1 query, V2 flat and EU nested bodies) turned into the one normalised JSON shape
//! the upstream receives, with sensitive buyer fields decrypted.
//!
//! The contract is documented in `docs/upstream-contract.md` and `docs/schema/upstream-request.schema.json`.

#[cfg(test)]
mod buyer_tests;
mod fields;
mod normalise;
#[cfg(test)]
mod tests;

use super::activity::{Activity, Generation};
use super::fields::{FieldError, FieldKey};
use super::verified::{Payload, Verified};
use bytes::Bytes;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};
use std::fmt;
use zeroize::Zeroizing;

/// Version of the upstream contract; bumped only for incompatible changes (new optional fields are not).
pub const CONTRACT_VERSION: u32 = 1;
/// Longest `activity` KooGallery documents.
const MAX_ACTIVITY_LEN: usize = 32;
/// `queryInstance` carries at most this many ids.
pub const MAX_QUERY_IDS: usize = 100;

/// Why a verified call is not a valid one. Every variant maps to result code `000002`; none carries content.
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
    #[error("encrypted field `{field}` cannot be decrypted")]
    Undecryptable {
        field: &'static str,
        #[source]
        source: FieldError,
    },
}

/// Decrypted personal data: serialised as plain text for the upstream, never shown by `Debug`, wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Plaintext(Zeroizing<String>);

impl Plaintext {
    /// Wraps personal data that arrived in plain text (the order query's buyer phone and email).
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Plaintext {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// What the upstream receives. Fields that do not apply are omitted.
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
    pub sku_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scene: Option<String>,
    /// V1 `refreshInstance` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trial_to_formal: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub terms: OrderTerms,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band_width: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buyer: Option<Buyer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extend_params: Option<Vec<ExtendParam>>,
    /// EU nested `newInstance` only: every order line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders: Option<Vec<OrderLine>>,
    /// What was bought, from KooGallery's order query (`[koogallery_api]`, enriched V2 activities only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<crate::openapi::order::Order>,
    /// Present when the order lookup failed and the call was forwarded anyway (`on_failure = "forward"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_lookup: Option<crate::openapi::lookup::LookupStatus>,
    /// KooGallery's fields as sent (V2: the body exactly as received; V1: the query parameters without
    /// `authToken`), for anything the contract does not normalise. Encrypted fields stay encrypted here.
    pub raw: Raw,
    /// The caller's W3C `traceparent`, passed on as a header (not part of the body).
    #[serde(skip)]
    pub traceparent: Option<String>,
}

/// KooGallery's fields as sent, in the request's `raw`.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    /// V2: the verified body (a JSON object without repeated keys), spliced into the request byte for byte.
    Body(Bytes),
    /// V1: the query parameters as decoded strings, without `authToken`.
    Params(Map<String, Value>),
}

impl Raw {
    /// The value of a top-level field (parsing a V2 body: for tests and tools, not the request path).
    pub fn get(&self, name: &str) -> Option<Value> {
        match self {
            Raw::Params(map) => map.get(name).cloned(),
            Raw::Body(body) => serde_json::from_slice::<Map<String, Value>>(body)
                .ok()?
                .remove(name),
        }
    }
}

impl Serialize for Raw {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Raw::Params(map) => map.serialize(s),
            Raw::Body(body) => {
                // A verified, parsed body: valid UTF-8 JSON, so neither step fails in practice; borrowing
                // validates without copying, and the bytes are written as they are.
                let text = std::str::from_utf8(body).map_err(serde::ser::Error::custom)?;
                let raw: &RawValue =
                    serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
                raw.serialize(s)
            }
        }
    }
}

/// Commercial terms of an order line; flattened into the request and into each `orders[]` entry.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderTerms {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trial_flag: Option<bool>,
    /// `ON_DEMAND`, `PERIOD`, `ONE_TIME`, `PACKAGE` (V1 codes 0, 1, 3, 5), or an unknown value as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charging_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_number: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_amount: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provision_type: Option<i64>,
    /// RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    /// RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
}

/// The buyer, with `mobilePhone` and `email` decrypted.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Buyer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<Plaintext>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<Plaintext>,
    /// Which of `mobilePhone`/`email` arrived unencrypted (the key's `buyer_fields` is `plain` or `auto`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plain_fields: Vec<&'static str>,
}

/// One extension parameter (the console's "Extension Parameters").
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExtendParam {
    pub name: String,
    pub value: String,
}

/// One `orderInfo[]` entry of an EU nested `newInstance`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_line_id: Option<String>,
    #[serde(flatten)]
    pub terms: OrderTerms,
    pub products: Vec<Product>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extend_params: Option<Vec<ExtendParam>>,
}

/// One `productInfo[]` entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linear_value: Option<Number>,
}

/// A verified call whose activity is known; [`Call::normalise`] checks and converts the rest.
#[derive(Debug, Clone)]
pub struct Call {
    pub activity: Activity,
    pub generation: Generation,
    /// The fields, parsed (V1: the decoded query parameters).
    fields: Map<String, Value>,
    /// V2: the verified body, which becomes `raw` unchanged.
    body: Option<Bytes>,
}

/// Reads a verified call and finds its activity.
pub fn parse(verified: &Verified) -> Result<Call, ParamError> {
    match verified.payload() {
        Payload::V2(body) => {
            let text = std::str::from_utf8(body).map_err(|_| ParamError::NotUtf8)?;
            let Value::Object(raw) = serde_json::from_str(text).map_err(|_| ParamError::NotJson)?
            else {
                return Err(ParamError::NotObject);
            };
            let activity = match raw.get("activity") {
                None | Some(Value::Null) => return Err(ParamError::MissingActivity),
                Some(Value::String(s)) if s.len() <= MAX_ACTIVITY_LEN => {
                    Activity::from_v2(s).ok_or(ParamError::UnknownActivity)?
                }
                Some(_) => return Err(ParamError::UnknownActivity),
            };
            Ok(Call {
                activity,
                generation: Generation::V2,
                fields: raw,
                body: Some(body.clone()),
            })
        }
        Payload::V1(params) => {
            let raw: Map<String, Value> = params
                .iter()
                .map(|(name, value)| (name.clone(), Value::String(value.clone())))
                .collect();
            let activity = match raw.get("activity").and_then(Value::as_str) {
                None | Some("") => return Err(ParamError::MissingActivity),
                Some(name) => Activity::from_v1(name).ok_or(ParamError::UnknownActivity)?,
            };
            Ok(Call {
                activity,
                generation: Generation::V1,
                fields: raw,
                body: None,
            })
        }
    }
}

/// The ids of a call, for the journal and `koogate journal --order` even when the call fails after parsing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallIds {
    pub order_id: Option<String>,
    pub order_line_id: Option<String>,
    pub instance_id: Option<String>,
}

/// Longer values are not ids (KooGallery's are a few dozen characters): not copied into the journal.
const MAX_ID_LEN: usize = 128;

impl Call {
    /// `orderId`, `orderLineId` and `instanceId` as sent (never personal data), before any other check.
    pub fn ids(&self) -> CallIds {
        let id = |name: &str| {
            self.fields
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty() && v.len() <= MAX_ID_LEN)
                .map(str::to_owned)
        };
        CallIds {
            order_id: id("orderId"),
            order_line_id: id("orderLineId"),
            instance_id: id("instanceId"),
        }
    }

    /// Checks the activity's mandatory fields, decrypts buyer fields with `key`, and builds the request.
    pub fn normalise(
        self,
        request_id: String,
        key: &FieldKey,
    ) -> Result<UpstreamRequest, ParamError> {
        normalise::normalise(self, request_id, key)
    }
}
