//! One keep-alive HTTP/1.1 connection to the app, driven by the task that uses it: no connection task, no hop.
//!
//! hyper's client connection is two halves, the request sender and the connection future that does the I/O.
//! koogate keeps both in [`Conn`] and polls the connection future alongside each exchange, so a call is served by
//! the task of the request that makes it. An idle connection is polled by no one; before reuse
//! [`Conn::is_usable`] polls it once without waiting, which sees a close by the app that has already arrived.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A byte stream to the app: plain TCP or TLS over TCP.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

type Driver = Connection<TokioIo<Stream>, Full<Bytes>>;

/// One connection: the request sender and the connection future it needs polled.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// `None` once the connection future has completed (closed or failed); dropping it closes the socket and hands
    /// back a request that was queued but never written. Boxed: it is large (buffers, state), and a `Conn` moves
    /// between the idle stack and the calls' futures.
    driver: Option<Box<Driver>>,
    /// When it was last put back on the idle stack.
    pub idle_since: Instant,
}

/// An exchange that failed.
pub enum ExchangeError {
    /// The connection closed before any byte of the request was written: `request` can go on another connection.
    NotSent {
        request: Box<Request<Full<Bytes>>>,
        error: hyper::Error,
    },
    /// The request may have reached the app (written, or partly): it must not be sent again.
    Failed(hyper::Error),
    /// The answer head arrived (with `status`) but its body did not, or not whole.
    Body { status: StatusCode, too_large: bool },
}

impl Conn {
    /// Starts HTTP/1.1 on `stream` (no I/O happens until the first exchange).
    pub async fn open(stream: Stream) -> Result<Self, hyper::Error> {
        let (sender, driver) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        Ok(Self {
            sender,
            driver: Some(Box::new(driver)),
            idle_since: Instant::now(),
        })
    }

    /// Polls the idle connection once without waiting: `false` if it has closed (the app hung up, or it failed) or
    /// would not take a request. No waker is kept, so a later close wakes no task.
    pub fn is_usable(&mut self) -> bool {
        let Some(driver) = self.driver.as_mut() else {
            return false;
        };
        let mut cx = Context::from_waker(Waker::noop());
        if Pin::new(&mut **driver).poll(&mut cx).is_ready() {
            self.driver = None;
            return false;
        }
        !self.sender.is_closed()
    }

    /// Sends `request` and reads the whole answer (at most `limit` bytes of body). On `Ok` the connection is ready
    /// for another exchange; on `Err` it must be dropped.
    pub async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
        limit: usize,
    ) -> Result<(StatusCode, Bytes), ExchangeError> {
        let Self { sender, driver, .. } = self;
        let sent = drive(driver, async {
            if let Err(error) = sender.ready().await {
                let request = Box::new(request);
                return Err(ExchangeError::NotSent { request, error });
            }
            sender
                .try_send_request(request)
                .await
                .map_err(|mut e| match e.take_message() {
                    Some(request) => ExchangeError::NotSent {
                        request: Box::new(request),
                        error: e.into_error(),
                    },
                    None => ExchangeError::Failed(e.into_error()),
                })
        })
        .await?;
        let status = sent.status();
        match drive(driver, Limited::new(sent.into_body(), limit).collect()).await {
            Ok(body) => Ok((status, body.to_bytes())),
            Err(e) => Err(ExchangeError::Body {
                status,
                too_large: e.is::<http_body_util::LengthLimitError>(),
            }),
        }
    }
}

/// Runs `work` while polling the connection future, in this task. When the connection future completes first it
/// is dropped, which settles whatever `work` waits for (a queued request comes back unsent, a body ends).
async fn drive<F: Future>(driver: &mut Option<Box<Driver>>, work: F) -> F::Output {
    let mut work = pin!(work);
    poll_fn(|cx| {
        if let Some(connection) = driver.as_mut() {
            if Pin::new(&mut **connection).poll(cx).is_ready() {
                *driver = None;
            }
        }
        work.as_mut().poll(cx)
    })
    .await
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Uri;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn request() -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(Bytes::from_static(b"{}")));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = Uri::from_static("/hook");
        request
            .headers_mut()
            .insert(http::header::HOST, http::HeaderValue::from_static("app"));
        request
    }

    /// Reads one request with a 2-byte body (head, then `{}`).
    async fn read_request(stream: &mut TcpStream) {
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(b"\r\n\r\n{}") {
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "a whole request");
            seen.push(byte[0]);
        }
    }

    /// An app that answers the first request on its one connection, then closes it (after reading a second request
    /// whole, when `read_second`).
    async fn app(read_second: bool) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            read_request(&mut stream).await;
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                .await
                .unwrap();
            if read_second {
                // Reads the second request whole, then hangs up without an answer.
                read_request(&mut stream).await;
            }
        });
        (addr, task)
    }

    async fn connect(addr: std::net::SocketAddr) -> Conn {
        let tcp = TcpStream::connect(addr).await.unwrap();
        Conn::open(Stream::Plain(tcp)).await.unwrap()
    }

    #[tokio::test]
    async fn a_connection_the_app_closed_while_idle_hands_the_request_back_unsent() {
        let (addr, app) = app(false).await;
        let mut conn = connect(addr).await;
        let (status, body) = conn.exchange(request(), 1024).await.ok().unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"{}"[..]));
        app.await.unwrap();
        // Let the app's FIN arrive; the exchange below skips `is_usable` on purpose.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        match conn.exchange(request(), 1024).await {
            Err(ExchangeError::NotSent { request, .. }) => assert_eq!(request.uri(), "/hook"),
            _ => panic!("the request must come back unsent"),
        }
    }

    #[tokio::test]
    async fn a_request_the_app_read_is_not_handed_back() {
        let (addr, app) = app(true).await;
        let mut conn = connect(addr).await;
        assert!(conn.exchange(request(), 1024).await.is_ok());
        assert!(conn.is_usable(), "idle and open after a whole answer");
        let second = conn.exchange(request(), 1024).await;
        app.await.unwrap();
        assert!(matches!(second, Err(ExchangeError::Failed(_))));
        assert!(!conn.is_usable());
    }

    #[tokio::test]
    async fn an_answer_over_the_limit_fails_the_exchange() {
        let (addr, _app) = app(false).await;
        let mut conn = connect(addr).await;
        match conn.exchange(request(), 1).await {
            Err(ExchangeError::Body { status, too_large }) => {
                assert_eq!(status, StatusCode::OK);
                assert!(too_large);
            }
            _ => panic!("a 2-byte answer exceeds a 1-byte limit"),
        }
    }
}
