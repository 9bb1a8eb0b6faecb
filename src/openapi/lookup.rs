//! The order lookup step: cache, then a signed `GET …/order/query` within a budget, classified into an order or
//! a bounded failure reason.

use super::cache::OrderCache;
use super::client::{ClientError, OpenApiClient};
use super::metrics::OpenApiMetrics;
use super::order::{bounded_code, parse_answer, AnswerError, Order};
use super::ORDER_QUERY_PATH;
use crate::clock::Clock;
use bytes::Bytes;
use http::Method;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Where a found order came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Api,
    Cache,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Cache => "cache",
        }
    }
}

/// Why no order could be had. Messages are constants plus a bounded code: never content, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum LookupFailure {
    #[error("order lookup timed out")]
    Timeout,
    #[error("order lookup could not reach the KooGallery API")]
    Unreachable(#[source] ClientError),
    #[error("the KooGallery API refused koogate's signature ({0})")]
    SignatureRefused(&'static str),
    #[error("the KooGallery API answered {0}")]
    Mkt(&'static str),
    #[error("the KooGallery API answered HTTP {0}")]
    HttpStatus(u16),
    #[error("the KooGallery API answer is not a usable order")]
    InvalidAnswer,
    #[error("the order has no line with the call's orderLineId")]
    LineNotFound,
}

impl LookupFailure {
    /// A call that produced no usable HTTP answer: a timeout, or an unreadable (or oversized) answer, or no
    /// connection at all.
    pub fn from_client(error: ClientError) -> Self {
        match error {
            ClientError::Timeout => LookupFailure::Timeout,
            ClientError::Body | ClientError::TooLarge => LookupFailure::InvalidAnswer,
            other @ (ClientError::Unreachable(_) | ClientError::Request) => {
                LookupFailure::Unreachable(other)
            }
        }
    }

    /// A bounded reason: the `outcome` metric label, the log field and `orderLookup.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            LookupFailure::Timeout => "timeout",
            LookupFailure::Unreachable(_) => "unreachable",
            LookupFailure::SignatureRefused(_) => "signature_refused",
            LookupFailure::Mkt(_) => "mkt_error",
            LookupFailure::HttpStatus(_) => "http_status",
            LookupFailure::InvalidAnswer => "invalid_answer",
            LookupFailure::LineNotFound => "line_not_found",
        }
    }

    /// The MKT or APIGW code KooGallery answered (bounded), if any.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            LookupFailure::SignatureRefused(code) | LookupFailure::Mkt(code) => Some(code),
            LookupFailure::Timeout
            | LookupFailure::Unreachable(_)
            | LookupFailure::HttpStatus(_)
            | LookupFailure::InvalidAnswer
            | LookupFailure::LineNotFound => None,
        }
    }
}

/// `orderLookup` in the normalised call when a lookup failed and `on_failure = "forward"`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LookupStatus {
    pub status: &'static str,
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

impl LookupStatus {
    pub fn failed(failure: &LookupFailure) -> Self {
        Self {
            status: "failed",
            reason: failure.reason(),
            code: failure.code(),
        }
    }
}

/// The lookup service: one per gateway snapshot, sharing the cache across reloads.
#[derive(Clone)]
pub struct OrderLookup {
    client: OpenApiClient,
    cache: Arc<OrderCache>,
    metrics: OpenApiMetrics,
    clock: Arc<dyn Clock>,
}

impl OrderLookup {
    pub fn new(
        client: OpenApiClient,
        cache: Arc<OrderCache>,
        metrics: OpenApiMetrics,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            client,
            cache,
            metrics,
            clock,
        }
    }

    /// The order (restricted to `line` when given), from the cache or the API, within `budget`.
    pub async fn lookup(
        &self,
        order_id: &str,
        line: Option<&str>,
        budget: Duration,
    ) -> Result<(Order, Source), LookupFailure> {
        let line_key = line.unwrap_or("");
        let now_ms = self.clock.now_ms();
        if let Some(answer) = self.cache.get(order_id, line_key, now_ms) {
            if let Ok(order) = parse_answer(&answer, line) {
                self.count("cache", "MKT.0000");
                return Ok((order, Source::Cache));
            }
        }
        let started = Instant::now();
        let result = tokio::time::timeout(budget, self.query(order_id, line))
            .await
            .unwrap_or(Err(LookupFailure::Timeout));
        self.metrics
            .order_lookup_duration
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok((order, answer)) => {
                self.cache.insert(order_id, line_key, answer, now_ms);
                self.metrics
                    .order_cache_entries
                    .set(self.cache.len() as i64);
                self.count("api", "MKT.0000");
                Ok((order, Source::Api))
            }
            Err(failure) => {
                self.count(failure.reason(), failure.code().unwrap_or("none"));
                Err(failure)
            }
        }
    }

    fn count(&self, outcome: &str, code: &str) {
        self.metrics
            .order_lookups
            .with_label_values(&[outcome, code])
            .inc();
    }

    async fn query(
        &self,
        order_id: &str,
        line: Option<&str>,
    ) -> Result<(Order, Bytes), LookupFailure> {
        let mut query = vec![("orderId".to_owned(), order_id.to_owned())];
        if let Some(line) = line {
            query.push(("orderLineId".to_owned(), line.to_owned()));
        }
        let answer = self
            .client
            .send_signed(Method::GET, ORDER_QUERY_PATH, &query, Bytes::new(), &[])
            .await
            .map_err(LookupFailure::from_client)?;
        let order = classify(answer.status, &answer.body, line)?;
        Ok((order, answer.body))
    }
}

/// Turns an HTTP answer into an order or a failure: a gateway refusal (401/403), an MKT code in the body
/// (whatever the status), another HTTP status, or an unusable body.
pub fn classify(status: u16, body: &[u8], line: Option<&str>) -> Result<Order, LookupFailure> {
    if matches!(status, 401 | 403) {
        let code = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.get("error_code")
                    .and_then(|c| c.as_str())
                    .map(bounded_code)
            })
            .unwrap_or("other");
        return Err(LookupFailure::SignatureRefused(code));
    }
    match parse_answer(body, line) {
        Ok(order) if status == 200 => Ok(order),
        Ok(_) => Err(LookupFailure::HttpStatus(status)),
        Err(AnswerError::Mkt(code)) => Err(LookupFailure::Mkt(bounded_code(&code))),
        Err(AnswerError::LineNotFound) => Err(LookupFailure::LineNotFound),
        Err(AnswerError::NotJson | AnswerError::NoOrder) if status != 200 => {
            Err(LookupFailure::HttpStatus(status))
        }
        Err(AnswerError::NotJson | AnswerError::NoOrder) => Err(LookupFailure::InvalidAnswer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_refusal_code_then_status() {
        let cases: [(u16, &str, &str, Option<&str>); 6] = [
            (
                401,
                r#"{"error_code":"APIGW.0301"}"#,
                "signature_refused",
                Some("APIGW.0301"),
            ),
            (403, "", "signature_refused", Some("other")),
            (
                500,
                r#"{"resultCode":"MKT.0999"}"#,
                "mkt_error",
                Some("MKT.0999"),
            ),
            (
                200,
                r#"{"resultCode":"MKT.0150"}"#,
                "mkt_error",
                Some("MKT.0150"),
            ),
            (502, "<html>bad gateway</html>", "http_status", None),
            (200, "{}", "invalid_answer", None),
        ];
        for (status, body, reason, code) in cases {
            let failure = classify(status, body.as_bytes(), None).unwrap_err();
            assert_eq!(
                (failure.reason(), failure.code()),
                (reason, code),
                "{status} {body}"
            );
        }
        let ok = r#"{"resultCode":"MKT.0000","orderInfo":{"orderId":"o","orderLine":[{"orderLineId":"o-1"}]}}"#;
        assert!(classify(200, ok.as_bytes(), Some("o-1")).is_ok());
        assert_eq!(
            classify(200, ok.as_bytes(), Some("o-2"))
                .unwrap_err()
                .reason(),
            "line_not_found"
        );
    }
}
