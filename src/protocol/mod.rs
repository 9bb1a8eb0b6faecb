//! KooGallery's wire protocol: signatures, activities, result codes, the upstream contract. No network here.
//!
//! Everything in this module is pure: it takes bytes and time and returns values, so the gateway, the tests and
//! (later) the simulator share one implementation.

pub mod activity;
pub mod auth;
pub mod body_sign;
pub mod canonical_json;
pub mod fields;
pub mod idempotency;
pub mod keys;
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

#[cfg(test)]
mod limits_tests;

#[cfg(test)]
mod documented_vectors {
    /// The test sources that reproduce the vectors of `docs/koogallery-protocol.md` section 8.
    const TESTS: &[&str] = &[
        include_str!("v2.rs"),
        include_str!("v1/tests.rs"),
        include_str!("body_sign.rs"),
        include_str!("fields/tests.rs"),
    ];

    /// Every expected value in the reference's vectors section appears in a unit test: the docs and the tests
    /// cannot drift apart.
    #[test]
    fn every_documented_vector_is_a_unit_test() {
        let doc = include_str!("../../docs/koogallery-protocol.md");
        let vectors = doc
            .split("## 8. Vectors")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("section 8 of docs/koogallery-protocol.md");
        let values: Vec<&str> = vectors
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|v| v.len() >= 24 && !v.contains(' ') && !v.contains('&') && !v.contains('{'))
            .collect();
        assert!(values.len() >= 20, "found only {values:?}");
        for value in values {
            assert!(
                TESTS.iter().any(|source| source.contains(value)),
                "the documented vector value {value} is not in any unit test"
            );
        }
    }
}
