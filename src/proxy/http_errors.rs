//! HTTP-level refusals: what hyper answers by itself, and methods that cannot carry a KooGallery answer.
//!
//! * A request hyper cannot parse (headers over 16 KiB or over 100 of them, a malformed request line, header or
//!   framing such as a bad `Content-Length`) gets hyper's automatic `400`/`414`/`431` with no body. [`SignedErrors`]
//!   replaces those bytes, as they are written, with a signed KooGallery `000002` answer and `connection: close`: the
//!   request cannot be delimited, so nothing more is read from that connection. koogate's own answers are always
//!   `200` (or the `405`s below), so the rewrite can only ever meet hyper's.
//! * `HEAD` cannot carry a body, hence no `Body-Sign` either: it gets `405` without both ([`fit_to_method`]).
//! * `CONNECT` answered `200` would open a tunnel: it gets `405` with the signed answer.

use crate::protocol::ResultCode;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the methods KooGallery uses are; sent in `Allow` with a `405`.
const ALLOW: &str = "GET, POST";

/// The status lines of hyper's automatic answers to requests it cannot parse.
const AUTOMATIC: [&[u8]; 3] = [b"HTTP/1.1 400 ", b"HTTP/1.1 414 ", b"HTTP/1.1 431 "];

/// Adapts the signed answer to the request's method: `HEAD` and `CONNECT` get `405` (see the module docs).
pub fn fit_to_method(
    method: &Method,
    mut response: Response<Full<Bytes>>,
) -> Response<Full<Bytes>> {
    if method == Method::HEAD {
        let mut refused = Response::new(Full::new(Bytes::new()));
        *refused.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        refused
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
        return refused;
    }
    if method == Method::CONNECT {
        *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    }
    response
}

/// A complete HTTP/1.1 answer: the signed `body`, then the connection closes.
pub fn signed_close(body: &[u8], signature: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json;charset=UTF-8\r\n{}: {signature}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        crate::protocol::body_sign::HEADER,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The bytes of the signed answer that replaces hyper's, made when needed.
pub type Replacement = Box<dyn Fn() -> Vec<u8> + Send + Sync>;

/// Wraps a connection's stream and turns hyper's automatic error answers into signed KooGallery ones.
pub struct SignedErrors<IO> {
    io: IO,
    replacement: Replacement,
    /// The replacement being written: bytes, how many are out, and the length hyper asked to write.
    pending: Option<(Vec<u8>, usize, usize)>,
    /// After the replacement nothing else is sent.
    replaced: bool,
    on_replace: Box<dyn Fn() + Send + Sync>,
}

impl<IO> SignedErrors<IO> {
    /// `on_replace` runs once per replaced answer (a metric).
    pub fn new(io: IO, replacement: Replacement, on_replace: Box<dyn Fn() + Send + Sync>) -> Self {
        Self {
            io,
            replacement,
            pending: None,
            replaced: false,
            on_replace,
        }
    }
}

impl<IO: AsyncWrite + Unpin> SignedErrors<IO> {
    /// Writes out the pending replacement; `Ready(Ok(n))` with the length hyper asked for once done.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((bytes, written, asked)) = &mut self.pending {
            if *written == bytes.len() {
                let asked = *asked;
                self.pending = None;
                return Poll::Ready(Ok(asked));
            }
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(0))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for SignedErrors<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for SignedErrors<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_some() {
            return this.drive(cx);
        }
        if this.replaced {
            // hyper may still flush the rest of its own answer: it is dropped, the signed one was complete.
            return Poll::Ready(Ok(buf.len()));
        }
        if AUTOMATIC.iter().any(|line| buf.starts_with(line)) {
            this.replaced = true;
            (this.on_replace)();
            this.pending = Some(((this.replacement)(), 0, buf.len()));
            return this.drive(cx);
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pending.is_some() {
            ready!(this.drive(cx))?;
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pending.is_some() {
            ready!(this.drive(cx))?;
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// Signed `000002`, for [`SignedErrors`]. The request's path is unknown (it could not be parsed), so the answer is
/// signed with the default key for unauthenticated answers.
pub fn invalid_request(gateway: &crate::gateway::Gateway) -> Vec<u8> {
    let (body, signature) = gateway.unauthenticated_answer("", ResultCode::InvalidParameters);
    signed_close(&body, &signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn wrap(io: tokio::io::DuplexStream) -> SignedErrors<tokio::io::DuplexStream> {
        SignedErrors::new(io, Box::new(|| signed_close(b"{}", "sig")), Box::new(|| {}))
    }

    #[tokio::test]
    async fn an_automatic_431_is_replaced_by_the_signed_answer_and_nothing_after_it() {
        let (server, mut client) = tokio::io::duplex(4096);
        let mut wrapped = wrap(server);
        wrapped
            .write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        wrapped.write_all(b"more").await.unwrap();
        wrapped.shutdown().await.unwrap();
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, signed_close(b"{}", "sig"));
    }

    #[tokio::test]
    async fn koogate_answers_pass_unchanged() {
        let (server, mut client) = tokio::io::duplex(1024);
        let mut wrapped = wrap(server);
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 400 inside a body";
        wrapped.write_all(answer).await.unwrap();
        wrapped.shutdown().await.unwrap();
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, answer);
    }
}
