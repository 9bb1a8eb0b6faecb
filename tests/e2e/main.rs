//! End-to-end tests: the real gateway on port 0 with real TLS, a real upstream, real clients.

mod support;

mod acme;

mod binary;
mod certificates;
mod cli;
mod console;
mod console_http;
mod contract;
mod crash;
mod enrichment;
mod happy;
mod hostile;
mod http_errors;
mod idempotency;
mod interop;
mod journal_trace;
mod lifecycle;
mod limits;
mod openapi_cli;
mod operations;
mod operator;
mod python_app;
mod readme;
mod redis;
mod robustness;
mod simulate;
mod startup;
mod store;
mod tls;
mod tls_resumption;
mod upstream_auth;
mod upstream_connections;
mod upstream_failures;
mod usage;
mod v1;
