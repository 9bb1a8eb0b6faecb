//! Which generation a call is, and its authentication: the only way to a [`Verified`] call.

use super::error::GatewayError;
use super::Gateway;
use crate::protocol::v1::{self, V1Query};
use crate::protocol::v2::{self, SignedQuery};
use crate::protocol::verified::Verified;
use crate::protocol::Generation;
use crate::proxy::body::read_bounded;
use http::{header, Method, Request};
use hyper::body::Incoming;

/// Header carrying the token of a "V1 POST" call.
const V1_POST_TOKEN_HEADER: &str = "authToken";

impl Gateway {
    /// The generation a request uses, judged from its method and headers; an error when it is neither, or
    /// when it is V1 and V1 is off (its own reason, so an operator sees why KooGallery's V1 calls fail).
    pub(super) fn generation_of(
        &self,
        request: &Request<Incoming>,
    ) -> Result<Generation, GatewayError> {
        let verify = &self.config.verify;
        match *request.method() {
            Method::GET if verify.v1_enabled => Ok(Generation::V1),
            Method::GET => Err(GatewayError::V1Disabled),
            Method::POST
                if verify.v1_post && request.headers().contains_key(V1_POST_TOKEN_HEADER) =>
            {
                Ok(Generation::V1)
            }
            Method::POST => Ok(Generation::V2),
            _ => Err(GatewayError::MethodNotAllowed),
        }
    }

    /// Reads what is signed (bounded), checks freshness and signature, and returns the verified call.
    pub(super) async fn authenticate(
        &self,
        request: Request<Incoming>,
        generation: Generation,
    ) -> Result<Verified, GatewayError> {
        let verify = &self.config.verify;
        let keys = &self.config.keys;
        match (generation, request.method() == Method::GET) {
            (Generation::V2, _) => {
                let query = SignedQuery::parse(request.uri().query().unwrap_or(""))?;
                let body = self.read_body(request).await?;
                Ok(v2::verify(
                    keys,
                    query,
                    body,
                    self.clock.now_ms(),
                    verify.timestamp_window,
                )?)
            }
            (Generation::V1, is_get) => {
                let query = if is_get {
                    V1Query::parse(request.uri().query().unwrap_or(""))?
                } else {
                    let token = request
                        .headers()
                        .get(V1_POST_TOKEN_HEADER)
                        .and_then(|v| v.to_str().ok());
                    let token = token.unwrap_or_default().to_owned();
                    V1Query::from_post(&self.read_body(request).await?, &token)?
                };
                Ok(v1::verify(
                    keys,
                    query,
                    self.clock.now_ms(),
                    verify.v1_timestamp_window,
                )?)
            }
        }
    }

    async fn read_body(&self, request: Request<Incoming>) -> Result<bytes::Bytes, GatewayError> {
        let limits = &self.config.server;
        let content_length = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        Ok(read_bounded(
            request.into_body(),
            content_length,
            limits.max_body_bytes,
            limits.body_read_timeout,
        )
        .await?)
    }
}
