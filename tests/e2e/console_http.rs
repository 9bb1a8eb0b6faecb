//! The console over plain HTTP: who may open it (loopback, or the bearer token by header or login cookie), that
//! it is off on an exposed listener without a token, and the headers every answer carries.

use crate::support::client::{parse_raw_response, read_to_close};
use crate::support::*;
use koogate::config::{Config, ConsoleAccess};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const TOKEN: &str = "console-token-0123456789abcdef";

/// One request on the admin port: (status, lower-cased head, body).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).await.unwrap();
    let raw = read_to_close(&mut stream, Duration::from_secs(3)).await;
    let (status, head, body) = parse_raw_response(&raw);
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

async fn gateway_with_admin(admin_toml: &str) -> (Upstream, TestGateway) {
    let upstream = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&upstream);
    options.admin_toml = admin_toml.into();
    options.env.push(("CONSOLE_TOKEN", TOKEN.into()));
    let gateway = TestGateway::start_with(options).await;
    (upstream, gateway)
}

#[tokio::test]
async fn an_exposed_admin_listener_serves_the_console_only_with_the_token() {
    // The config says the listener is exposed (the harness still binds it on loopback for the test).
    let (_upstream, gateway) =
        gateway_with_admin("listen = \"0.0.0.0:19901\"\ntoken_env = \"CONSOLE_TOKEN\"").await;
    let admin = gateway.admin;

    let (status, head, body) = request(admin, "GET", "/console", &[], "").await;
    assert_eq!(status, 401, "{body}");
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    assert!(body.contains(r#"action="/console/login""#) && !body.contains(r#"id="calls""#));
    for (path, header) in [
        ("/console/live", "Bearer wrong-token-0123456789abcdef"),
        ("/console", "Basic abc"),
    ] {
        let (status, _, body) = request(admin, "GET", path, &[("authorization", header)], "").await;
        assert_eq!(status, 401, "{path}: {body}");
    }
    // Prometheus and the probes are not behind the token.
    assert_eq!(request(admin, "GET", "/metrics", &[], "").await.0, 200);
    assert_eq!(request(admin, "GET", "/readyz", &[], "").await.0, 200);

    let bearer = format!("Bearer {TOKEN}");
    let (status, head, body) =
        request(admin, "GET", "/console", &[("authorization", &bearer)], "").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#"<table id="calls">"#));
    assert!(
        head.contains(&format!(
            "content-security-policy: {}",
            koogate::console::CONTENT_SECURITY_POLICY
        )),
        "{head}"
    );
    assert!(
        head.contains("cache-control: no-store") && head.contains("x-frame-options: deny"),
        "{head}"
    );

    // The browser's way: the login form sets an HttpOnly cookie the page then accepts.
    let (status, _, _) = request(
        admin,
        "POST",
        "/console/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        "token=not-the-token-0123456789",
    )
    .await;
    assert_eq!(status, 401);
    let (status, head, _) = request(
        admin,
        "POST",
        "/console/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("token={TOKEN}"),
    )
    .await;
    assert_eq!(status, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .expect("a cookie")
        .to_owned();
    assert!(
        cookie.contains("httponly")
            && cookie.contains("samesite=strict")
            && cookie.contains("path=/console"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    let (status, _, body) = request(
        admin,
        "GET",
        "/console/live",
        &[("cookie", &format!("other=1; {pair}"))],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A body too large for a token is refused without being read whole.
    let (status, _, _) = request(admin, "POST", "/console/login", &[], &"x".repeat(4_096)).await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn on_loopback_the_console_is_open_and_every_answer_carries_the_policy() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    for path in [
        "/console",
        "/console/live",
        "/console/console.js",
        "/console/console.css",
        "/console/nothing",
    ] {
        let (status, head, body) = request(gateway.admin, "GET", path, &[], "").await;
        let expected = if path == "/console/nothing" { 404 } else { 200 };
        assert_eq!(status, expected, "{path}: {body}");
        assert!(
            head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
            "{path}: {head}"
        );
        assert!(head.contains("x-content-type-options: nosniff"), "{path}");
    }
    let (_, head, script) = request(gateway.admin, "GET", "/console/console.js", &[], "").await;
    assert!(
        head.contains("content-type: text/javascript") && script.contains("fetch('/console/live?'")
    );
    // The page has no inline script or style for the policy to allow.
    let (_, _, page) = request(gateway.admin, "GET", "/console", &[], "").await;
    assert_eq!(page.matches("<script").count(), 1);
    assert!(
        page.contains(r#"<script src="/console/console.js" defer></script>"#)
            && !page.contains("style=")
    );
    assert_eq!(
        request(gateway.admin, "DELETE", "/console", &[], "")
            .await
            .0,
        405
    );
}

#[tokio::test]
async fn an_exposed_listener_without_a_token_keeps_the_console_off() {
    let (_upstream, gateway) = gateway_with_admin("listen = \"0.0.0.0:19901\"").await;
    assert_eq!(
        request(gateway.admin, "GET", "/console", &[], "").await.0,
        404
    );
    assert_eq!(
        request(gateway.admin, "GET", "/console/console.js", &[], "")
            .await
            .0,
        404
    );
    assert_eq!(
        request(gateway.admin, "GET", "/metrics", &[], "").await.0,
        200
    );

    // Asking for it there without a token is a configuration error naming the key; `console = false` turns it off.
    let text = std::fs::read_to_string(&gateway.config_path).unwrap();
    let env = |name: &str| match name {
        "CONSOLE_TOKEN" => Some(TOKEN.to_owned()),
        "KEY_primary" => Some(KEY.to_owned()),
        "TEST_JOURNAL_KEY" => Some(JOURNAL_KEY.to_owned()),
        _ => None,
    };
    let with = |admin: &str| text.replace("listen = \"0.0.0.0:19901\"", admin);
    let errors = Config::from_toml(
        &with("listen = \"0.0.0.0:19901\"\nconsole = true"),
        gateway.cert.path(),
        &env,
    )
    .unwrap_err();
    assert!(
        errors.0.iter().any(|i| i.path == "admin.token_env"),
        "{errors}"
    );
    let off = Config::from_toml(
        &with("listen = \"127.0.0.1:19901\"\nconsole = false"),
        gateway.cert.path(),
        &env,
    )
    .unwrap();
    assert!(matches!(off.console, ConsoleAccess::Off));
    let token = Config::from_toml(
        &with("listen = \"0.0.0.0:19901\"\ntoken_env = \"CONSOLE_TOKEN\""),
        gateway.cert.path(),
        &env,
    )
    .unwrap();
    assert!(matches!(token.console, ConsoleAccess::Token(_)));
    assert!(!format!("{:?}", token.console).contains(TOKEN));
}
