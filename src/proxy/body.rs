//! Reading a request body with a hard size limit on the bytes actually received and a deadline.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::time::Duration;
use tokio::time::Instant;

/// After an oversized body, at most this many further bytes are read and discarded so the client can still read
/// the answer (closing a socket with unread data makes the kernel send a reset that can destroy the answer).
const DRAIN_LIMIT_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds the configured limit")]
    TooLarge,
    #[error("request body was not received before the body deadline")]
    Timeout,
    #[error("request body could not be read")]
    Read,
}

/// Reads the whole body, refusing it as soon as more than `max_bytes` arrived (whatever `Content-Length` claims).
pub async fn read_bounded(
    mut body: Incoming,
    content_length: Option<u64>,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    let deadline = Instant::now() + timeout;
    if content_length.is_some_and(|len| len > max_bytes as u64) {
        if content_length.is_some_and(|len| len <= (max_bytes + DRAIN_LIMIT_BYTES) as u64) {
            drain(&mut body, DRAIN_LIMIT_BYTES + max_bytes, deadline).await;
        }
        return Err(BodyError::TooLarge);
    }
    let mut buf = BytesMut::with_capacity(content_length.map_or(1024, |l| l as usize));
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Err(_))) => return Err(BodyError::Read),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max_bytes {
                drain(&mut body, DRAIN_LIMIT_BYTES, deadline).await;
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
}

/// Reads and discards up to `limit` bytes or until the deadline, whichever comes first.
async fn drain(body: &mut Incoming, limit: usize, deadline: Instant) {
    let mut seen = 0usize;
    while seen <= limit {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}
