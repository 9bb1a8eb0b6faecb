//! `koogate check`: validate a configuration without starting anything, and show what it would do.
//!
//! Problems go to standard error (each with its key path, what was expected, what was seen and what to do next),
//! the report to standard output. Any problem makes the exit code non-zero; a warning does not.

use crate::config::{Config, ConfigIssue, ProcessEnv, TestCalls};
use crate::metrics::Metrics;
use crate::protocol::Activity;
use crate::proxy::tls::{server_config, TlsError};
use crate::state::StoreKind;
use crate::upstream::Upstreams;
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::server::ParsedCertificate;
use rustls::{InconsistentKeys, RootCertStore};
use rustls_pki_types::{pem::PemObject, CertificateDer, UnixTime};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A certificate this close to its end gets a warning: enough time to renew and deploy before KooGallery's
/// twice-daily probes start failing (five failing days freeze the product).
const EXPIRY_WARNING_DAYS: i64 = 30;
/// `--probe-upstreams` waits this long for each TCP connection; a local upstream answers in microseconds.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const SECONDS_PER_DAY: i64 = 86_400;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The TOML configuration file.
    #[arg(long, short, env = "KOOGATE_CONFIG")]
    config: PathBuf,
    /// Also try a TCP connection (1 s timeout) to each route's host and port, and to Redis (no request is sent),
    /// and send one signed order query to the KooGallery API when `[koogallery_api]` is configured.
    #[arg(long)]
    probe_upstreams: bool,
}

thread_local! {
    /// While set, problems are kept instead of printed, so a header can count them first (see [`held`]).
    static HELD: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Prints a problem: the key path and what is wrong, then indented `expected`/`seen`/`next` lines.
fn problem(path: &str, message: &str, details: &[(&str, &str)]) {
    let mut text = format!("error: {path}: {message}");
    for (label, line) in details {
        text.push_str(&format!("\n  {label:<9} {line}"));
    }
    HELD.with(|held| match held.borrow_mut().as_mut() {
        Some(kept) => kept.push(text),
        None => eprintln!("{text}"),
    });
}

/// Runs `checks` (synchronous: the problems stay on this thread) and returns their problems unprinted.
fn held<T>(checks: impl FnOnce() -> T) -> (T, Vec<String>) {
    HELD.with(|held| *held.borrow_mut() = Some(Vec::new()));
    let outcome = checks();
    let kept = HELD
        .with(|held| held.borrow_mut().take())
        .unwrap_or_default();
    (outcome, kept)
}

/// A configuration issue as `check` prints it: `error:`/`warning:`, key path, message, then where it is written.
fn print_issue(kind: &str, issue: &ConfigIssue) {
    eprintln!("{kind}: {}: {}", issue.path, issue.message);
    if let Some(at) = &issue.location {
        eprintln!("  {:<9} {at}", "at:");
    }
}

/// Prints the count of configuration errors (the file's and the certificate's), then each of them.
fn print_errors(shown: &str, issues: &[ConfigIssue], others: &[String]) {
    eprintln!(
        "{shown}: {} configuration error(s):",
        issues.len() + others.len()
    );
    for issue in issues {
        print_issue("error", issue);
    }
    for other in others {
        eprintln!("{other}");
    }
}

pub async fn run(args: CheckArgs) -> anyhow::Result<bool> {
    let shown = args.config.display().to_string();
    let config = match Config::load(&args.config, &ProcessEnv) {
        Ok(config) => config,
        Err(errors) => {
            // Still check the certificate, so one run lists (and counts) every problem.
            let ((), tls) = held(|| {
                if let Some((cert, key)) = raw_tls_files(&args.config) {
                    check_tls(&cert, &key);
                }
            });
            print_errors(&shown, &errors.0, &tls);
            eprintln!(
                "next: fix each key above (config/koogate.example.toml documents every key with its unit and \
                 default) and run `koogate check` again"
            );
            return Ok(false);
        }
    };
    for warning in &config.warnings {
        print_issue("warning", warning);
    }
    print_summary(&config);
    let (checked, errors) = held(|| {
        let now = UnixTime::now().as_secs() as i64;
        // The certificate's dates are check_tls's to explain; here only what else would stop `run`.
        for (key, message) in config.startup_problems(now) {
            if key != "server.cert_chain_file" {
                problem(key, &message, &[]);
            }
        }
        let tls = match config.server.certificates.files() {
            Some((cert, key)) => check_tls(cert, key),
            None => true,
        };
        check_upstream_ca_files(&config).map(|ca| ca && tls)
    });
    if !errors.is_empty() {
        print_errors(&shown, &[], &errors);
    }
    let mut ok = checked? && errors.is_empty();
    if let Some(acme) = config.server.certificates.acme() {
        ok &= super::check_acme::check(acme);
    }
    super::order::summary(&config);
    if args.probe_upstreams {
        ok &= probe(&config).await;
        ok &= super::order::probe(&config).await;
    }
    if ok {
        println!("{shown}: valid");
    } else {
        eprintln!("{shown}: not ready: fix the errors above and run `koogate check` again");
    }
    Ok(ok)
}

/// The certificate and key paths named in the file, read from the bare TOML so they are found (and checked) even
/// when other keys are wrong.
fn raw_tls_files(path: &Path) -> Option<(PathBuf, PathBuf)> {
    let table: toml::Table = toml::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let server = table.get("server")?.as_table()?;
    let file = |key: &str| {
        server
            .get(key)
            .and_then(|v| v.as_str())
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    };
    let base = path.parent().unwrap_or(Path::new("."));
    Some((
        base.join(file("cert_chain_file")?),
        base.join(file("private_key_file")?),
    ))
}

/// Loads the chain and key exactly as `koogate run` does (rustls refuses a key that does not match the leaf),
/// then reports the leaf's validity period and whether it chains to a public CA.
fn check_tls(cert: &Path, key: &Path) -> bool {
    let (cert_shown, key_shown) = (cert.display().to_string(), key.display().to_string());
    if let Err(error) = server_config(cert, key, false) {
        explain_tls_error(error, &cert_shown, &key_shown);
        return false;
    }
    let chain: Vec<CertificateDer<'static>> =
        match CertificateDer::pem_file_iter(cert).and_then(|i| i.collect()) {
            Ok(chain) => chain,
            Err(e) => {
                problem(
                    "server.cert_chain_file",
                    &format!("cannot read {cert_shown}: {e}"),
                    &[],
                );
                return false;
            }
        };
    let Some(leaf) = chain.first() else {
        return false;
    };
    println!(
        "tls: {cert_shown} ({} certificate(s)) and the key in {key_shown} match",
        chain.len()
    );
    let Ok(parsed) = ParsedCertificate::try_from(leaf) else {
        problem(
            "server.cert_chain_file",
            "the first certificate cannot be parsed",
            &[("expected:", "an X.509 leaf certificate, first in the file")],
        );
        return false;
    };
    let algorithms = rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .all;
    let verify = |roots: &RootCertStore, at: UnixTime| {
        verify_server_cert_signed_by_trust_anchor(&parsed, roots, &chain[1..], at, algorithms)
    };
    let now = UnixTime::now();
    let Some((not_before, not_after)) = crate::proxy::tls::certificate_validity(cert) else {
        problem(
            "server.cert_chain_file",
            "the first certificate's validity period cannot be read",
            &[("expected:", "an X.509 leaf certificate, first in the file")],
        );
        return false;
    };
    if not_before > now.as_secs() as i64 {
        problem(
            "server.cert_chain_file",
            "the leaf certificate is not valid yet",
            &[
                ("expected:", "a certificate valid now"),
                ("seen:", &format!("valid from {}", when(not_before))),
                ("next:", "check this host's clock, or wait until then"),
            ],
        );
        return false;
    }
    let (end, now_secs) = (not_after, now.as_secs() as i64);
    if end < now_secs {
        problem(
            "server.cert_chain_file",
            "the leaf certificate has expired",
            &[
                (
                    "expected:",
                    "a certificate valid now (KooGallery refuses the handshake otherwise)",
                ),
                ("seen:", &format!("expired {}", when(not_after))),
                (
                    "next:",
                    "renew the certificate and install the new chain and key",
                ),
            ],
        );
        return false;
    }
    let days = (end - now_secs) / SECONDS_PER_DAY;
    if days < EXPIRY_WARNING_DAYS {
        eprintln!(
            "warning: server.cert_chain_file: the leaf certificate expires {} (in {days} day(s)): renew it now",
            when(not_after)
        );
    } else {
        println!(
            "tls: the leaf certificate expires {} (in {days} days)",
            when(not_after)
        );
    }
    let public = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    match verify(&public, now) {
        Ok(()) => println!("tls: the chain leads to a public certificate authority"),
        Err(e) => eprintln!(
            "warning: server.cert_chain_file: the chain does not lead to a public certificate authority ({e}): \
             fine for local tests, but KooGallery needs a CA-issued certificate with its intermediates in the file"
        ),
    }
    true
}

fn explain_tls_error(error: TlsError, cert: &str, key: &str) {
    let pem_next = "check the path (relative paths are relative to the configuration file) and the permissions";
    match error {
        TlsError::Certs { source, .. } => problem(
            "server.cert_chain_file",
            &format!("cannot read the certificate chain {cert}: {source}"),
            &[("expected:", "PEM certificates, leaf first"), ("next:", pem_next)],
        ),
        TlsError::NoCerts { .. } => problem(
            "server.cert_chain_file",
            &format!("no certificate in {cert}"),
            &[
                ("expected:", "-----BEGIN CERTIFICATE----- blocks, leaf first"),
                ("seen:", "none (is this the key file?)"),
                ("next:", "point server.cert_chain_file at the full chain (e.g. fullchain.pem)"),
            ],
        ),
        TlsError::Key { source, .. } => problem(
            "server.private_key_file",
            &format!("cannot read the private key {key}: {source}"),
            &[
                ("expected:", "one unencrypted PEM key (PKCS#8, PKCS#1 RSA or SEC1 EC)"),
                ("next:", pem_next),
            ],
        ),
        TlsError::EncryptedKey {
            path,
            plain,
            format,
        } => problem(
            "server.private_key_file",
            &format!("the private key {path} is encrypted ({format})"),
            &[
                ("expected:", "an unencrypted PEM key: koogate starts unattended, with no passphrase to ask for"),
                (
                    "next:",
                    &format!(
                        "decrypt it once with `openssl pkey -in {path} -out {plain}` (it asks for the \
                         passphrase), `chmod 600 {plain}`, and point server.private_key_file at it"
                    ),
                ),
            ],
        ),
        TlsError::OldCertificate { version, .. } => problem(
            "server.cert_chain_file",
            &format!("the leaf certificate in {cert} is X.509 version {version}"),
            &[
                ("expected:", "a version 3 certificate: rustls (webpki) refuses v1 and v2 server certificates"),
                (
                    "next:",
                    "re-issue it as v3 with a subjectAltName for the host (CA-issued certificates always are); \
                     for a test certificate `openssl req -x509 -new -key KEY -subj /CN=HOST \
                     -addext subjectAltName=DNS:HOST -days 365 -out CERT` (`openssl x509 -req` without an \
                     -extfile writes v1)",
                ),
            ],
        ),
        TlsError::LeafNotFirst {
            position,
            count,
            first_is_ca,
            ..
        } => problem(
            "server.cert_chain_file",
            &format!("the certificates in {cert} are in the wrong order (the leaf is not first)"),
            &[
                ("expected:", "the server's own (leaf) certificate first, then the intermediates that issued it"),
                (
                    "seen:",
                    &format!(
                        "the key in {key} belongs to certificate {position} of {count}{}",
                        if first_is_ca { "; the first one is a CA certificate" } else { "" }
                    ),
                ),
                (
                    "next:",
                    "put the leaf first (certbot's fullchain.pem is already in that order), e.g. \
                     `cat leaf.pem intermediate.pem > fullchain.pem`",
                ),
            ],
        ),
        TlsError::Rustls(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => problem(
            "server.private_key_file",
            "the private key does not match the certificate",
            &[
                ("expected:", &format!("the key of the leaf (first) certificate in {cert}")),
                ("seen:", &format!("a different key in {key}")),
                (
                    "next:",
                    "install the key this certificate was issued for (or the certificate for this key); \
                     `openssl x509 -noout -pubkey -in CERT` and `openssl pkey -pubout -in KEY` must print the same",
                ),
            ],
        ),
        TlsError::Rustls(e) => problem(
            "server",
            &format!("the certificate and key are not usable together: {e}"),
            &[("next:", "check that both files belong to the same, supported (RSA, ECDSA or Ed25519) key")],
        ),
    }
}

fn when(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(crate::protocol::timefmt::rfc3339)
        .unwrap_or_else(|| format!("at Unix time {secs}"))
}

/// Builds each route's HTTP client as `koogate run` does, which loads its `ca_file`.
fn check_upstream_ca_files(config: &Config) -> anyhow::Result<bool> {
    let metrics = Metrics::new()?;
    let mut ok = true;
    for route in config
        .upstream
        .routes
        .iter()
        .filter(|r| r.ca_file.is_some())
    {
        let mut one = config.upstream.clone();
        one.routes = vec![route.clone()];
        if let Err(e) = Upstreams::new(&one, metrics.clone()) {
            ok = false;
            problem(
                &format!("upstream.routes.{}.ca_file", route.name),
                &anyhow::Error::from(e).to_string(),
                &[
                    (
                        "expected:",
                        "PEM CA certificates (-----BEGIN CERTIFICATE-----)",
                    ),
                    (
                        "next:",
                        "point ca_file at the CA that issued the upstream's certificate",
                    ),
                ],
            );
        }
    }
    Ok(ok)
}

fn print_summary(config: &Config) {
    let keys: Vec<String> = config
        .keys
        .iter()
        .map(|(_, k)| format!("{} ({})", k.name(), k.field_key().cipher().name()))
        .collect();
    println!("access keys: {}", keys.join(", "));
    let days = config.store.retention.as_secs() / SECONDS_PER_DAY as u64;
    match &config.store.kind {
        StoreKind::Memory => println!("store: memory (nothing survives a restart)"),
        StoreKind::Local { data_dir } => println!(
            "store: local, data_dir {}, retention {days} days, journal key set",
            data_dir.display()
        ),
        StoreKind::Redis { url, prefix, timeout, data_dir, .. } => println!(
            "store: redis at {} (prefix {prefix}, timeout {} ms), journal in {}, retention {days} days",
            redis_address(url).unwrap_or_else(|| "<unreadable url>".to_owned()),
            timeout.as_millis(),
            data_dir.display()
        ),
    }
    println!("routes (activity → route → URL):");
    for activity in Activity::ALL {
        let route = config.upstream.route_for(activity);
        println!("  {:<22} → {} → {}", activity.name(), route.name, route.url);
    }
    for route in &config.upstream.routes {
        if let Some((cert, _)) = &route.client_identity {
            println!(
                "  route {} presents client certificate {}",
                route.name,
                cert.display()
            );
        }
    }
    println!(
        "upstream requests: {}",
        if config.upstream.signature_key.is_some() {
            "signed (X-Koogate-Timestamp, X-Koogate-Signature)"
        } else {
            "not signed (set upstream.signature_key_env or signature_key_file so the app can check koogate)"
        }
    );
    let verify = &config.verify;
    match (verify.v1_enabled, verify.v1_post) {
        (false, _) => println!(
            "V1 calls: off (the default) — V1 GET calls are refused with 000002, counted as \
             koogate_rejections_total{{reason=\"v1_disabled\"}}; set [v1] enabled = true for a V1 product"
        ),
        (true, post) => println!(
            "V1 calls: on, timestamp window {} ms{}",
            verify.v1_timestamp_window.as_millis(),
            if post { ", V1 POST variant too" } else { "" }
        ),
    }
    let upstream = &config.upstream;
    match &upstream.test_calls {
        TestCalls::Forward => println!("test calls (testFlag=1): forwarded like real calls, to the routes above"),
        TestCalls::Sandbox(index) => {
            let route = &upstream.routes[(*index).min(upstream.routes.len() - 1)];
            println!("test calls (testFlag=1): sandbox route {} → {}", route.name, route.url);
        }
        TestCalls::Builtin { front_end_url } => println!(
            "test calls (testFlag=1): koogate's built-in responder, nothing forwarded (frontEndUrl {front_end_url})"
        ),
    }
}

/// `host:port` of a Redis URL, without the password it may carry.
#[cfg(feature = "redis")]
pub(super) fn redis_address(url: &str) -> Option<String> {
    let client = redis::Client::open(url).ok()?;
    Some(client.get_connection_info().addr().to_string())
}

/// The host and port `--probe-upstreams` connects to for Redis.
#[cfg(feature = "redis")]
fn redis_probe_target(url: &str) -> Option<(String, u16)> {
    let client = redis::Client::open(url).ok()?;
    match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port)
        | redis::ConnectionAddr::TcpTls { host, port, .. } => Some((host.clone(), *port)),
        other => {
            println!("probe: store.redis_url {other} is not a TCP address; not probed");
            None
        }
    }
}

/// Without the `redis` feature validation refuses a Redis store, so these are never reached.
#[cfg(not(feature = "redis"))]
pub(super) fn redis_address(_: &str) -> Option<String> {
    None
}

#[cfg(not(feature = "redis"))]
fn redis_probe_target(_: &str) -> Option<(String, u16)> {
    None
}

/// A TCP connection to each route and to Redis; the connection is closed without sending anything.
async fn probe(config: &Config) -> bool {
    let mut targets: Vec<(String, String, u16)> = config
        .upstream
        .routes
        .iter()
        .map(|route| {
            let https = route.url.scheme_str() == Some("https");
            let port = route.url.port_u16().unwrap_or(if https { 443 } else { 80 });
            let host = route.url.host().unwrap_or_default();
            (
                format!("upstream.routes.{}.url", route.name),
                host.to_owned(),
                port,
            )
        })
        .collect();
    if let StoreKind::Redis { url, .. } = &config.store.kind {
        if let Some((host, port)) = redis_probe_target(url) {
            targets.push(("store.redis_url".to_owned(), host, port));
        }
    }
    let attempts: Vec<_> = targets
        .into_iter()
        .map(|(label, host, port)| {
            tokio::spawn(async move {
                // `http::Uri` keeps the brackets of an IPv6 literal; the resolver wants the bare address.
                let bare = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let outcome = tokio::time::timeout(
                    PROBE_TIMEOUT,
                    tokio::net::TcpStream::connect((bare, port)),
                )
                .await;
                (label, host, port, outcome)
            })
        })
        .collect();
    let mut ok = true;
    for attempt in attempts {
        let Ok((label, host, port, outcome)) = attempt.await else {
            ok = false;
            continue;
        };
        let seen = match outcome {
            Ok(Ok(_)) => {
                println!("probe: {label} {host}:{port} reachable (TCP connection accepted; no request sent)");
                continue;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!(
                "no answer within {} s (a wrong host, or a firewall dropping packets?)",
                PROBE_TIMEOUT.as_secs()
            ),
        };
        ok = false;
        problem(
            &label,
            &format!("{host}:{port} unreachable"),
            &[
                ("expected:", "a TCP listener at that address"),
                ("seen:", &seen),
                (
                    "next:",
                    "start the service there, or fix the address in the configuration",
                ),
            ],
        );
    }
    ok
}
