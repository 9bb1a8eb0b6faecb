//! Network plumbing: TLS, listeners and connections, request bodies, the admin endpoint.

pub mod admin;
pub mod body;
pub mod certificate;
pub mod http_errors;
pub mod server;
pub mod slots;
pub mod tls;
pub mod traceparent;
