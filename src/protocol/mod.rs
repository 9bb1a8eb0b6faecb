//! KooGallery's wire protocol: signatures, activities, result codes, the upstream contract. No network here.
//!
//! Everything in this module is pure: it takes bytes and time and returns values, so the gateway, the tests and
//! (later) the simulator share one implementation.

pub mod activity;
pub mod body_sign;
pub mod canonical_json;
pub mod fields;
pub mod idempotency;
pub mod mac;
pub mod query;
pub mod request;
pub mod response;
pub mod result_code;
pub mod timefmt;
pub mod v1;
pub mod v2;
pub mod verified;

pub use activity::{Activity, Generation};
pub use result_code::ResultCode;
