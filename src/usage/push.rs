//! The real [`UsagePush`]: `POST …/isv/usage-data` through the signed OpenAPI client (IAM AK/SK), with the body
//! signature headers `ts`, `nonce`, `signature` keyed with the KooGallery access key (`koogallery-openapi.md` §4).

use super::sender::UsagePush;
use super::verdict::{PushAnswer, PushFailure};
use crate::clock::Clock;
use crate::openapi::client::{ClientError, OpenApiClient};
use crate::openapi::sign::usage_signature;
use crate::protocol::keys::AccessKey;
use bytes::Bytes;
use http::{HeaderName, Method};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The usage-data path below the API's base URL.
pub const USAGE_DATA_PATH: &str = "/api/mkp-openapi-public/global/v1/isv/usage-data";

pub struct OpenApiPush {
    pub client: OpenApiClient,
    /// The KooGallery access key the body signature is keyed with.
    pub access_key: AccessKey,
    pub clock: Arc<dyn Clock>,
}

/// A random version-4 UUID from the CSPRNG, as in Huawei's example.
fn nonce() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl UsagePush for OpenApiPush {
    fn push(
        &self,
        body: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<PushAnswer, PushFailure>> + Send + '_>> {
        Box::pin(async move {
            let ts = self.clock.now_ms().to_string();
            let nonce = nonce();
            let signature = usage_signature(self.access_key.expose(), &ts, &nonce, &body);
            let headers = [
                (HeaderName::from_static("ts"), ts),
                (HeaderName::from_static("nonce"), nonce),
                (HeaderName::from_static("signature"), signature),
            ];
            let answer = self
                .client
                .send_signed(
                    Method::POST,
                    USAGE_DATA_PATH,
                    &[],
                    Bytes::from(body),
                    &headers,
                )
                .await;
            match answer {
                Ok(answer) => Ok(PushAnswer {
                    status: answer.status,
                    body: answer.body.to_vec(),
                }),
                Err(ClientError::Timeout) => Err(PushFailure::Timeout),
                Err(ClientError::Request) => {
                    Err(PushFailure::Build(Box::new(ClientError::Request)))
                }
                Err(e) => Err(PushFailure::Unreachable(Box::new(e))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn nonces_are_fresh_uuids() {
        let (a, b) = (super::nonce(), super::nonce());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
