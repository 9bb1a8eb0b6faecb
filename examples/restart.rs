//! Restart time of the local store (`bench/README.md`): fills a fresh data directory with `--records` idempotency
//! records and `--nonces` replay keys live for 24 h, closes it, and times opening it again.
//!
//! `cargo run --release --example restart -- --dir /tmp/koogate-restart --records 1000000 --nonces 100000`

use koogate::clock::{Clock, SystemClock};
use koogate::metrics::Metrics;
use koogate::state::seal::Sealer;
use koogate::state::{Commit, Record, StateStore, StoreKind, StoreSettings};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY_MS: u64 = 86_400_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut it = std::env::args().skip(1);
    let (mut dir, mut records, mut nonces) = (
        String::from("/tmp/koogate-restart"),
        1_000_000u64,
        100_000u64,
    );
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--dir" => dir = value,
            "--records" => records = value.parse()?,
            "--nonces" => nonces = value.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let settings = StoreSettings {
        kind: StoreKind::Local {
            data_dir: dir.clone().into(),
        },
        retention: Duration::from_secs(30 * 86_400),
        replay_capacity: koogate::state::replay::ReplayCapacity {
            v1: 10_000_000,
            v2: 10_000_000,
        },
        max_records: 10_000_000,
        commit_timeout: Duration::from_secs(4),
        sealer: Some(Sealer::from_text(&"11".repeat(32))?),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = Arc::new(StateStore::open(
        settings.clone(),
        &Metrics::new()?,
        clock.clone(),
    )?);
    let filled = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let writers = 512u64;
    for w in 0..writers {
        let (store, clock) = (store.clone(), clock.clone());
        tasks.spawn(async move {
            let mut i = w;
            while i < records.max(nonces) {
                let now = clock.now_ms();
                let record = (i < records).then(|| {
                    let key = format!(r#"["real","v2",["order","CS{i:016}","CS{i:016}-000001"]]"#);
                    let answer = format!(r#"{{"instanceId":"inst-{i:016}"}}"#).into_bytes();
                    let record = Record {
                        activity: "newInstance".into(),
                        fingerprint: String::new(),
                        answer,
                        at_ms: now,
                    };
                    (key, record)
                });
                let nonce = (i < nonces).then(|| (format!("v1:{i:064x}"), now + DAY_MS));
                let commit = Commit {
                    nonce,
                    record,
                    entry: None,
                };
                store.commit(commit, now).await?;
                i += writers;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let fill = filled.elapsed();
    drop(tasks);
    let store = Arc::into_inner(store).ok_or_else(|| anyhow::anyhow!("store still shared"))?;
    drop(store);
    let bytes: u64 = std::fs::read_dir(format!("{dir}/wal"))?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let metrics = Metrics::new()?;
    let started = Instant::now();
    let store = StateStore::open(settings, &metrics, clock)?;
    let restart = started.elapsed();
    println!(
        "records={records} nonces={nonces} fill_seconds={:.1} log_mb={:.0} restart_ms={} records_indexed={} replay_keys={}",
        fill.as_secs_f64(),
        bytes as f64 / 1e6,
        restart.as_millis(),
        metrics.store_records.get(),
        metrics.replay_cache_entries.with_label_values(&["v1"]).get()
            + metrics.replay_cache_entries.with_label_values(&["v2"]).get()
    );
    drop(store);
    Ok(())
}
