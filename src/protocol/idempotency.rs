//! Which calls are the same operation (protocol section 7), so a retry gets the recorded answer.

use super::activity::{Activity, Generation};
use super::request::UpstreamRequest;

/// The idempotency key of a state-changing call and its fingerprint, or `None` for `queryInstance`.
///
/// A recorded answer is replayed only when the fingerprint matches too: a status change keyed by instance replays
/// `FREEZE` after `FREEZE` (a retry) but forwards `FREEZE` after `UNFREEZE` (a new operation). Debugging calls
/// (`testFlag`) live in their own namespace so they never collide with real orders.
pub fn key(call: &UpstreamRequest) -> Option<(String, String)> {
    let part = |v: &Option<String>| v.clone().unwrap_or_default();
    let (order, line, instance) = (
        part(&call.order_id),
        part(&call.order_line_id),
        part(&call.instance_id),
    );
    let (kind, fingerprint) = match call.activity {
        Activity::QueryInstance => return None,
        Activity::NewInstance => {
            let pay_per_use = call.terms.charging_mode.as_deref() == Some("ON_DEMAND");
            let key = match (call.generation, call.order_line_id.is_some(), pay_per_use) {
                (Generation::V2, true, _) => format!("order:{order}:{line}"),
                (_, _, true) => format!("order:{order}:product:{}", part(&call.product_id)),
                _ => format!("order:{order}"),
            };
            (key, String::new())
        }
        Activity::RefreshInstance => (
            format!("refresh:{instance}:{order}:{line}"),
            part(&call.terms.expire_time),
        ),
        Activity::UpgradeInstance => (format!("upgrade:{instance}:{order}:{line}"), String::new()),
        Activity::ReleaseInstance => (format!("release:{instance}"), String::new()),
        Activity::ExpireInstance => (format!("expire:{instance}:{order}"), String::new()),
        Activity::UpdateInstanceStatus => (format!("status:{instance}"), part(&call.status)),
        Activity::OrderNotify => (format!("notify:{order}:{line}"), String::new()),
    };
    let namespace = if call.test_flag { "test" } else { "real" };
    Some((format!("{namespace}:{kind}"), fingerprint))
}
