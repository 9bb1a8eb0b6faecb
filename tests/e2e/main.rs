//! End-to-end tests: the real gateway, real TLS, real sockets.
