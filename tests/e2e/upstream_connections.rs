//! koogate's own upstream connections: reused across calls, closed after the idle timeout, a connection the app
//! closed while idle does not fail the next call, and a request that reached the app is never sent twice.
//!
//! The app here is a scripted HTTP/1.1 server on raw sockets, so the test sees every accept and every close.

use crate::support::*;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the scripted app does.
#[derive(Clone, Copy)]
enum Script {
    /// Answers and keeps the connection open until koogate closes it.
    KeepAlive,
    /// Answers, then closes a connection that stays idle this long.
    CloseIdleAfter(Duration),
    /// Reads request number `n` (counted from 1 over all connections) whole, then closes without an answer.
    HangUpOnRequest(usize),
}

#[derive(Default)]
struct Counts {
    accepts: AtomicUsize,
    requests: AtomicUsize,
    /// Connections koogate closed (the app read end-of-file).
    closed_by_koogate: AtomicUsize,
}

struct App {
    url: String,
    counts: Arc<Counts>,
}

impl App {
    async fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let counts = Arc::new(Counts::default());
        let shared = counts.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.accepts.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, script, shared.clone()));
            }
        });
        Self { url, counts }
    }

    fn accepts(&self) -> usize {
        self.counts.accepts.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.counts.requests.load(Ordering::SeqCst)
    }

    fn closed_by_koogate(&self) -> usize {
        self.counts.closed_by_koogate.load(Ordering::SeqCst)
    }

    async fn gateway(&self, upstream_toml: &str) -> TestGateway {
        let placeholder = Upstream::start(Behaviour::App).await;
        let mut options = Options::new(&placeholder);
        options.upstream_url = self.url.clone();
        options.upstream_toml = upstream_toml.into();
        // The memory store: these tests count connections, not records.
        options.store_toml = "backend = \"memory\"".into();
        TestGateway::start_with(options).await
    }
}

/// One connection of the scripted app.
async fn serve(mut stream: TcpStream, script: Script, counts: Arc<Counts>) {
    loop {
        let idle_limit = match script {
            Script::CloseIdleAfter(limit) => Some(limit),
            _ => None,
        };
        let request = match idle_limit {
            Some(limit) => match tokio::time::timeout(limit, read_request(&mut stream)).await {
                Ok(request) => request,
                // Idle too long: the app closes (koogate must not be hurt by it).
                Err(_) => return,
            },
            None => read_request(&mut stream).await,
        };
        if !request {
            counts.closed_by_koogate.fetch_add(1, Ordering::SeqCst);
            return;
        }
        let n = counts.requests.fetch_add(1, Ordering::SeqCst) + 1;
        if matches!(script, Script::HangUpOnRequest(m) if m == n) {
            return;
        }
        let body = r#"{"instanceId":"inst-1"}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads one request (head and `content-length` body); `false` on end-of-file before a whole request.
async fn read_request(stream: &mut TcpStream) -> bool {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buffer.len() >= end + 4 + length {
                return true;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A distinct `newInstance` call (its own order, so no idempotency record answers it).
fn call(i: usize) -> Call {
    Call::json(
        &json!({"activity":"newInstance","businessId":format!("b-{i}"),
        "orderId":format!("order-{i}"),"orderLineId":format!("order-{i}-000001")}),
    )
}

/// Waits up to `limit` for `condition`, checking every 10 ms.
async fn eventually(limit: Duration, condition: impl Fn() -> bool) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

#[tokio::test]
async fn many_calls_share_one_upstream_connection() {
    let app = App::start(Script::KeepAlive).await;
    let gateway = app.gateway("").await;
    for i in 0..20 {
        gateway.client().send(&call(i)).await.assert_code("000000");
    }
    assert_eq!(app.requests(), 20);
    assert_eq!(app.accepts(), 1, "one TCP connection for every call");
    assert_eq!(app.closed_by_koogate(), 0);
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let app = App::start(Script::KeepAlive).await;
    let gateway = app.gateway("pool_idle_timeout_ms = 300").await;
    gateway.client().send(&call(1)).await.assert_code("000000");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(app.closed_by_koogate(), 0, "still open inside the timeout");
    assert!(
        eventually(Duration::from_secs(2), || app.closed_by_koogate() == 1).await,
        "koogate closed the idle connection after the timeout"
    );
    gateway.client().send(&call(2)).await.assert_code("000000");
    assert_eq!(app.accepts(), 2, "the next call opened a new connection");
}

#[tokio::test]
async fn a_connection_the_app_closed_while_idle_does_not_fail_the_next_call() {
    let app = App::start(Script::CloseIdleAfter(Duration::from_millis(100))).await;
    let gateway = app.gateway("").await;
    gateway.client().send(&call(1)).await.assert_code("000000");
    // The app closes the idle connection; koogate's idle timeout (4 s) has not passed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    gateway.client().send(&call(2)).await.assert_code("000000");
    assert_eq!(app.requests(), 2);
    assert_eq!(app.accepts(), 2);
}

#[tokio::test]
async fn a_request_that_reached_the_app_is_not_sent_again() {
    // The second call goes on the reused connection; the app reads it whole and hangs up without answering.
    let app = App::start(Script::HangUpOnRequest(2)).await;
    let gateway = app.gateway("").await;
    gateway.client().send(&call(1)).await.assert_code("000000");
    gateway.client().send(&call(2)).await.assert_code("000005");
    assert_eq!(app.requests(), 2, "the app saw the second call once");
    assert_eq!(app.accepts(), 1, "no second connection for a retry");
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_upstream_failures_total{reason="upstream_unreachable",route="app"}"#
        ),
        1.0,
        "{metrics}"
    );
    // The broken connection was dropped: the next call gets a new one and succeeds.
    gateway.client().send(&call(3)).await.assert_code("000000");
    assert_eq!(app.accepts(), 2);
}
