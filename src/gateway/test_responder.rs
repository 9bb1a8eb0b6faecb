//! The built-in responder for KooGallery's debugging calls (`[test_calls] mode = "builtin"`): deterministic
//! answers in the upstream contract, so console debugging and lifecycle probes never touch production.

use crate::protocol::request::UpstreamRequest;
use crate::protocol::Activity;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The answer an app would give; the same call always gets the same instance id.
pub fn answer(call: &UpstreamRequest, front_end_url: &str) -> Vec<u8> {
    let reply = match call.activity {
        Activity::NewInstance => {
            let order = format!(
                "{}:{}",
                call.order_id.as_deref().unwrap_or(""),
                call.order_line_id.as_deref().unwrap_or("")
            );
            let id = format!(
                "test-{}",
                &hex::encode(Sha256::digest(order.as_bytes()))[..20]
            );
            json!({ "instanceId": id, "appInfo": app_info(&id, front_end_url) })
        }
        Activity::QueryInstance => {
            let info: Vec<Value> = call
                .instance_ids
                .iter()
                .flatten()
                .map(|id| json!({ "instanceId": id, "appInfo": app_info(id, front_end_url) }))
                .collect();
            json!({ "info": info })
        }
        Activity::RefreshInstance
        | Activity::UpdateInstanceStatus
        | Activity::ReleaseInstance
        | Activity::UpgradeInstance
        | Activity::OrderNotify
        | Activity::ExpireInstance => json!({}),
    };
    reply.to_string().into_bytes()
}

fn app_info(instance_id: &str, front_end_url: &str) -> Value {
    json!({ "frontEndUrl": front_end_url, "userName": "koogallery-test", "password": format!("t-{}", instance_id.chars().take(12).collect::<String>()), "memo": "koogate test responder" })
}
