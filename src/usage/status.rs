//! The queue's status as JSON (`GET /v1/usage/status`) and as text (`koogate usage status`).

use super::queue::Snapshot;
use serde_json::{json, Value};
use std::fmt::Write;

/// The status document; times as RFC 3339 UTC like the rest of the contract.
pub fn to_json(snapshot: &Snapshot, now_ms: u64) -> Value {
    let rejected: Vec<Value> = snapshot
        .recent_rejected
        .iter()
        .map(|r| {
            json!({
                "meteringSn": r.metering_sn,
                "instanceId": r.instance_id,
                "code": r.code,
                "reason": r.reason,
                "rejectedAt": rfc3339(r.at_ms),
            })
        })
        .collect();
    json!({
        "queued": snapshot.queued,
        "oldestQueuedAgeSeconds": snapshot.oldest_accepted_ms.map(|at| now_ms.saturating_sub(at) / 1000),
        "sent": snapshot.sent_total,
        "rejected": snapshot.rejected_total,
        "recentRejected": rejected,
    })
}

/// A few lines for people, from the status document.
pub fn to_text(status: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "queued:   {}", status["queued"]);
    match status["oldestQueuedAgeSeconds"].as_u64() {
        Some(age) => {
            let _ = writeln!(out, "oldest:   {age} s ago");
        }
        None => {
            let _ = writeln!(out, "oldest:   -");
        }
    }
    let _ = writeln!(out, "sent:     {}", status["sent"]);
    let _ = writeln!(out, "rejected: {}", status["rejected"]);
    for r in status["recentRejected"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {} {} (instance {}) at {}: {}",
            r["code"].as_str().unwrap_or("?"),
            r["meteringSn"].as_str().unwrap_or("?"),
            r["instanceId"].as_str().unwrap_or("?"),
            r["rejectedAt"].as_str().unwrap_or("?"),
            r["reason"].as_str().unwrap_or(""),
        );
    }
    out
}

fn rfc3339(ms: u64) -> Option<String> {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok()?;
    crate::protocol::timefmt::rfc3339(at)
}
