//! koogate: a TLS-terminating sidecar that speaks KooGallery's SaaS protocol for an existing web app.
//!
//! * [`protocol`] — the wire protocol, pure and network-free (signatures, activities, result codes, contract).
//! * [`gateway`] — the request path: verify, replay-check, normalise, forward, sign.
//! * [`proxy`] — plumbing: TLS, listeners, upstream client, admin endpoint.
//! * [`config`], [`metrics`], [`secret`] — operations.
#![forbid(unsafe_code)]

pub mod config;
pub mod protocol;
pub mod secret;
