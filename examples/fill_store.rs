//! Fills a data directory through the real local store, as months of traffic would, for `bench/restart.sh`.
//!
//! `--records` idempotency records (V2 `newInstance`, each with its journal line and a V2 replay key) spread evenly
//! over the last `--days` days, plus `--nonces` V1 calls (replay key live 24 h and a journal line, no record) spread
//! evenly over the last 24 hours. Time is simulated: the store's clock runs from `days` ago to now as the calls are
//! written, so segments rotate by age and snapshots are taken as in production.
//!
//! `cargo run --release --example fill_store -- --dir /tmp/koogate-restart/data --records 1000000 --nonces 100000 \
//!   --journal-key-file /tmp/koogate-restart/journal-key`

use koogate::clock::{Clock, SystemClock};
use koogate::metrics::Metrics;
use koogate::protocol::Generation;
use koogate::state::journal::JournalEntry;
use koogate::state::replay::{ReplayCapacity, ReplayKey};
use koogate::state::seal::Sealer;
use koogate::state::{Commit, Record, StateStore, StoreKind, StoreSettings};
use sha2::Digest;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY_MS: u64 = 86_400_000;
/// Concurrent callers: enough to fill groups as a busy gateway would.
const WRITERS: usize = 256;

/// A clock that follows the simulated calls (it only moves forward).
struct Simulated(AtomicU64);

impl Clock for Simulated {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

struct Args {
    dir: String,
    records: u64,
    nonces: u64,
    days: u64,
    journal_key_file: Option<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut out = Args {
        dir: "/tmp/koogate-restart/data".into(),
        records: 1_000_000,
        nonces: 100_000,
        days: 29,
        journal_key_file: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => out.dir = value,
            "--records" => out.records = value.parse()?,
            "--nonces" => out.nonces = value.parse()?,
            "--days" => out.days = value.parse()?,
            "--journal-key-file" => out.journal_key_file = Some(value),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(out)
}

/// One simulated call: when, and whether it is a V1 call without a record.
fn timeline(a: &Args, now: u64) -> Vec<(u64, bool)> {
    let start = now - a.days * DAY_MS;
    let span = a.days * DAY_MS;
    let mut calls: Vec<(u64, bool)> = (0..a.records)
        .map(|i| (start + i * span / a.records.max(1), false))
        .chain((0..a.nonces).map(|i| (now - DAY_MS + i * DAY_MS / a.nonces.max(1), true)))
        .collect();
    calls.sort_unstable();
    calls
}

fn commit(i: usize, at_ms: u64, v1: bool, sealer: &Sealer) -> Commit {
    let digest: [u8; 32] = sha2::Sha256::digest(i.to_le_bytes()).into();
    let (generation, life) = if v1 {
        (Generation::V1, DAY_MS)
    } else {
        (Generation::V2, 65_000)
    };
    let nonce = Some((ReplayKey { generation, digest }, at_ms + life));
    let order = format!("CS{i:016}");
    let personal =
        format!(r#"{{"buyer":{{"mobilePhone":"+86138{i:08}","email":"buyer{i}@example.com"}}}}"#);
    let entry = JournalEntry {
        at: String::new(),
        at_ms,
        request_id: format!("{:032x}", i),
        generation: generation.name().into(),
        activity: if v1 { "orderNotify" } else { "newInstance" }.into(),
        result_code: "000000".into(),
        order_id: Some(order.clone()),
        latency_us: 1_500,
        upstream_us: Some(1_000),
        sealed: Some(sealer.seal(personal.as_bytes())),
        ..JournalEntry::default()
    };
    let record = (!v1).then(|| {
        let key = format!(r#"["real","v2",["order","{order}","{order}-000001"]]"#);
        let answer = format!(
            r#"{{"instanceId":"inst-{i:016}","appInfo":{{"userName":"admin","password":"pw-{i:012}"}}}}"#
        );
        let record = Record {
            activity: "newInstance".into(),
            fingerprint: String::new(),
            answer: answer.into_bytes(),
            at_ms,
        };
        (key, record)
    });
    Commit {
        nonce,
        record,
        entry: Some(entry),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let sealer = match &a.journal_key_file {
        Some(path) => Sealer::from_text(std::fs::read_to_string(path)?.trim())?,
        None => Sealer::from_text(&"11".repeat(32))?,
    };
    let _ = std::fs::remove_dir_all(&a.dir);
    std::fs::create_dir_all(&a.dir)?;
    let now = SystemClock.now_ms();
    let calls = Arc::new(timeline(&a, now));
    let clock = Arc::new(Simulated(AtomicU64::new(
        calls.first().map_or(now, |c| c.0),
    )));
    let settings = StoreSettings {
        kind: StoreKind::Local {
            data_dir: a.dir.clone().into(),
        },
        retention: Duration::from_secs(30 * 86_400),
        replay_capacity: ReplayCapacity {
            v1: 10_000_000,
            v2: 10_000_000,
        },
        max_records: 10_000_000,
        commit_timeout: Duration::from_secs(4),
        sealer: Some(sealer.clone()),
    };
    let store = Arc::new(StateStore::open(settings, &Metrics::new()?, clock.clone())?);
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WRITERS {
        let (store, clock, calls, next, sealer) = (
            store.clone(),
            clock.clone(),
            calls.clone(),
            next.clone(),
            sealer.clone(),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(at_ms, v1)) = calls.get(i) else {
                    return anyhow::Ok(());
                };
                clock.0.fetch_max(at_ms, Ordering::SeqCst);
                store.commit(commit(i, at_ms, v1, &sealer), at_ms).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    drop(tasks);
    let store = Arc::into_inner(store).ok_or_else(|| anyhow::anyhow!("store still shared"))?;
    drop(store);
    let bytes: u64 = std::fs::read_dir(format!("{}/wal", a.dir))?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "filled records={} nonces={} calls={} seconds={:.1} wal_mb={:.0}",
        a.records,
        a.nonces,
        calls.len(),
        started.elapsed().as_secs_f64(),
        bytes as f64 / 1e6
    );
    Ok(())
}
