//! KooGallery's seller-side OpenAPI (seller → KooGallery): signers, the signed client, order lookup, the mock.
//!
//! * [`sign`] — SDK-HMAC-SHA256 (IAM AK/SK) and the usage-data body signature; pure, network-free.
//! * [`client`] — the signed HTTPS client every call goes through.
//! * [`mock`] — a mock KooGallery OpenAPI that verifies both signatures, for tests, the simulator and the demo.

pub mod cache;
pub mod client;
pub mod lookup;
pub mod metrics;
#[cfg(feature = "demo")]
pub mod mock;
pub mod order;
pub mod sign;

/// Path of KooGallery's order query (`GET`, AK/SK-signed).
pub const ORDER_QUERY_PATH: &str = "/api/mkp-openapi-public/global/v1/order/query";
/// Path of KooGallery's usage push (`POST`, AK/SK-signed plus the usage-data body signature).
pub const USAGE_DATA_PATH: &str = "/api/mkp-openapi-public/global/v1/isv/usage-data";
