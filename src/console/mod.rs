//! The seller's console: a read-only page on the admin listener (`/console`) showing the last calls, health per
//! activity with KooGallery's five-day rule, and the certificate, keys, routes, store, usage queue and order API.
//!
//! Everything on it comes from the journal (through the reader `koogate journal` uses, without personal data) and
//! from the metrics registry; see docs/console.md.

mod health;
mod page;
mod samples;
mod status;
mod tail;
mod view;

use crate::clock::Clock;
use crate::config::ConsoleAccess;
use crate::metrics::Metrics;
use crate::proxy::server::CurrentGateway;
use crate::state::StoreKind;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::sync::{Arc, Mutex};
use tail::Tail;

/// The page's policy: its own script, style and fetches only; nothing inline, no frames, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// The cookie the login form sets (the token itself: `HttpOnly`, `SameSite=Strict`, only sent to `/console`).
const COOKIE: &str = "koogate_console";
/// A login form body is a token of at most 256 characters, encoded.
const MAX_LOGIN_BYTES: usize = 1_024;

const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");
const LOGIN: &str = include_str!("assets/login.html");

/// Whether a request path belongs to the console.
pub fn serves(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// The console's state: the journal's tail it has read so far, shared by every request.
pub struct Console {
    current: CurrentGateway,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
    tail: Arc<Mutex<Option<Tail>>>,
}

type Answer = Response<Full<Bytes>>;

impl Console {
    pub fn new(current: CurrentGateway, metrics: Metrics, clock: Arc<dyn Clock>) -> Self {
        Self {
            current,
            metrics,
            clock,
            tail: Arc::default(),
        }
    }

    /// Answers a request to a console path (see [`serves`]).
    pub async fn answer(&self, request: Request<Incoming>) -> Answer {
        let access = self.current.load().config().console.clone();
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        match (&access, method, path.as_str()) {
            (ConsoleAccess::Off, _, _) => plain(StatusCode::NOT_FOUND, "not found\n"),
            (_, Method::GET, "/console/console.js") => {
                asset("text/javascript; charset=utf-8", SCRIPT)
            }
            (_, Method::GET, "/console/console.css") => asset("text/css; charset=utf-8", STYLE),
            (ConsoleAccess::Token(token), Method::POST, "/console/login") => {
                login(token, request).await
            }
            (_, Method::GET, "/console/login") => html(StatusCode::OK, login_page("")),
            (_, Method::GET, "/console" | "/console/live") if !admitted(&access, &request) => {
                let mut response = html(
                    StatusCode::UNAUTHORIZED,
                    login_page("This page needs the admin token."),
                );
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"koogate console\""),
                );
                response
            }
            (_, Method::GET, "/console" | "/console/live") => {
                let filters = page::Filters::parse(request.uri().query().unwrap_or(""));
                let live = match self.live(filters.clone()).await {
                    Ok(live) => live,
                    Err(e) => {
                        tracing::warn!(error = %e, "console cannot read the journal");
                        return plain(StatusCode::SERVICE_UNAVAILABLE, "cannot read the journal\n");
                    }
                };
                if path == "/console" {
                    html(StatusCode::OK, page::page(&filters, &live))
                } else {
                    html(StatusCode::OK, live)
                }
            }
            (_, Method::GET | Method::POST, _) => plain(StatusCode::NOT_FOUND, "not found\n"),
            _ => plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        }
    }

    /// Reads the journal's new tail (on a blocking thread: it is file I/O) and renders the live part.
    async fn live(&self, filters: page::Filters) -> std::io::Result<String> {
        let gateway = self.current.load_full();
        let (tail, metrics, now_ms) =
            (self.tail.clone(), self.metrics.clone(), self.clock.now_ms());
        let rendered = tokio::task::spawn_blocking(move || {
            let config = gateway.config();
            let data_dir = match &config.store.kind {
                StoreKind::Memory => None,
                StoreKind::Local { data_dir } | StoreKind::Redis { data_dir, .. } => {
                    Some(data_dir.clone())
                }
            };
            let mut guard = tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if guard.as_ref().map(Tail::data_dir) != data_dir.as_deref() {
                *guard = data_dir.map(Tail::new);
            }
            if let Some(tail) = guard.as_mut() {
                tail.refresh(now_ms)?;
            }
            let tail = guard.as_ref();
            let samples = samples::Samples::gather(metrics.registry());
            let tables = status::tables(&status::Inputs {
                config,
                samples: &samples,
                tail,
                store_healthy: gateway.store_health().is_healthy(),
                now_ms,
            });
            let health = tail.map(|t| health::health(t, now_ms));
            let calls: Vec<_> = tail
                .into_iter()
                .flat_map(Tail::calls)
                .filter(|e| filters.matches(e))
                .take(page::ROWS_SHOWN)
                .collect();
            Ok(page::live(config, health.as_ref(), &calls, &tables, now_ms))
        })
        .await;
        rendered.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Whether a request may see the page: always when open; with a token, by `Authorization: Bearer` or the cookie.
fn admitted<B>(access: &ConsoleAccess, request: &Request<B>) -> bool {
    let token = match access {
        ConsoleAccess::Off => return false,
        ConsoleAccess::Open => return true,
        ConsoleAccess::Token(token) => token,
    };
    let headers = request.headers();
    if token.admits(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes())) {
        return true;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .any(|value| token.admits(Some(format!("Bearer {value}").as_bytes())))
}

/// `POST /console/login` with `token=…`: sets the cookie and sends the browser to the page.
async fn login(token: &crate::usage::auth::BearerToken, request: Request<Incoming>) -> Answer {
    let Ok(body) = Limited::new(request.into_body(), MAX_LOGIN_BYTES)
        .collect()
        .await
    else {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "too large\n");
    };
    let body = body.to_bytes();
    let presented = String::from_utf8_lossy(&body)
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(|v| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let presented = zeroize::Zeroizing::new(presented);
    if !token.admits(Some(format!("Bearer {}", presented.as_str()).as_bytes())) {
        return html(
            StatusCode::UNAUTHORIZED,
            login_page("That is not the admin token."),
        );
    }
    let mut response = plain(StatusCode::SEE_OTHER, "");
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/console"));
    // The token is printable ASCII without spaces (checked when loaded), so it is a valid cookie value.
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "{COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict",
        presented.as_str()
    )) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    response
}

fn login_page(message: &str) -> String {
    LOGIN.replace("{message}", &page::escape(message))
}

fn asset(content_type: &'static str, body: &'static str) -> Answer {
    let mut response = respond(
        StatusCode::OK,
        content_type,
        Bytes::from_static(body.as_bytes()),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn html(status: StatusCode, body: String) -> Answer {
    respond(status, "text/html; charset=utf-8", Bytes::from(body))
}

fn plain(status: StatusCode, body: &'static str) -> Answer {
    respond(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

/// Every console answer carries the policy and is never cached or framed.
fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Answer {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::auth::BearerToken;

    fn request(headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get("/console");
        for (n, v) in headers {
            builder = builder.header(*n, *v);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn a_token_is_needed_by_header_or_cookie_when_configured() {
        let access =
            ConsoleAccess::Token(BearerToken::new("0123456789abcdef-token".into()).unwrap());
        assert!(!admitted(&access, &request(&[])));
        assert!(admitted(
            &access,
            &request(&[("authorization", "Bearer 0123456789abcdef-token")])
        ));
        assert!(admitted(
            &access,
            &request(&[("cookie", "a=b; koogate_console=0123456789abcdef-token")])
        ));
        assert!(!admitted(
            &access,
            &request(&[("cookie", "koogate_console=0123456789abcdef-toke")])
        ));
        assert!(!admitted(
            &access,
            &request(&[("cookie", "xkoogate_console=0123456789abcdef-token")])
        ));
        assert!(admitted(&ConsoleAccess::Open, &request(&[])));
        assert!(!admitted(&ConsoleAccess::Off, &request(&[])));
    }

    #[test]
    fn the_policy_allows_no_inline_script_and_the_assets_are_files() {
        assert!(CONTENT_SECURITY_POLICY.starts_with("default-src 'none'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
        assert!(!LOGIN.contains("<script") && !LOGIN.contains("style="));
        let shell = page::page(&page::Filters::default(), "");
        assert!(shell.contains(r#"<script src="/console/console.js" defer></script>"#));
        assert_eq!(shell.matches("<script").count(), 1);
    }
}
