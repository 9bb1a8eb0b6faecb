//! A fixed-count load driver for `bench/stable.sh`: sends exactly `--calls` signed V2 `orderNotify` calls over
//! `--connections` TLS keep-alive connections, each signed when sent (so no call goes stale), and checks every
//! answer is `000000`. Counting calls rather than seconds lets CPU, syscalls and RSS be compared per call.
//!
//! `cargo run --release --example load -- --url https://127.0.0.1:8443/koogallery/v2 --ca cert.pem
//!  --key-file access-key --calls 20000 --connections 16`

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What the bench's calls carry (like `bench/gen_requests.py`): one debugging order, so every call after the first
/// is answered from the idempotency record.
const BODY: &str = r#"{"activity":"orderNotify","orderId":"CS2306070000ABCDE","orderLineId":"CS2306070000ABCDE-000001","testFlag":"1"}"#;

struct Args {
    host: String,
    port: u16,
    path: String,
    ca: String,
    key: Vec<u8>,
    calls: u64,
    connections: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    let (mut url, mut ca, mut key, mut calls, mut connections) =
        (String::new(), String::new(), String::new(), 10_000, 16);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--url" => url = value,
            "--ca" => ca = value,
            "--key-file" => key = std::fs::read_to_string(value)?.trim().to_owned(),
            "--calls" => calls = value.parse()?,
            "--connections" => connections = value.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| anyhow::anyhow!("--url must be https://"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--url needs a port"))?;
    Ok(Args {
        host: host.to_owned(),
        port: port.parse()?,
        path: format!("/{path}"),
        ca,
        key: key.into_bytes(),
        calls,
        connections,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(args()?);
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(&args.ca)? {
        roots.add(cert?)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let run = rand::random::<u32>();
    for _ in 0..args.connections {
        let (args, next, connector) = (args.clone(), next.clone(), connector.clone());
        tasks.spawn(async move {
            let tcp = tokio::net::TcpStream::connect((args.host.as_str(), args.port)).await?;
            tcp.set_nodelay(true)?;
            let name = rustls_pki_types::ServerName::try_from(args.host.clone())?;
            let stream = connector.connect(name, tcp).await?;
            let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut failures = 0u64;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= args.calls {
                    return anyhow::Ok(failures);
                }
                let body = BODY;
                let now = koogate::clock::unix_ms();
                let nonce = format!("{run:08x}{n:024x}");
                let query =
                    koogate::protocol::v2::signed_query(&args.key, &nonce, now, body.as_bytes());
                let request = http::Request::post(format!("{}?{query}", args.path))
                    .header("host", args.host.as_str())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(body.as_bytes())))?;
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let answer = response.into_body().collect().await?.to_bytes();
                if !answer.windows(8).any(|w| w == b"\"000000\"") {
                    failures += 1;
                }
            }
        });
    }
    let mut failures = 0;
    while let Some(done) = tasks.join_next().await {
        failures += done??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "calls={} failures={failures} seconds={elapsed:.2} rate={:.0}",
        args.calls,
        args.calls as f64 / elapsed
    );
    anyhow::ensure!(failures == 0, "{failures} calls were not answered 000000");
    Ok(())
}
