//! `koogate run`: refuse what would not work (an unusable data directory, an expired certificate), log one start
//! summary line, then serve until SIGTERM.

use crate::clock::Clock;
use crate::config::{Certificates, Config, ProcessEnv};
use crate::state::StoreKind;
use rustls_pki_types::{pem::PemObject, CertificateDer};
use std::path::{Path, PathBuf};

pub async fn run(path: PathBuf) -> anyhow::Result<bool> {
    let config = Config::load(&path, &ProcessEnv)?;
    super::init_logging(config.log.format, &config.log.level);
    for warning in &config.warnings {
        tracing::warn!(key = %warning.path, "{}", warning.message);
    }
    let clock = std::sync::Arc::new(crate::clock::SystemClock);
    let problems = config.startup_problems((clock.now_ms() / 1_000) as i64);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|(k, p)| format!("{k}: {p}")).collect();
        anyhow::bail!("{} cannot start:\n  {}", path.display(), list.join("\n  "));
    }
    let listeners = crate::Listeners::bind(&config).await?;
    log_summary(&config, &listeners);
    let (triggers, received) = tokio::sync::mpsc::channel(4);
    crate::reload::on_sighup(triggers.clone());
    // Kept alive for the whole run: dropping the watcher stops it.
    let _watcher = if config.reload.watch_files {
        let mut files = config.reload.files.clone();
        files.push(path.clone());
        Some(crate::reload::watch_files(
            &files,
            config.reload.debounce,
            triggers,
        )?)
    } else {
        None
    };
    let reload = crate::Reload {
        path,
        env: Box::new(ProcessEnv),
        triggers: received,
    };
    let metrics = crate::metrics::Metrics::new()?;
    crate::run_with(
        config,
        listeners,
        metrics,
        clock,
        super::shutdown_signal(),
        Some(reload),
    )
    .await?;
    Ok(true)
}

/// One line with what this process serves; names and algorithms only, never key material or buyer data.
fn log_summary(config: &Config, listeners: &crate::Listeners) {
    let addr = |l: &tokio::net::TcpListener| {
        l.local_addr()
            .map_or_else(|_| "?".to_owned(), |a| a.to_string())
    };
    let mut bound = vec![
        format!("https {}", addr(&listeners.https)),
        format!("admin {}", addr(&listeners.admin)),
    ];
    let optional = [
        ("plain_http", &listeners.plain_http),
        ("usage", &listeners.usage),
        ("acme_http01", &listeners.acme_http),
    ];
    for (name, listener) in optional {
        if let Some(l) = listener {
            bound.push(format!("{name} {}", addr(l)));
        }
    }
    let routes: Vec<String> = config
        .upstream
        .routes
        .iter()
        .map(|r| format!("{} {}", r.name, without_userinfo(&r.url)))
        .collect();
    let keys: Vec<String> = config
        .keys
        .iter()
        .map(|(_, k)| format!("{} ({})", k.name(), k.field_key().cipher().name()))
        .collect();
    let certificate = match &config.server.certificates {
        Certificates::Files {
            cert_chain_file, ..
        } => certificate_summary(cert_chain_file),
        Certificates::Acme(acme) => format!("acme-managed for {}", acme.domains.join(", ")),
    };
    let store = match &config.store.kind {
        StoreKind::Memory => "memory".to_owned(),
        StoreKind::Local { data_dir } => format!("local {}", data_dir.display()),
        StoreKind::Redis { url, data_dir, .. } => format!(
            "redis {} (journal {})",
            super::check::redis_address(url).unwrap_or_else(|| "?".to_owned()),
            data_dir.display()
        ),
    };
    tracing::info!(
        version = env!("KOOGATE_LONG_VERSION"),
        listeners = %bound.join(", "),
        routes = %routes.join(", "),
        keys = %keys.join(", "),
        certificate = %certificate,
        store = %store,
        "starting"
    );
}

/// A route URL as logged: scheme, host, port and path (a `user:password@` part is never shown).
fn without_userinfo(url: &http::Uri) -> String {
    let port = url.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{}{port}{}",
        url.scheme_str().unwrap_or("http"),
        url.host().unwrap_or_default(),
        url.path()
    )
}

/// The leaf's DNS names (what KooGallery's client checks) and expiry.
fn certificate_summary(chain: &Path) -> String {
    let leaf = CertificateDer::pem_file_iter(chain)
        .ok()
        .and_then(|mut certs| certs.next())
        .and_then(Result::ok);
    let names = leaf
        .as_ref()
        .and_then(|leaf| {
            webpki::EndEntityCert::try_from(leaf).ok().map(|c| {
                c.valid_dns_names()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "no DNS names".to_owned());
    let expires = crate::proxy::tls::certificate_expiry(chain)
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(crate::protocol::timefmt::rfc3339)
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{} for {names}, expires {expires}", chain.display())
}
