//! The order-lookup step of the request path: V2 calls of the enriched activities get `order` (or, with
//! `on_failure = "forward"`, `orderLookup`) before they are forwarded.

use super::error::GatewayError;
use super::Gateway;
use crate::clock::Clock;
use crate::config::{Config, OnFailure, TestCalls};
use crate::metrics::Metrics;
use crate::openapi::cache::OrderCache;
use crate::openapi::client::OpenApiClient;
use crate::openapi::lookup::{LookupStatus, OrderLookup};
use crate::protocol::request::UpstreamRequest;
use crate::protocol::Generation;
use crate::state::StoreKind;
use std::sync::Arc;
use tokio::time::Instant;

/// The order cache: in `data_dir`, sealed, when the store is durable; in memory otherwise (or without the section).
pub(super) fn open_cache(config: &Config, now_ms: u64) -> std::io::Result<OrderCache> {
    use crate::config::koogallery_api_defaults as d;
    let (entries, ttl) = config
        .koogallery_api
        .as_ref()
        .map_or((d::ORDER_CACHE_MAX_ENTRIES, d::ORDER_CACHE_TTL), |api| {
            (api.order_cache_max_entries, api.order_cache_ttl)
        });
    let data_dir = match &config.store.kind {
        StoreKind::Local { data_dir } | StoreKind::Redis { data_dir, .. } => Some(data_dir),
        StoreKind::Memory => None,
    };
    match (
        config.koogallery_api.as_ref(),
        data_dir,
        &config.store.sealer,
    ) {
        (Some(_), Some(dir), Some(sealer)) => {
            OrderCache::durable(entries, ttl, dir, sealer.clone(), now_ms)
        }
        _ => Ok(OrderCache::memory(entries, ttl)),
    }
}

/// The lookup service for a snapshot, `None` without `[koogallery_api]`.
pub(super) fn order_lookup(
    config: &Config,
    cache: &Arc<OrderCache>,
    metrics: &Metrics,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<Option<OrderLookup>> {
    let Some(api) = &config.koogallery_api else {
        return Ok(None);
    };
    let client = OpenApiClient::new(Arc::new(api.clone()), clock.clone())?;
    metrics.openapi.order_cache_entries.set(cache.len() as i64);
    Ok(Some(OrderLookup::new(
        client,
        cache.clone(),
        metrics.openapi.clone(),
        clock.clone(),
    )))
}

impl Gateway {
    /// Adds the order to an enriched call, with the lookup's outcome for the log line. Calls answered by the
    /// built-in test responder, V1 calls, EU nested calls (which carry their order inline) and other activities
    /// pass unchanged.
    pub(super) async fn enrich(
        &self,
        mut call: UpstreamRequest,
        deadline: Instant,
    ) -> (Option<&'static str>, Result<UpstreamRequest, GatewayError>) {
        let (Some(orders), Some(api)) = (&self.orders, &self.config.koogallery_api) else {
            return (None, Ok(call));
        };
        let builtin =
            matches!(self.config.upstream.test_calls, TestCalls::Builtin { .. }) && call.test_flag;
        if call.generation != Generation::V2
            || !api.enriches(call.activity)
            || call.orders.is_some()
            || builtin
        {
            return (None, Ok(call));
        }
        let Some(order_id) = call.order_id.clone() else {
            return (None, Ok(call));
        };
        let budget = api
            .order_lookup_budget
            .min(deadline.saturating_duration_since(Instant::now()));
        match orders
            .lookup(&order_id, call.order_line_id.as_deref(), budget)
            .await
        {
            Ok((order, source)) => {
                call.order = Some(order);
                (Some(source.label()), Ok(call))
            }
            Err(failure) => {
                let reason = Some(failure.reason());
                match api.on_failure {
                    OnFailure::Retry => (reason, Err(GatewayError::OrderLookup(failure))),
                    OnFailure::Forward => {
                        call.order_lookup = Some(LookupStatus::failed(&failure));
                        (reason, Ok(call))
                    }
                }
            }
        }
    }
}
