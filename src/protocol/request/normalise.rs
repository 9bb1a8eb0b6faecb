//! Field-by-field normalisation shared by V1, V2 flat and V2 EU nested calls.

use super::fields::{Fields, MAX_TEXT_LEN};
use super::*;
use crate::protocol::fields::InboundFields;
use base64::{engine::general_purpose::STANDARD, Engine};

/// Most extension parameters accepted (the console offers three).
const MAX_EXTEND_PARAMS: usize = 32;

/// Fields each activity must carry, by generation (protocol sections 2.1 and 3). V1 debugging calls omit fields
/// documented as mandatory, so V1 requires only what identifies the target.
fn mandatory(generation: Generation, activity: Activity) -> &'static [&'static str] {
    match (generation, activity) {
        (Generation::V2, Activity::NewInstance) => &["businessId", "orderId", "orderLineId"],
        (Generation::V2, Activity::RefreshInstance) => &[
            "scene",
            "orderId",
            "orderLineId",
            "instanceId",
            "expireTime",
        ],
        (Generation::V2, Activity::UpdateInstanceStatus) => &["instanceId", "status"],
        (Generation::V2, Activity::UpgradeInstance) => &["instanceId", "orderId", "orderLineId"],
        (Generation::V2, Activity::OrderNotify) => &["orderId", "orderLineId"],
        (Generation::V1, Activity::NewInstance) => &["orderId"],
        (Generation::V1, Activity::UpdateInstanceStatus) => &["instanceId", "instanceStatus"],
        (Generation::V1, Activity::OrderNotify) => &[],
        // `queryInstance`'s id list is checked (and bounded per id) by `split_instance_ids`.
        (_, Activity::QueryInstance) => &[],
        (_, Activity::ReleaseInstance | Activity::ExpireInstance) => &["instanceId"],
        (Generation::V1, Activity::RefreshInstance | Activity::UpgradeInstance) => &["instanceId"],
    }
}

pub(super) fn normalise(
    call: Call,
    request_id: String,
    key: &FieldKey,
) -> Result<UpstreamRequest, ParamError> {
    let Call {
        activity,
        generation,
        fields: raw,
        body,
    } = call;
    // V2: the body as sent; V1: the decoded parameters (what `raw` holds for the app).
    let into_raw = |raw: Map<String, Value>| body.map_or(Raw::Params(raw), Raw::Body);
    let f = Fields(&raw);
    let nested = generation == Generation::V2
        && activity == Activity::NewInstance
        && f.contains("orderInfo");
    if nested {
        let mut request = nested_new_instance(f, request_id, key)?;
        request.raw = into_raw(raw);
        return Ok(request);
    }
    for field in mandatory(generation, activity) {
        f.required(field)?;
    }
    let mut request = UpstreamRequest {
        contract_version: CONTRACT_VERSION,
        request_id,
        activity,
        generation,
        test_flag: f.flag("testFlag")?.unwrap_or(false),
        business_id: f.string("businessId")?,
        order_id: f.string("orderId")?,
        order_line_id: f.string("orderLineId")?,
        instance_id: None,
        instance_ids: None,
        product_id: f.string("productId")?,
        sku_code: f.string("skuCode")?,
        scene: None,
        trial_to_formal: None,
        status: None,
        terms: terms(f)?,
        amount: f.integer("amount")?,
        disk_size: f.integer("diskSize")?,
        band_width: f.integer("bandWidth")?,
        // Only `newInstance` carries the buyer; a stray field elsewhere is left in `raw`, never decrypted.
        buyer: if activity == Activity::NewInstance {
            buyer(f, key)?
        } else {
            None
        },
        extend_params: match generation {
            Generation::V1 => v1_extend_params(f)?,
            Generation::V2 => None,
        },
        orders: None,
        order: None,
        order_lookup: None,
        raw: Raw::Params(Map::new()),
        traceparent: None,
    };
    match activity {
        Activity::QueryInstance => request.instance_ids = Some(split_instance_ids(f)?),
        _ => request.instance_id = f.string("instanceId")?,
    }
    match (generation, activity) {
        (Generation::V2, Activity::RefreshInstance) => {
            request.scene = f.string("scene")?;
            if request.terms.expire_time.is_none() {
                return Err(ParamError::InvalidField("expireTime"));
            }
        }
        (Generation::V1, Activity::RefreshInstance) => {
            let trial_to_formal = f.flag("trialToFormal")?;
            request.trial_to_formal = trial_to_formal;
            request.scene = Some(
                if trial_to_formal == Some(true) {
                    "TRIAL_TO_FORMAL"
                } else {
                    "RENEWAL"
                }
                .into(),
            );
        }
        (Generation::V2, Activity::UpdateInstanceStatus) => {
            request.status = Some(status(
                f.text("status")?,
                &["FREEZE", "UNFREEZE"],
                "status",
            )?);
        }
        (Generation::V1, Activity::UpdateInstanceStatus) => {
            let status = status(
                f.text("instanceStatus")?,
                &["FREEZE", "NORMAL"],
                "instanceStatus",
            )?;
            request.status = Some(if status == "NORMAL" {
                "UNFREEZE".into()
            } else {
                status
            });
        }
        _ => {}
    }
    request.raw = into_raw(raw);
    Ok(request)
}

fn status(value: Option<&str>, allowed: &[&str], name: &'static str) -> Result<String, ParamError> {
    value
        .filter(|v| allowed.contains(v))
        .map(str::to_owned)
        .ok_or(ParamError::InvalidField(name))
}

fn terms(f: Fields<'_>) -> Result<OrderTerms, ParamError> {
    Ok(OrderTerms {
        trial_flag: f.flag("trialFlag")?,
        charging_mode: f.text("chargingMode")?.map(charging_mode),
        period_type: f.string("periodType")?,
        period_number: f.integer("periodNumber")?,
        order_amount: f.number("orderAmount")?,
        provision_type: f.integer("provisionType")?,
        create_time: f.time("createTime"),
        expire_time: f.time("expireTime"),
    })
}

/// V1 sends numeric codes; V2 sends names. Unknown values pass through as sent.
fn charging_mode(value: &str) -> String {
    match value {
        "0" => "ON_DEMAND",
        "1" => "PERIOD",
        "3" => "ONE_TIME",
        "5" => "PACKAGE",
        other => other,
    }
    .to_owned()
}

/// Buyer fields, with `mobilePhone` and `email` decrypted (or taken as plain text, as the key's `buyer_fields`
/// says); `None` when KooGallery sent none. Every buyer value is bounded and clean: at most
/// [`MAX_TEXT_LEN`] bytes, blank means absent, a control character is refused.
fn buyer(f: Fields<'_>, key: &FieldKey) -> Result<Option<Buyer>, ParamError> {
    let mut plain_fields = Vec::new();
    let mut sensitive = |name: &'static str| -> Result<Option<Plaintext>, ParamError> {
        let s = match f.0.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(Value::String(s)) => s,
            Some(_) => return Err(ParamError::InvalidField(name)),
        };
        let encrypted = match key.inbound() {
            InboundFields::Encrypted => true,
            InboundFields::Plain => false,
            InboundFields::Auto => key.is_well_formed(s),
        };
        let value = if encrypted {
            key.decrypt(s).map_err(|source| ParamError::Undecryptable {
                field: name,
                source,
            })?
        } else {
            plain_fields.push(name);
            Zeroizing::new(s.clone())
        };
        if value.trim().is_empty() {
            return Ok(None);
        }
        clean(name, value.as_str())?;
        Ok(Some(Plaintext(value)))
    };
    let mobile_phone = sensitive("mobilePhone")?;
    let email = sensitive("email")?;
    let text = |name: &'static str| -> Result<Option<String>, ParamError> {
        let value = f.string(name)?;
        value.as_deref().map_or(Ok(()), |v| clean(name, v))?;
        Ok(value)
    };
    let buyer = Buyer {
        customer_id: text("customerId")?,
        customer_name: text("customerName")?,
        user_id: text("userId")?,
        user_name: text("userName")?,
        mobile_phone,
        email,
        plain_fields,
    };
    Ok((buyer != Buyer::default()).then_some(buyer))
}

/// The contract's bounds for a buyer value: at most [`MAX_TEXT_LEN`] bytes and no control character (CR, LF, NUL,
/// ESC, DEL, C1): either would reach the app's database or logs as is.
fn clean(name: &'static str, value: &str) -> Result<(), ParamError> {
    if value.len() > MAX_TEXT_LEN || value.chars().any(char::is_control) {
        return Err(ParamError::InvalidField(name));
    }
    Ok(())
}

fn split_instance_ids(f: Fields<'_>) -> Result<Vec<String>, ParamError> {
    // The list as a whole may be long (up to 100 ids); each id is bounded like any other.
    let list = match f.0.get("instanceId") {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        None | Some(Value::Null | Value::String(_)) => {
            return Err(ParamError::MissingField("instanceId"))
        }
        Some(_) => return Err(ParamError::InvalidField("instanceId")),
    };
    let ids: Vec<String> = list.split(',').map(str::trim).map(str::to_owned).collect();
    if ids.len() > MAX_QUERY_IDS
        || ids
            .iter()
            .any(|id| id.is_empty() || id.len() > MAX_TEXT_LEN)
    {
        return Err(ParamError::InvalidField("instanceId"));
    }
    Ok(ids)
}

/// V1 `saasExtendParams`: base64 of a JSON array of `{name, value}`.
fn v1_extend_params(f: Fields<'_>) -> Result<Option<Vec<ExtendParam>>, ParamError> {
    const NAME: &str = "saasExtendParams";
    let Some(encoded) = f.text(NAME)? else {
        return Ok(None);
    };
    let bytes = STANDARD
        .decode(encoded.trim())
        .map_err(|_| ParamError::InvalidField(NAME))?;
    let list: Value = serde_json::from_slice(&bytes).map_err(|_| ParamError::InvalidField(NAME))?;
    extend_params(&list, NAME).map(Some)
}

/// A JSON array of `{name, value}`; values that are numbers or booleans are kept as their JSON text.
fn extend_params(list: &Value, field: &'static str) -> Result<Vec<ExtendParam>, ParamError> {
    let items = list.as_array().ok_or(ParamError::InvalidField(field))?;
    if items.len() > MAX_EXTEND_PARAMS {
        return Err(ParamError::InvalidField(field));
    }
    items
        .iter()
        .map(|item| {
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .ok_or(ParamError::InvalidField(field))?;
            let value = match item.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
                None | Some(Value::Null) => String::new(),
                Some(_) => return Err(ParamError::InvalidField(field)),
            };
            Ok(ExtendParam {
                name: name.to_owned(),
                value,
            })
        })
        .collect()
}

/// EU nested `newInstance` (protocol section 2.2): `buyerInfo`, `orderInfo[]` with `productInfo[]`.
fn nested_new_instance(
    f: Fields<'_>,
    request_id: String,
    key: &FieldKey,
) -> Result<UpstreamRequest, ParamError> {
    let lines = f.objects("orderInfo")?.unwrap_or_default();
    let orders = lines
        .iter()
        .map(|line| order_line(*line))
        .collect::<Result<Vec<_>, _>>()?;
    let first = orders
        .first()
        .ok_or(ParamError::MissingField("orderInfo"))?;
    if first.order_id.is_none() {
        return Err(ParamError::MissingField("orderId"));
    }
    let product = first.products.first();
    let buyer = match f.object("buyerInfo")? {
        Some(info) => buyer(info, key)?,
        None => None,
    };
    Ok(UpstreamRequest {
        contract_version: CONTRACT_VERSION,
        request_id,
        activity: Activity::NewInstance,
        generation: Generation::V2,
        test_flag: f.flag("testFlag")?.unwrap_or(false),
        business_id: first.business_id.clone(),
        order_id: first.order_id.clone(),
        order_line_id: first.order_line_id.clone(),
        instance_id: None,
        instance_ids: None,
        product_id: product.and_then(|p| p.product_id.clone()),
        sku_code: product.and_then(|p| p.sku_code.clone()),
        scene: None,
        trial_to_formal: None,
        status: None,
        terms: first.terms.clone(),
        amount: None,
        disk_size: None,
        band_width: None,
        buyer,
        extend_params: first.extend_params.clone(),
        orders: Some(orders),
        order: None,
        order_lookup: None,
        raw: Raw::Params(Map::new()),
        traceparent: None,
    })
}

fn order_line(f: Fields<'_>) -> Result<OrderLine, ParamError> {
    let products = f
        .objects("productInfo")?
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            Ok(Product {
                sku_code: p.string("skuCode")?,
                product_id: p.string("productId")?,
                linear_value: p.number("linearValue")?,
            })
        })
        .collect::<Result<Vec<_>, ParamError>>()?;
    let extend = match f.0.get("extendParams") {
        None | Some(Value::Null) => None,
        Some(list) => Some(extend_params(list, "extendParams")?),
    };
    Ok(OrderLine {
        business_id: f.string("businessId")?,
        order_id: f.string("orderId")?,
        order_line_id: f.string("orderLineId")?,
        terms: terms(f)?,
        products,
        extend_params: extend,
    })
}
