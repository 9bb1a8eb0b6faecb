//! KooGallery's seller-side OpenAPI (seller → KooGallery): signers, the signed client, order lookup, the mock.
//!
//! * [`sign`] — SDK-HMAC-SHA256 (IAM AK/SK) and the usage-data body signature; pure, network-free.
//! * [`client`] — the signed HTTPS client every call goes through.
//! * [`mock`] — a mock KooGallery OpenAPI that verifies both signatures, for tests, the simulator and the demo.

pub mod client;
pub mod mock;
pub mod sign;
