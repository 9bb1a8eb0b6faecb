//! Reloading configuration and certificates without dropping a request: build and validate everything, then swap
//! the gateway snapshot atomically. A config that does not validate, or a certificate that does not load (for
//! example half-written), is refused with a log line and a metric, and the old snapshot keeps serving.

use crate::clock::Clock;
use crate::config::Config;
use crate::proxy::server::CurrentGateway;
use crate::Reload;
use std::sync::Arc;

/// Reloads once; never fails the caller (the outcome is logged and counted).
pub fn apply(current: &CurrentGateway, reload: &Reload) {
    let old = current.load_full();
    let metrics = old.metrics().clone();
    let outcome = Config::load(&reload.path, reload.env.as_ref())
        .map_err(anyhow::Error::from)
        .and_then(|config| {
            for change in needs_restart(old.config(), &config) {
                tracing::warn!(
                    setting = change,
                    "this setting changed but needs a restart to take effect"
                );
            }
            let now = (crate::clock::SystemClock.now_ms() / 1_000) as i64;
            if let Some(problem) = config.certificate_problem(now) {
                anyhow::bail!("server.cert_chain_file: {problem}");
            }
            old.reloaded(Arc::new(config))
        });
    match outcome {
        Ok(gateway) => {
            gateway.publish_certificate_expiry();
            current.store(Arc::new(gateway));
            metrics.config_reloads.with_label_values(&["success"]).inc();
            metrics
                .config_last_reload_success
                .set(crate::clock::unix_seconds());
            tracing::info!(config = %reload.path.display(), "configuration and certificates reloaded");
        }
        Err(e) => {
            metrics.config_reloads.with_label_values(&["failure"]).inc();
            tracing::error!(config = %reload.path.display(), error = %format!("{e:#}"),
                "reload refused; the previous configuration keeps serving");
        }
    }
}

/// Settings a reload cannot apply: the sockets are bound and the store is open.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.server.listen != new.server.listen {
        changed.push("server.listen");
    }
    if old.plain_http != new.plain_http {
        changed.push("plain_http.listen");
    }
    if old.admin_listen != new.admin_listen {
        changed.push("admin.listen");
    }
    if old.server.max_connections != new.server.max_connections {
        changed.push("server.max_connections");
    }
    if format!("{:?}", old.store.kind) != format!("{:?}", new.store.kind) {
        changed.push("store.backend / store.data_dir / store.redis_*");
    }
    if old.server.certificates.acme() != new.server.certificates.acme() {
        changed.push("acme.* / switching between [acme] and certificate files");
    }
    if old.store.retention != new.store.retention {
        changed.push("store.retention_days");
    }
    if old.store.max_records != new.store.max_records
        || old.store.commit_timeout != new.store.commit_timeout
    {
        changed.push("store.max_records / store.commit_timeout_ms");
    }
    if old.store.sealer != new.store.sealer {
        changed.push("store.journal_key_* (the journal key)");
    }
    let cache = |c: &Config| {
        c.koogallery_api
            .as_ref()
            .map(|a| (a.order_cache_max_entries, a.order_cache_ttl))
    };
    if cache(old) != cache(new) {
        changed.push(
            "koogallery_api (added or removed) / order_cache_max_entries / order_cache_ttl_seconds",
        );
    }
    if old.verify.replay_cache_max_entries != new.verify.replay_cache_max_entries {
        changed.push("verify.replay_cache_max_entries");
    }
    if old.verify.v1_replay_cache_max_entries != new.verify.v1_replay_cache_max_entries {
        changed.push("v1.replay_cache_max_entries");
    }
    if !crate::config::UsageConfig::same(old.usage.as_ref(), new.usage.as_ref()) {
        changed.push("usage.* (the usage relay is configured at start)");
    }
    changed
}

/// Sends a reload trigger on every SIGHUP.
pub fn on_sighup(triggers: tokio::sync::mpsc::Sender<()>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload by restarting");
            return;
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            if triggers.send(()).await.is_err() {
                return;
            }
        }
    });
}

/// Watches the directories holding `files` (not the files: Kubernetes replaces secrets by swapping a symlink in
/// the directory) and sends one trigger per burst of changes, `debounce` after the last event.
pub fn watch_files(
    files: &[std::path::PathBuf],
    debounce: std::time::Duration,
    triggers: tokio::sync::mpsc::Sender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let (events, mut received) = tokio::sync::mpsc::channel::<()>(64);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = events.try_send(());
        }
    })?;
    let mut dirs: Vec<std::path::PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(|p| p.to_path_buf()))
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in &dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    tokio::spawn(async move {
        while received.recv().await.is_some() {
            // Debounce: wait until the burst is over.
            while let Ok(Some(())) = tokio::time::timeout(debounce, received.recv()).await {}
            tracing::info!("watched files changed: reloading");
            if triggers.send(()).await.is_err() {
                return;
            }
        }
    });
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = "[server]\nlisten = \"127.0.0.1:8443\"\ncert_chain_file = \"c\"\nprivate_key_file = \"k\"\n\
        [[access_keys]]\nname = \"a\"\nenv = \"K\"\n[upstream]\ndefault_route = \"app\"\n\
        [upstream.routes.app]\nurl = \"http://127.0.0.1:3000/\"\n[store]\nbackend = \"memory\"\n\
        [test_calls]\nmode = \"forward\"\n";

    fn config(text: &str) -> Config {
        let env = |name: &str| {
            Some(if name == "J" {
                "11".repeat(32)
            } else {
                "key".to_owned()
            })
        };
        Config::from_toml(text, Path::new("."), &env).unwrap()
    }

    #[test]
    fn settings_a_reload_cannot_apply_are_named() {
        let old = config(BASE);
        assert!(needs_restart(&old, &config(BASE)).is_empty());
        let moved = BASE.replace("127.0.0.1:8443", "0.0.0.0:9443").replace(
            "backend = \"memory\"",
            "backend = \"local\"\njournal_key_env = \"J\"",
        );
        let changed = needs_restart(
            &old,
            &config(&(moved + "[admin]\nlisten = \"127.0.0.1:9999\"\n")),
        );
        assert!(
            changed.contains(&"server.listen") && changed.contains(&"admin.listen"),
            "{changed:?}"
        );
        assert!(
            changed.iter().any(|c| c.starts_with("store.backend")),
            "{changed:?}"
        );
    }

    #[test]
    fn a_changed_usage_table_needs_a_restart() {
        let with = |usage: &str| {
            config(&format!(
                "{BASE}[koogallery_api]\nbase_url = \"https://127.0.0.1:1\"\nak_env = \"A\"\nsk_env = \"S\"\n\
                 order_lookup_budget_ms = 500\n[usage]\n{usage}"
            ))
        };
        let old = with("");
        assert!(needs_restart(&old, &with("")).is_empty());
        for changed in ["retry_max_ms = 1000", "token_env = \"J\""] {
            assert_eq!(
                needs_restart(&old, &with(changed)),
                ["usage.* (the usage relay is configured at start)"],
                "{changed}"
            );
        }
    }
}
