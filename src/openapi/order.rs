//! KooGallery's order/query answer turned into the contract's `order` object (RFC 3339 times, typed numbers,
//! enums as names). Pure; personal data (buyer phone, email, real name) is held in [`Plaintext`].

use crate::protocol::request::{ExtendParam, Plaintext};
use crate::protocol::timefmt::expire_time_to_rfc3339;
use serde::Serialize;
use serde_json::{Map, Number, Value};

/// Longest text kept from any field (the contract's limit); longer values are dropped (real ones are far shorter).
const MAX_TEXT_LEN: usize = 256;
/// At most this many lines, products and extension parameters are kept (real orders have a handful).
const MAX_ITEMS: usize = 100;

/// The order as the app receives it in `order`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: String,
    /// `NEW`, `TRIAL`, `TRIAL_TO_FORMAL`, `UNSUBSCRIBE`, `RENEW`, `CHANGE`, or an unknown value as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_type: Option<String>,
    /// RFC 3339 UTC: when the order was placed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    /// The order's lines; for an enriched call exactly the call's `orderLineId`.
    pub lines: Vec<OrderLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buyer: Option<OrderBuyer>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extend_params: Vec<ExtendParam>,
}

/// One `orderLine[]` entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub order_line_id: String,
    /// `PERIOD`, `ONE_TIME`, `ON_DEMAND`, `PACKAGE` (KooGallery's `ON_DEMAND_PKG`), or an unknown value as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charging_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_number: Option<i64>,
    /// RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
    pub products: Vec<OrderProduct>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extend_params: Vec<ExtendParam>,
    /// KooGallery's `currency` (the line's amount; its unit is not documented), as a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency_after_discount: Option<Number>,
}

/// One `productInfo[]` entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderProduct {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linear_value: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
}

/// `buyerInfo`. Phone, email and real name are personal data: never logged, sealed at rest.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderBuyer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_real_name: Option<Plaintext>,
    /// As sent (the reference does not document its values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_type: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<Plaintext>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<Plaintext>,
}

/// Why an order/query answer gives no order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("the answer is not a JSON object")]
    NotJson,
    #[error("KooGallery answered {0}")]
    Mkt(String),
    #[error("the answer has no orderInfo with an orderId")]
    NoOrder,
    #[error("the answer does not contain the requested order line")]
    LineNotFound,
}

/// Reads an order/query answer body. `line` restricts the order to that line (which must be present).
/// Fields with an unexpected type are left out rather than failing the whole order.
pub fn parse_answer(body: &[u8], line: Option<&str>) -> Result<Order, AnswerError> {
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(body) else {
        return Err(AnswerError::NotJson);
    };
    match answer.get("resultCode").and_then(Value::as_str) {
        Some("MKT.0000") => {}
        Some(code) => return Err(AnswerError::Mkt(bounded_code(code).to_owned())),
        None => return Err(AnswerError::NotJson),
    }
    let info = answer
        .get("orderInfo")
        .and_then(Value::as_object)
        .ok_or(AnswerError::NoOrder)?;
    let order_id = text(info, "orderId").ok_or(AnswerError::NoOrder)?;
    let mut lines: Vec<OrderLine> = items(info, "orderLine").filter_map(order_line).collect();
    if let Some(wanted) = line {
        lines.retain(|l| l.order_line_id == wanted);
        if lines.is_empty() {
            return Err(AnswerError::LineNotFound);
        }
    }
    Ok(Order {
        order_id,
        order_type: text(info, "orderType"),
        create_time: time(info, "createTime"),
        lines,
        buyer: info.get("buyerInfo").and_then(Value::as_object).map(buyer),
        extend_params: extend_params(info),
    })
}

/// The MKT (or other) code as a metric label: the documented ones by name, anything else `other`.
pub fn bounded_code(code: &str) -> &'static str {
    const KNOWN: [&str; 13] = [
        "MKT.0000",
        "MKT.0100",
        "MKT.0101",
        "MKT.0102",
        "MKT.0150",
        "MKT.0154",
        "MKT.0999",
        "MKT.9001",
        "MKT.9002",
        "MKT.9003",
        "MKT.9004",
        "APIGW.0301",
        "none",
    ];
    KNOWN.into_iter().find(|k| *k == code).unwrap_or("other")
}

fn order_line(value: &Value) -> Option<OrderLine> {
    let line = value.as_object()?;
    Some(OrderLine {
        order_line_id: text(line, "orderLineId")?,
        charging_mode: text(line, "chargingMode").map(|m| match m.as_str() {
            "ON_DEMAND_PKG" => "PACKAGE".to_owned(),
            _ => m,
        }),
        period_type: text(line, "periodType"),
        period_number: number(line, "periodNumber").and_then(|n| n.as_i64()),
        expire_time: time(line, "expireTime"),
        products: items(line, "productInfo")
            .filter_map(Value::as_object)
            .map(|p| OrderProduct {
                product_id: text(p, "productId"),
                sku_code: text(p, "skuCode"),
                linear_value: number(p, "linearValue"),
                product_name: text(p, "productName"),
            })
            .collect(),
        extend_params: extend_params(line),
        currency: number(line, "currency"),
        currency_after_discount: number(line, "currencyAfterDiscount"),
    })
}

fn buyer(b: &Map<String, Value>) -> OrderBuyer {
    let personal = |name| text(b, name).map(Plaintext::new);
    OrderBuyer {
        customer_id: text(b, "customerId"),
        customer_name: text(b, "customerName"),
        customer_real_name: personal("customerRealName"),
        customer_type: number(b, "customerType").and_then(|n| n.as_i64()),
        user_id: text(b, "userId"),
        user_name: text(b, "userName"),
        mobile_phone: personal("mobilePhone"),
        email: personal("email"),
    }
}

fn extend_params(object: &Map<String, Value>) -> Vec<ExtendParam> {
    items(object, "extendParams")
        .filter_map(Value::as_object)
        .filter_map(|p| {
            Some(ExtendParam {
                name: text(p, "name")?,
                value: text(p, "value").unwrap_or_default(),
            })
        })
        .collect()
}

fn items<'a>(object: &'a Map<String, Value>, name: &str) -> impl Iterator<Item = &'a Value> {
    object
        .get(name)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(MAX_ITEMS)
}

/// A non-blank string of sane length.
fn text(object: &Map<String, Value>, name: &str) -> Option<String> {
    match object.get(name)? {
        Value::String(s) if !s.trim().is_empty() && s.len() <= MAX_TEXT_LEN => Some(s.clone()),
        _ => None,
    }
}

/// A JSON number, or a string holding a decimal number (`"100"`, `"12.5"`).
fn number(object: &Map<String, Value>, name: &str) -> Option<Number> {
    match object.get(name)? {
        Value::Number(n) => Some(n.clone()),
        Value::String(s) if s.len() <= 40 => {
            let s = s.trim();
            let decimal = s.strip_prefix('-').unwrap_or(s);
            let (whole, fraction) = decimal.split_once('.').unwrap_or((decimal, "0"));
            let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
            if !(digits(whole) && digits(fraction)) {
                return None;
            }
            match serde_json::from_str::<Value>(s).ok()? {
                Value::Number(n) => Some(n),
                _ => None,
            }
        }
        _ => None,
    }
}

fn time(object: &Map<String, Value>, name: &str) -> Option<String> {
    object.get(name)?.as_str().and_then(expire_time_to_rfc3339)
}

#[cfg(test)]
#[path = "order_tests.rs"]
mod tests;
