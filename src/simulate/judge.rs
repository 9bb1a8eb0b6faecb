//! Judging an answer the way KooGallery's debugging console does, with a reason a seller can act on.

use super::case::Expect;
use super::client::Answer;
use crate::protocol::body_sign;
use crate::protocol::fields::{FieldCipher, FieldKey};
use crate::protocol::response::MAX_INSTANCE_ID_LEN;
use crate::protocol::ResultCode;
use serde_json::Value;
use std::time::Duration;

/// What a refused signature most likely means, with what to do.
pub const AUTHENTICATION_FAILED: &str = "authentication failed (000001): the target refused the call's signature — \
    the access key given to simulate (--key-env/--key-file) differs from the target's, or the target's clock is more \
    than 60 s off (V1: 24 h)";

fn result_code_of(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("resultCode")?
        .as_str()
        .map(str::to_owned)
}

/// KooGallery gives up after this long.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// The console's generic checks: HTTP 200, a valid `Body-Sign` over the exact body, JSON with a known
/// `resultCode`, in time. Returns the parsed body.
pub fn generic(answer: &Answer, key: &[u8]) -> Result<Value, String> {
    if answer.elapsed > DEADLINE {
        return Err(format!(
            "answered after {} ms; KooGallery gives up after 5000 ms",
            answer.elapsed.as_millis()
        ));
    }
    if answer.status != 200 {
        return Err(format!(
            "HTTP {}: KooGallery expects HTTP 200 with the outcome in the JSON resultCode, errors included",
            answer.status
        ));
    }
    // A refused signature is the likeliest cause of everything below: the target's Body-Sign is then also made with
    // a key other than the one given to simulate. Say that first.
    let signed_ok = answer.signature_valid(key);
    if !signed_ok && result_code_of(&answer.body).as_deref() == Some("000001") {
        return Err(AUTHENTICATION_FAILED.into());
    }
    let Some(header) = answer.body_sign.as_deref() else {
        return Err("http header->bodySign is empty: every answer needs a Body-Sign header (docs/koogallery-protocol.md, Body-Sign)".into());
    };
    let expected = body_sign::header_value(key, &answer.body);
    match body_sign::parse_header(header) {
        None => {
            return Err(format!(
                "Body-Sign is malformed: expected the form {expected}, got {header}"
            ));
        }
        Some(_) if !signed_ok => {
            return Err(format!(
                "Body-Sign does not match the body: expected {expected}, got {header} (was the body changed after \
                 signing — pretty printing, compression, a proxy — or signed with another key?)"
            ));
        }
        Some(_) => {}
    }
    let body: Value = serde_json::from_slice(&answer.body).map_err(|_| {
        format!(
            "the body is not JSON: {}",
            String::from_utf8_lossy(&answer.body)
                .chars()
                .take(80)
                .collect::<String>()
        )
    })?;
    match body.get("resultCode").and_then(Value::as_str) {
        None => Err("the body has no resultCode string".into()),
        Some(code) if ResultCode::parse(code).is_none() => {
            Err(format!("resultCode {code} is not a KooGallery code"))
        }
        Some(_) => Ok(body),
    }
}

/// The case's own expectations. `remembered` is the instance an earlier `newInstance` case answered.
pub fn expected(
    activity: &str,
    body: &Value,
    expect: &Expect,
    remembered: Option<&str>,
    key: &[u8],
) -> Result<(), String> {
    let code = body["resultCode"].as_str().unwrap_or_default();
    if code == "000001" && !expect.result_codes.iter().any(|c| c == code) {
        return Err(AUTHENTICATION_FAILED.into());
    }
    if !expect.result_codes.iter().any(|c| c == code) {
        let meaning = ResultCode::parse(code).map_or("", |c| c.default_message());
        return Err(format!(
            "resultCode {code} ({meaning}), expected {}",
            expect.result_codes.join(" or ")
        ));
    }
    let accepted = ResultCode::parse(code).is_some_and(ResultCode::is_accepted);
    if activity == "newInstance" && accepted {
        match body["instanceId"].as_str() {
            None | Some("") => return Err("newInstance answered without instanceId".into()),
            Some(id) if id.len() > MAX_INSTANCE_ID_LEN => return Err(format!("instanceId is longer than {MAX_INSTANCE_ID_LEN}")),
            Some(id) if expect.same_instance && remembered.is_some_and(|r| r != id) => {
                return Err(format!(
                    "a retry of the same order got instanceId {id}, the first call got {}: newInstance must be idempotent",
                    remembered.unwrap_or_default()
                ))
            }
            Some(_) => {}
        }
    }
    if expect.front_end_url {
        let info = body["info"]
            .as_array()
            .filter(|i| !i.is_empty())
            .ok_or("queryInstance answered without info[]")?;
        if info.iter().any(|i| {
            i["appInfo"]["frontEndUrl"]
                .as_str()
                .is_none_or(str::is_empty)
        }) {
            return Err("appInfo.frontEndUrl is missing: KooGallery shows it to the buyer".into());
        }
    }
    if expect.encrypted_credentials && accepted {
        encrypted_credentials(body, key)?;
    }
    Ok(())
}

/// V1: `encryptType` names the algorithm and every `userName`/`password` decrypts with the key.
fn encrypted_credentials(body: &Value, key: &[u8]) -> Result<(), String> {
    let cipher = match body["encryptType"].as_str() {
        Some("1") => FieldCipher::Aes256Cbc,
        Some("2") => FieldCipher::Aes128Cbc,
        Some("3") => FieldCipher::Aes256Gcm,
        other => {
            return Err(format!(
                "encryptType is {other:?}; V1 answers must say how userName/password are encrypted"
            ))
        }
    };
    let field_key = FieldKey::derive(key, cipher);
    let mut app_infos: Vec<&Value> = vec![&body["appInfo"]];
    app_infos.extend(
        body["info"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| &i["appInfo"]),
    );
    for app_info in app_infos {
        for field in ["userName", "password"] {
            if let Some(value) = app_info[field].as_str() {
                field_key.decrypt(value).map_err(|e| {
                    format!(
                        "appInfo.{field} does not decrypt with the key and encryptType {}: {e}",
                        cipher.encrypt_type()
                    )
                })?;
            }
        }
    }
    Ok(())
}
