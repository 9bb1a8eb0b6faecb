//! The upstream's simple JSON answer, checked and turned into KooGallery's signed response body.

use super::activity::{Activity, Generation};
use super::fields::FieldKey;
use super::result_code::ResultCode;
use serde::{Deserialize, Serialize};

/// Longest `instanceId` KooGallery accepts (protocol section 2.1).
pub const MAX_INSTANCE_ID_LEN: usize = 64;
/// Longest encrypted `userName`/`password` KooGallery accepts.
pub const MAX_ENCRYPTED_LEN: usize = 128;
/// Longest `resultMsg` passed through from the upstream; longer messages are cut at a character boundary.
const MAX_RESULT_MSG_CHARS: usize = 256;

/// Why an upstream answer cannot be turned into a KooGallery response. All map to `000005`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("upstream answer is not a JSON object of the contract's shape")]
    NotContractJson,
    #[error("upstream answered an unknown resultCode")]
    UnknownResultCode,
    #[error("upstream answer lacks `{0}`, which this activity requires")]
    MissingField(&'static str),
    #[error("upstream answer has an invalid `{0}`")]
    InvalidField(&'static str),
    #[error("encrypted `{0}` would exceed the 128 characters KooGallery accepts")]
    EncryptedTooLong(&'static str),
}

/// What the upstream may answer (`docs/schema/upstream-answer.schema.json`). Every field is optional; unknown
/// fields are ignored so an app can return richer objects.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamAnswer {
    pub result_code: Option<String>,
    pub result_msg: Option<String>,
    pub instance_id: Option<String>,
    /// `newInstance`: access information (V1 sends it back to KooGallery).
    pub app_info: Option<AppInfo>,
    pub info: Option<Vec<InstanceInfo>>,
}

/// One entry of a `queryInstance` answer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInfo {
    pub instance_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_info: Option<AppInfo>,
    /// V1 only: usage records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_info: Option<Vec<UsageInfo>>,
}

/// One V1 usage record, passed through.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UsageInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_value: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistical_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related_instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard_url: Option<String>,
}

/// Access information for a provisioned instance. `Debug` never shows the user name or password.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    pub front_end_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
}

impl std::fmt::Debug for AppInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppInfo")
            .field("front_end_url", &self.front_end_url)
            .field("admin_url", &self.admin_url)
            .field("user_name", &self.user_name.as_ref().map(|_| "<redacted>"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl AppInfo {
    fn has_front_end_url(&self) -> bool {
        self.front_end_url
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty())
    }

    /// Encrypts `userName` and `password` with a fresh IV each.
    fn encrypt(&mut self, key: &FieldKey) -> Result<(), AnswerError> {
        for (name, value) in [
            ("userName", &mut self.user_name),
            ("password", &mut self.password),
        ] {
            if let Some(plain) = value.as_deref() {
                let sealed = key.encrypt(plain);
                if sealed.len() > MAX_ENCRYPTED_LEN {
                    return Err(AnswerError::EncryptedTooLong(name));
                }
                *value = Some(sealed);
            }
        }
        Ok(())
    }
}

/// KooGallery's response body. Field order is fixed: `resultCode`, `resultMsg`, then the extras.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KooResponse {
    pub result_code: ResultCode,
    pub result_msg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Which algorithm encrypted `appInfo.userName`/`password` (`"1"` AES-256-CBC, `"2"` AES-128-CBC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypt_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_info: Option<AppInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<Vec<InstanceInfo>>,
}

impl KooResponse {
    /// A response that carries only a code and koogate's generic message for it.
    pub fn error(code: ResultCode) -> Self {
        Self {
            result_code: code,
            result_msg: code.default_message().to_owned(),
            instance_id: None,
            encrypt_type: None,
            app_info: None,
            info: None,
        }
    }

    /// Compact JSON bytes; these exact bytes are signed and written.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain strings and derived structs into a Vec cannot fail.
        serde_json::to_vec(self)
            .unwrap_or_else(|_| br#"{"resultCode":"000005","resultMsg":"internal error"}"#.to_vec())
    }
}

/// Parses the upstream's body into an [`UpstreamAnswer`]; it must be a JSON object.
pub fn parse_answer(body: &[u8]) -> Result<UpstreamAnswer, AnswerError> {
    // serde would also fill the struct from a JSON array (by field position): only objects are answers.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(AnswerError::NotContractJson);
    }
    serde_json::from_slice(body).map_err(|_| AnswerError::NotContractJson)
}

/// Checks an answer against what `activity` requires in `generation`, fills defaults (`000000`, the standard
/// message), and encrypts `appInfo` credentials with `encrypt` when given (always for V1).
pub fn build_response(
    activity: Activity,
    generation: Generation,
    answer: UpstreamAnswer,
    encrypt: Option<&FieldKey>,
) -> Result<KooResponse, AnswerError> {
    let code = match answer.result_code.as_deref() {
        None => ResultCode::Success,
        Some(code) => ResultCode::parse(code).ok_or(AnswerError::UnknownResultCode)?,
    };
    let result_msg = match answer.result_msg {
        Some(msg) if !msg.trim().is_empty() => msg.chars().take(MAX_RESULT_MSG_CHARS).collect(),
        _ => code.default_message().to_owned(),
    };
    let mut response = KooResponse {
        result_msg,
        ..KooResponse::error(code)
    };
    if !code.is_accepted() {
        return Ok(response);
    }
    match activity {
        Activity::NewInstance => {
            let id = answer
                .instance_id
                .ok_or(AnswerError::MissingField("instanceId"))?;
            if id.trim().is_empty() || id.len() > MAX_INSTANCE_ID_LEN {
                return Err(AnswerError::InvalidField("instanceId"));
            }
            response.instance_id = Some(id);
            // V1 returns access information with the instance; V2 asks for it with `queryInstance`.
            if generation == Generation::V1 {
                let app_info = answer.app_info.filter(AppInfo::has_front_end_url);
                response.app_info =
                    Some(app_info.ok_or(AnswerError::MissingField("appInfo.frontEndUrl"))?);
            }
        }
        // `000004` is documented for asynchronous provisioning only; a query answered so carries no list.
        Activity::QueryInstance if code == ResultCode::Success => {
            let mut info = answer.info.ok_or(AnswerError::MissingField("info"))?;
            for entry in &mut info {
                if entry.instance_id.trim().is_empty()
                    || entry.instance_id.len() > MAX_INSTANCE_ID_LEN
                {
                    return Err(AnswerError::InvalidField("info[].instanceId"));
                }
                if !entry
                    .app_info
                    .as_ref()
                    .is_some_and(AppInfo::has_front_end_url)
                {
                    return Err(AnswerError::MissingField("info[].appInfo.frontEndUrl"));
                }
                if generation == Generation::V2 {
                    entry.usage_info = None;
                }
            }
            response.info = Some(info);
        }
        Activity::QueryInstance
        | Activity::RefreshInstance
        | Activity::UpdateInstanceStatus
        | Activity::ReleaseInstance
        | Activity::UpgradeInstance
        | Activity::OrderNotify
        | Activity::ExpireInstance => {}
    }
    if let Some(key) = encrypt {
        let app_infos = response.app_info.iter_mut().chain(
            response
                .info
                .iter_mut()
                .flatten()
                .filter_map(|e| e.app_info.as_mut()),
        );
        let mut encrypted_any = false;
        for app_info in app_infos {
            app_info.encrypt(key)?;
            encrypted_any = true;
        }
        if encrypted_any {
            response.encrypt_type = Some(key.cipher().encrypt_type());
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(activity: Activity, body: &str) -> Result<KooResponse, AnswerError> {
        build_response(
            activity,
            Generation::V2,
            parse_answer(body.as_bytes())?,
            None,
        )
    }

    #[test]
    fn new_instance_answer_gets_defaults_in_vector_order() {
        let r = build(Activity::NewInstance, r#"{"instanceId":"instance-0001"}"#).unwrap();
        assert_eq!(
            String::from_utf8(r.to_bytes()).unwrap(),
            r#"{"resultCode":"000000","resultMsg":"success.","instanceId":"instance-0001"}"#
        );
    }

    #[test]
    fn business_error_codes_pass_through_without_extras() {
        let r = build(Activity::RefreshInstance, r#"{"resultCode":"000003"}"#).unwrap();
        assert_eq!(
            String::from_utf8(r.to_bytes()).unwrap(),
            r#"{"resultCode":"000003","resultMsg":"instance does not exist"}"#
        );
    }

    #[test]
    fn contract_violations_are_refused() {
        let cases = [
            (
                Activity::NewInstance,
                "{}",
                AnswerError::MissingField("instanceId"),
            ),
            (
                Activity::NewInstance,
                &format!(r#"{{"instanceId":"{}"}}"#, "i".repeat(65)),
                AnswerError::InvalidField("instanceId"),
            ),
            (
                Activity::NewInstance,
                r#"{"resultCode":"000004"}"#,
                AnswerError::MissingField("instanceId"),
            ),
            (
                Activity::OrderNotify,
                r#"{"resultCode":"999999"}"#,
                AnswerError::UnknownResultCode,
            ),
            (
                Activity::OrderNotify,
                r#"{"resultCode":0}"#,
                AnswerError::NotContractJson,
            ),
            (Activity::OrderNotify, "[]", AnswerError::NotContractJson),
            (
                Activity::OrderNotify,
                r#"[null,null,"x",null]"#,
                AnswerError::NotContractJson,
            ),
            (
                Activity::QueryInstance,
                r#"{"info":[{"instanceId":"i","appInfo":{"frontEndUrl":" "}}]}"#,
                AnswerError::MissingField("info[].appInfo.frontEndUrl"),
            ),
            (
                Activity::OrderNotify,
                "<html>",
                AnswerError::NotContractJson,
            ),
            (
                Activity::QueryInstance,
                "{}",
                AnswerError::MissingField("info"),
            ),
            (
                Activity::QueryInstance,
                r#"{"info":[{"instanceId":"i","appInfo":{}}]}"#,
                AnswerError::MissingField("info[].appInfo.frontEndUrl"),
            ),
        ];
        for (activity, body, expected) in cases {
            assert_eq!(build(activity, body).unwrap_err(), expected, "{body}");
        }
    }

    #[test]
    fn query_instance_info_is_passed_through() {
        let r = build(
            Activity::QueryInstance,
            r#"{"info":[{"instanceId":"i","appInfo":{"frontEndUrl":"https://a","userName":"u","unknown":1}}]}"#,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(r.to_bytes()).unwrap(),
            r#"{"resultCode":"000000","resultMsg":"success.","info":[{"instanceId":"i","appInfo":{"frontEndUrl":"https://a","userName":"u"}}]}"#
        );
    }
}
