//! `koogate simulate`: KooGallery's debugger in a box. Sends the debugging cases to any production URL — koogate
//! or not — with correct signatures, fresh nonces and `testFlag=1`, and judges every answer like the console:
//! HTTP 200, JSON, a valid `resultCode`, a correct `Body-Sign`, the fields each activity needs, within 5 s, and
//! idempotency. Then two negative probes: a tampered signature and a replayed nonce must get `000001`.
//!
//! The protocol code is the gateway's own (`crate::protocol`); nothing is implemented twice.

pub mod case;
pub mod client;
pub mod judge;
pub mod report;

use case::{Case, Context};
use client::{CallError, KooClient};
use serde::Serialize;
use serde_json::Value;

/// How a run goes.
pub struct RunOptions<'a> {
    pub field_key: &'a crate::protocol::fields::FieldKey,
    /// Send the two negative probes (tampered signature, replayed nonce) after the cases.
    pub probes: bool,
    /// Give the cases' order ids a suffix unique to this run, so no answer recorded for an earlier run (koogate's
    /// idempotency records) can stand in for the app's. Off: the console's fixed mock ids, as KooGallery sends them.
    pub fresh_order_ids: bool,
    /// `{instanceId}` before any `newInstance` case answered one (`--instance-id`).
    pub instance_id: Option<String>,
}

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
    /// The answer's `resultMsg`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_msg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The target's request id (koogate's `X-Request-Id`), to find the call in its logs and journal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// koogate answered from its record of an earlier call: the app was not asked this time.
    pub from_record: bool,
    pub elapsed_ms: u64,
    /// When the call was sent (RFC 3339, UTC).
    pub started_at: String,
    /// The answer body as received (shown with `-v`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub target: String,
    /// koogate's version (the tool that judged).
    pub version: String,
    pub started_at: String,
    pub finished_at: String,
    /// Certificates were not checked (`--insecure`).
    pub insecure: bool,
    pub passed: usize,
    pub failed: usize,
    /// Cases not sent because the run stopped early.
    pub not_run: usize,
    /// Why the run stopped early: the target could not be reached at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    pub cases: Vec<Outcome>,
}

/// Runs `cases` in order against `url`, then the negative probes; `on_outcome` sees each verdict as it is made.
pub async fn run(
    client: &KooClient,
    url: &str,
    cases: &[Case],
    options: &RunOptions<'_>,
    on_outcome: &mut dyn FnMut(&Outcome),
) -> Report {
    let started_at = now_rfc3339();
    let a_year_from_now = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    let mut ctx = Context {
        instance_id: options.instance_id.clone(),
        expire_time: crate::protocol::timefmt::koogallery(a_year_from_now, false),
        field_key: options.field_key,
    };
    let run_tag = options
        .fresh_order_ids
        .then(|| hex::encode(rand::random::<[u8; 4]>()).to_uppercase());
    let mut outcomes = Vec::new();
    let mut stopped = None;
    for case in cases {
        let (outcome, unreachable) =
            run_case(client, url, case, &mut ctx, run_tag.as_deref()).await;
        on_outcome(&outcome);
        outcomes.push(outcome);
        if let Some(reason) = unreachable {
            stopped = Some(reason);
            break;
        }
    }
    let not_run = cases.len() - outcomes.len();
    if options.probes && stopped.is_none() {
        for outcome in negative_probes(client, url).await {
            on_outcome(&outcome);
            outcomes.push(outcome);
        }
    }
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    Report {
        target: url.to_owned(),
        version: env!("KOOGATE_LONG_VERSION").to_owned(),
        started_at,
        finished_at: now_rfc3339(),
        insecure: client.insecure(),
        passed: outcomes.len() - failed,
        failed,
        not_run,
        stopped,
        cases: outcomes,
    }
}

/// One case; the second value is set when the target cannot be reached at all (the run stops).
async fn run_case(
    client: &KooClient,
    url: &str,
    case: &Case,
    ctx: &mut Context<'_>,
    run_tag: Option<&str>,
) -> (Outcome, Option<String>) {
    let started_at = now_rfc3339();
    let mut call = match case::fill(&case.call, ctx) {
        Ok(call) => call,
        Err(e) => {
            let reason = format!("case not runnable: {e}");
            return (Outcome::failed(&case.name, reason, started_at), None);
        }
    };
    if let Some(tag) = run_tag {
        case::fresh_order_ids(&mut call, tag);
    }
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
    let unreachable = match &answer {
        Err(CallError::Transport(reason)) => Some(reason.clone()),
        _ => None,
    };
    let activity = call["activity"].as_str().unwrap_or_default();
    let remembered = ctx.instance_id.clone();
    let (outcome, body) = judged(&case.name, answer, client.key(), started_at, |body| {
        judge::expected(
            activity,
            body,
            &case.expect,
            remembered.as_deref(),
            client.key(),
        )
    });
    // Remembered even when the case failed for another reason (a slow answer, a missing field), so the cases that
    // follow can still run against the instance the target created.
    if let (true, Some(body)) = (case.expect.remember_instance, body) {
        ctx.instance_id = body["instanceId"]
            .as_str()
            .map(str::to_owned)
            .or(ctx.instance_id.take());
    }
    (outcome, unreachable)
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
    let name = "tampered signature is refused";
    let started_at = now_rfc3339();
    let first = refused(
        name,
        "the target does not verify signatures: a call with a tampered signature",
        client.send_v2(url, &tampered).await,
        client.key(),
        started_at,
    );

    let name = "replayed nonce is refused";
    let replay = client.sign_v2(body.as_bytes());
    let started_at = now_rfc3339();
    let second = match client.send_v2(url, &replay).await {
        Err(reason) => Outcome::failed(name, reason.to_string(), started_at),
        Ok(_) => {
            let started_at = now_rfc3339();
            refused(
                name,
                "the target does not check nonces: a second call with the same nonce",
                client.send_v2(url, &replay).await,
                client.key(),
                started_at,
            )
        }
    };
    vec![first, second]
}

/// A probe that must get `000001`; `what` says what accepting it would mean.
fn refused(
    name: &str,
    what: &str,
    answer: Result<client::Answer, CallError>,
    key: &[u8],
    started_at: String,
) -> Outcome {
    judged(name, answer, key, started_at, |body| {
        match body["resultCode"].as_str().unwrap_or_default() {
            "000001" => Ok(()),
            code => Err(format!(
                "SECURITY: {what} got resultCode {code}; a forged or replayed call must get 000001 and have no \
                 effect"
            )),
        }
    })
    .0
}

/// The console's generic checks, then `check`. Also returns the answer's JSON when it had some (passed or not).
fn judged(
    name: &str,
    answer: Result<client::Answer, CallError>,
    key: &[u8],
    started_at: String,
    check: impl FnOnce(&Value) -> Result<(), String>,
) -> (Outcome, Option<Value>) {
    let answer = match answer {
        Ok(answer) => answer,
        Err(reason) => return (Outcome::failed(name, reason.to_string(), started_at), None),
    };
    let parsed: Option<Value> = serde_json::from_slice(&answer.body).ok();
    let mut outcome = Outcome::failed(name, String::new(), started_at);
    outcome.elapsed_ms = answer.elapsed.as_millis() as u64;
    outcome.http_status = Some(answer.status);
    outcome.request_id = answer.request_id.clone();
    outcome.from_record = answer.from_record;
    outcome.body = Some(String::from_utf8_lossy(&answer.body).into_owned());
    if let Some(body) = &parsed {
        outcome.result_code = body["resultCode"].as_str().map(str::to_owned);
        outcome.result_msg = body["resultMsg"].as_str().map(str::to_owned);
    }
    match judge::generic(&answer, key).and_then(|body| check(&body)) {
        Ok(()) => {
            outcome.passed = true;
            outcome.reason = None;
        }
        Err(reason) => outcome.reason = Some(reason),
    }
    (outcome, parsed)
}

impl Outcome {
    fn failed(name: &str, reason: String, started_at: String) -> Self {
        Self {
            name: name.to_owned(),
            passed: false,
            reason: Some(reason),
            result_code: None,
            result_msg: None,
            http_status: None,
            request_id: None,
            from_record: false,
            elapsed_ms: 0,
            started_at,
            body: None,
        }
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
