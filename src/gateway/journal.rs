//! What a verified call leaves in the audit journal.

use super::call::{CallMeta, Finished};
use super::Gateway;
use crate::protocol::request::{CallIds, UpstreamRequest};
use crate::protocol::timefmt::rfc3339;
use crate::state::journal::JournalEntry;

impl Gateway {
    /// The journal entry for a call, with the buyer's personal data sealed; `None` when the store keeps no journal.
    pub(super) fn journal_entry(
        &self,
        finished: &Finished,
        call: Option<&UpstreamRequest>,
        meta: &CallMeta,
    ) -> Option<JournalEntry> {
        if !self.store.journals() {
            return None;
        }
        let at_ms = self.clock.now_ms();
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
            .ok()
            .and_then(rfc3339);
        let (known, response) = (&finished.known, &finished.response);
        // Personal data (the decrypted buyer, and the order query's buyer) is only ever written sealed.
        let buyer = call.and_then(|c| c.buyer.as_ref());
        let order_buyer = call
            .and_then(|c| c.order.as_ref())
            .and_then(|o| o.buyer.as_ref());
        let sealed = match (buyer, order_buyer) {
            (None, None) => None,
            _ => serde_json::to_vec(
                &serde_json::json!({ "buyer": buyer, "orderBuyer": order_buyer }),
            )
            .ok()
            .map(|plain| self.store.seal(&plain)),
        };
        // A call that failed after parsing (a decryption error, an unreachable upstream) has no normalised call:
        // its ids as sent still let `koogate journal --order` find the attempt.
        let sent = |id: fn(&CallIds) -> &Option<String>| {
            known.ids.as_ref().and_then(|ids| id(ids).clone())
        };
        let instance_id = response
            .instance_id
            .clone()
            .or_else(|| call.and_then(|c| c.instance_id.clone()))
            .or_else(|| call.and_then(|c| c.instance_ids.as_ref().map(|ids| ids.join(","))))
            .or_else(|| sent(|ids| &ids.instance_id));
        Some(JournalEntry {
            at: at.unwrap_or_default(),
            at_ms,
            request_id: meta.request_id.clone(),
            generation: known.generation.map_or("unknown", |g| g.name()).to_owned(),
            activity: known.activity.map_or("unknown", |a| a.name()).to_owned(),
            result_code: response.result_code.as_str().to_owned(),
            reason: finished.error.as_ref().map(|e| e.reason().to_owned()),
            test_flag: known.test_flag,
            order_id: call
                .and_then(|c| c.order_id.clone())
                .or_else(|| sent(|ids| &ids.order_id)),
            order_line_id: call
                .and_then(|c| c.order_line_id.clone())
                .or_else(|| sent(|ids| &ids.order_line_id)),
            instance_id,
            from_record: finished.from_record,
            latency_us: meta.started.elapsed().as_micros() as u64,
            upstream_us: known.upstream_us,
            traceparent: meta.traceparent.clone(),
            sealed,
        })
    }
}
