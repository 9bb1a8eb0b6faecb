//! `koogate simulate`: KooGallery's debugger in a box. Sends the debugging cases to any production URL — koogate
//! or not — with correct signatures, fresh nonces and `testFlag=1`, and judges every answer like the console:
//! HTTP 200, JSON, a valid `resultCode`, a correct `Body-Sign`, the fields each activity needs, within 5 s, and
//! idempotency. Then two negative probes: a tampered signature and a replayed nonce must get `000001`.
//!
//! The protocol code is the gateway's own (`crate::protocol`); nothing is implemented twice.

pub mod case;
pub mod client;
pub mod judge;

use case::{Case, Context};
use client::KooClient;
use serde::Serialize;
use serde_json::Value;

/// One case's verdict.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub name: String,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_code: Option<String>,
    pub elapsed_ms: u64,
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub passed: usize,
    pub failed: usize,
    pub cases: Vec<Outcome>,
}

/// Runs `cases` in order against `url`, then the negative probes (`probes`).
pub async fn run(
    client: &KooClient,
    url: &str,
    cases: &[Case],
    field_key: &crate::protocol::fields::FieldKey,
    probes: bool,
) -> Report {
    let a_year_from_now = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    let mut ctx = Context {
        instance_id: None,
        expire_time: crate::protocol::timefmt::koogallery(a_year_from_now, false),
        field_key,
    };
    let mut outcomes = Vec::new();
    for case in cases {
        outcomes.push(run_case(client, url, case, &mut ctx).await);
    }
    if probes {
        outcomes.extend(negative_probes(client, url).await);
    }
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    Report {
        target: url.to_owned(),
        passed: outcomes.len() - failed,
        failed,
        cases: outcomes,
    }
}

async fn run_case(client: &KooClient, url: &str, case: &Case, ctx: &mut Context<'_>) -> Outcome {
    let call = match case::fill(&case.call, ctx) {
        Ok(call) => call,
        Err(e) => return Outcome::failed(&case.name, format!("case not runnable: {e}")),
    };
    let answer = match case.generation.as_str() {
        "v1" => {
            let text = |value: &Value| {
                value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned)
            };
            let params: Vec<(String, String)> = call
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, value)| (name.clone(), text(value)))
                .collect();
            client.call_v1(url, &params).await
        }
        _ => client.call(url, &call.to_string()).await,
    };
    let activity = call["activity"].as_str().unwrap_or_default();
    let remembered = ctx.instance_id.clone();
    let (outcome, body) = judged(&case.name, answer, client.key(), |body| {
        judge::expected(
            activity,
            body,
            &case.expect,
            remembered.as_deref(),
            client.key(),
        )
    });
    if let (true, Some(body)) = (case.expect.remember_instance, body) {
        ctx.instance_id = body["instanceId"]
            .as_str()
            .map(str::to_owned)
            .or(ctx.instance_id.take());
    }
    outcome
}

/// A tampered signature and a replayed nonce must both be refused with a signed `000001`.
async fn negative_probes(client: &KooClient, url: &str) -> Vec<Outcome> {
    let body = serde_json::json!({"activity":"orderNotify","orderId":"MOCKPROBE","orderLineId":"MOCKPROBE-000001","testFlag":"1"}).to_string();
    let mut tampered = client.sign_v2(body.as_bytes());
    // Flip one hex digit of the signature.
    tampered.query = match tampered.query.strip_prefix("signature=") {
        Some(rest) => {
            let flipped = if rest.starts_with('0') { '1' } else { '0' };
            format!("signature={flipped}{}", &rest[1..])
        }
        None => tampered.query,
    };
    let first = refused(
        "tampered signature is refused",
        client.send_v2(url, &tampered).await,
        client.key(),
    );

    let replay = client.sign_v2(body.as_bytes());
    let second = match client.send_v2(url, &replay).await {
        Err(reason) => Outcome::failed("replayed nonce is refused", reason),
        Ok(_) => refused(
            "replayed nonce is refused",
            client.send_v2(url, &replay).await,
            client.key(),
        ),
    };
    vec![first, second]
}

fn refused(name: &str, answer: Result<client::Answer, String>, key: &[u8]) -> Outcome {
    judged(name, answer, key, |body| {
        match body["resultCode"].as_str().unwrap_or_default() {
            "000001" => Ok(()),
            code => Err(format!(
                "resultCode {code}; a forged or replayed call must get 000001 and no effect"
            )),
        }
    })
    .0
}

/// The console's generic checks, then `check`; the parsed body when the answer passed.
fn judged(
    name: &str,
    answer: Result<client::Answer, String>,
    key: &[u8],
    check: impl FnOnce(&Value) -> Result<(), String>,
) -> (Outcome, Option<Value>) {
    let answer = match answer {
        Ok(answer) => answer,
        Err(reason) => return (Outcome::failed(name, reason), None),
    };
    let mut outcome = Outcome::failed(name, String::new());
    outcome.elapsed_ms = answer.elapsed.as_millis() as u64;
    let verdict = judge::generic(&answer, key).and_then(|body| {
        outcome.result_code = body["resultCode"].as_str().map(str::to_owned);
        check(&body).map(|()| body)
    });
    match verdict {
        Ok(body) => {
            outcome.passed = true;
            outcome.reason = None;
            (outcome, Some(body))
        }
        Err(reason) => {
            outcome.reason = Some(reason);
            (outcome, None)
        }
    }
}

impl Outcome {
    fn failed(name: &str, reason: String) -> Self {
        Self {
            name: name.to_owned(),
            passed: false,
            reason: Some(reason),
            result_code: None,
            elapsed_ms: 0,
        }
    }
}

impl Report {
    /// A readable table; coloured when `colour`.
    pub fn table(&self, colour: bool) -> String {
        let paint = |ok: bool, text: &str| match (colour, ok) {
            (false, _) => text.to_owned(),
            (true, true) => format!("\u{1b}[32m{text}\u{1b}[0m"),
            (true, false) => format!("\u{1b}[31m{text}\u{1b}[0m"),
        };
        let width = self
            .cases
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(10);
        let mut out = format!("koogate simulate → {}\n", self.target);
        for case in &self.cases {
            let verdict = paint(case.passed, if case.passed { "PASS" } else { "FAIL" });
            let code = case.result_code.as_deref().unwrap_or("------");
            out.push_str(&format!(
                "{verdict}  {:<width$}  {code}  {:>5} ms\n",
                case.name, case.elapsed_ms
            ));
            if let Some(reason) = &case.reason {
                out.push_str(&format!("      {reason}\n"));
            }
        }
        out.push_str(&format!(
            "{} cases passed, {} failed\n",
            self.passed, self.failed
        ));
        out
    }

    pub fn json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}
