//! Debugging cases: data files (TOML) a seller can copy and edit, with placeholders filled at run time.

use crate::protocol::fields::FieldKey;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// One case as written in `config/cases/*.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// `v1` or `v2`.
    pub generation: String,
    /// KooGallery's body (V2) or query parameters (V1).
    pub call: Value,
    #[serde(default)]
    pub expect: Expect,
}

/// What the answer must show beyond the console's generic checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default = "success")]
    pub result_codes: Vec<String>,
    /// Remember the answer's `instanceId` as `{instanceId}` for later cases.
    #[serde(default)]
    pub remember_instance: bool,
    /// The answer's `instanceId` equals the remembered one (idempotency).
    #[serde(default)]
    pub same_instance: bool,
    /// `queryInstance`: every `info[].appInfo.frontEndUrl` is present.
    #[serde(default)]
    pub front_end_url: bool,
    /// V1: `encryptType` is set and `userName`/`password` decrypt with the key.
    #[serde(default)]
    pub encrypted_credentials: bool,
}

impl Default for Expect {
    fn default() -> Self {
        Self {
            result_codes: success(),
            remember_instance: false,
            same_instance: false,
            front_end_url: false,
            encrypted_credentials: false,
        }
    }
}

fn success() -> Vec<String> {
    vec!["000000".to_owned()]
}

macro_rules! builtin {
    ($($file:literal),* $(,)?) => {
        &[$(($file, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/config/cases/", $file)))),*]
    };
}

/// The default V2 suite (`config/cases/*.toml`), embedded so the binary works anywhere.
const V2_CASES: &[(&str, &str)] = builtin![
    "01-newInstance.toml",
    "02-newInstance-retry.toml",
    "03-queryInstance.toml",
    "04-refreshInstance.toml",
    "05-updateInstanceStatus-freeze.toml",
    "06-updateInstanceStatus-unfreeze.toml",
    "07-upgradeInstance.toml",
    "08-orderNotify.toml",
    "09-newInstance-eu.toml",
    "10-releaseInstance.toml",
];

/// The default V1 suite (`config/cases/v1/*.toml`).
const V1_CASES: &[(&str, &str)] = builtin![
    "v1/01-newInstance.toml",
    "v1/02-newInstance-retry.toml",
    "v1/03-queryInstance.toml",
    "v1/04-refreshInstance.toml",
    "v1/05-instanceStatus.toml",
    "v1/06-upgrade.toml",
    "v1/07-expireInstance.toml",
    "v1/08-releaseInstance.toml",
];

/// Parses one case file's text.
pub fn parse(name: &str, text: &str) -> anyhow::Result<Case> {
    let case: Case =
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{name}: {}", e.message()))?;
    anyhow::ensure!(
        matches!(case.generation.as_str(), "v1" | "v2"),
        "{name}: generation must be \"v1\" or \"v2\", not {:?}",
        case.generation
    );
    anyhow::ensure!(
        case.call.is_object(),
        "{name}: [call] must be a table of KooGallery fields"
    );
    Ok(case)
}

/// The built-in suite: V2, or V1 with `v1`.
pub fn builtin(v1: bool) -> anyhow::Result<Vec<Case>> {
    let files = if v1 { V1_CASES } else { V2_CASES };
    files.iter().map(|(name, text)| parse(name, text)).collect()
}

/// One case file, or every `*.toml` in a directory (sorted by name).
pub fn load(path: &Path) -> anyhow::Result<Vec<Case>> {
    let read = |p: &Path| -> anyhow::Result<Case> {
        let text = std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
        parse(&p.display().to_string(), &text)
    };
    if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        files.iter().map(|p| read(p)).collect()
    } else {
        Ok(vec![read(path)?])
    }
}

/// Values placeholders are replaced with.
pub struct Context<'a> {
    pub instance_id: Option<String>,
    pub expire_time: String,
    pub field_key: &'a FieldKey,
}

/// Replaces `{uuid}`, `{instanceId}`, `{expireTime}` and `{encrypt:TEXT}` in every string of `value`.
pub fn fill(value: &Value, ctx: &Context<'_>) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => Value::String(fill_text(s, ctx)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| fill(v, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), fill(v, ctx)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn fill_text(text: &str, ctx: &Context<'_>) -> Result<String, String> {
    if let Some(plain) = text
        .strip_prefix("{encrypt:")
        .and_then(|t| t.strip_suffix('}'))
    {
        return Ok(ctx.field_key.encrypt(plain));
    }
    let mut out = text
        .replace("{uuid}", &uuid())
        .replace("{expireTime}", &ctx.expire_time);
    if out.contains("{instanceId}") {
        let id = ctx
            .instance_id
            .as_deref()
            .ok_or(
                "needs {instanceId}: no newInstance case of this run answered one (it failed above, or was not \
                 run); pass --instance-id ID to use an existing instance",
            )?;
        out = out.replace("{instanceId}", id);
    }
    Ok(out)
}

/// Makes the order ids of `call` unique to a run: `orderId` X becomes `X-TAG`, and an `orderLineId` `X-000001`
/// becomes `X-TAG-000001` (still the order's id followed by the line number), at any depth (the EU form nests them).
pub fn fresh_order_ids(call: &mut Value, tag: &str) {
    match call {
        Value::Object(map) => {
            for (name, value) in map.iter_mut() {
                match (name.as_str(), value) {
                    ("orderId", Value::String(id)) => *id = format!("{id}-{tag}"),
                    ("orderLineId", Value::String(line)) => {
                        *line = match line.rsplit_once('-') {
                            Some((order, number)) => format!("{order}-{tag}-{number}"),
                            None => format!("{line}-{tag}"),
                        }
                    }
                    (_, value) => fresh_order_ids(value, tag),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| fresh_order_ids(v, tag)),
        _ => {}
    }
}

/// A random (version 4) UUID, as KooGallery's `businessId`.
fn uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_order_ids_keep_the_line_under_its_order() {
        let mut call = serde_json::json!({"orderId":"MOCKPERIODYEARNEW","orderLineId":"MOCKPERIODYEARNEW-000001",
            "orderInfo":[{"orderId":"EU1","orderLineId":"EU1-000002"}],"businessId":"b"});
        fresh_order_ids(&mut call, "AB12");
        assert_eq!(call["orderId"], "MOCKPERIODYEARNEW-AB12");
        assert_eq!(call["orderLineId"], "MOCKPERIODYEARNEW-AB12-000001");
        assert_eq!(call["orderInfo"][0]["orderLineId"], "EU1-AB12-000002");
        assert_eq!(call["businessId"], "b");
    }
}
