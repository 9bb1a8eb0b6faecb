//! The status tables: certificate (and ACME), access keys, upstream routes, store, usage queue and order API. Each
//! figure comes from the running configuration, the metrics registry or the journal's tail, never a copy of its own.

use super::samples::Samples;
use super::tail::{accepted, Tail};
use super::view::{latency_us, time_ms, when, Cell, Table, Tone};
use crate::config::{Config, TestCalls};
use crate::protocol::Activity;
use crate::state::journal::JournalEntry;
use crate::state::StoreKind;
use crate::upstream::UpstreamError;

/// Fewer days left than this on the certificate is a warning (Let's Encrypt renews at 30).
const CERT_WARN_DAYS: i64 = 21;

/// Everything the status tables need, read once per refresh.
pub struct Inputs<'a> {
    pub config: &'a Config,
    pub samples: &'a Samples,
    pub tail: Option<&'a Tail>,
    pub store_healthy: bool,
    pub now_ms: u64,
}

pub fn tables(i: &Inputs<'_>) -> Vec<Table> {
    let mut tables = vec![certificate(i), keys(i), routes(i), store(i)];
    if i.config.usage.is_some() {
        tables.push(usage(i));
    }
    if i.config.koogallery_api.is_some() {
        tables.push(orders(i));
    }
    tables
}

fn seconds_ms(seconds: f64) -> Option<u64> {
    (seconds > 0.0).then_some((seconds * 1000.0) as u64)
}

fn certificate(i: &Inputs<'_>) -> Table {
    let certs = &i.config.server.certificates;
    let expiry = i
        .samples
        .value("koogate_certificate_expiry_timestamp_seconds") as i64;
    let subject = match certs.files() {
        Some((chain, _)) => leaf_subject(chain).unwrap_or_else(|| "cannot be read".to_owned()),
        None => certs
            .acme()
            .map(|a| a.domains.join(", "))
            .unwrap_or_default(),
    };
    let days_left = (expiry - (i.now_ms / 1000) as i64).div_euclid(86_400);
    let tone = match days_left {
        _ if expiry == 0 => Tone::Warn,
        d if d < 0 => Tone::Bad,
        d if d < CERT_WARN_DAYS => Tone::Warn,
        _ => Tone::Good,
    };
    let mut rows = vec![
        vec![Cell::new("subject"), Cell::new(subject)],
        vec![
            Cell::new("expires"),
            Cell::new(if expiry > 0 {
                time_ms(expiry as u64 * 1000)
            } else {
                "no certificate yet".to_owned()
            }),
        ],
        vec![
            Cell::new("days left"),
            Cell::tone(
                if expiry > 0 {
                    days_left.to_string()
                } else {
                    "–".to_owned()
                },
                tone,
            ),
        ],
    ];
    if let Some(acme) = certs.acme() {
        let failed = i.samples.sum("koogate_acme_attempts_total", |s| {
            s.label("outcome") != "success"
        });
        let last_success = seconds_ms(
            i.samples
                .value("koogate_acme_last_success_timestamp_seconds"),
        );
        let last_attempt = seconds_ms(
            i.samples
                .value("koogate_acme_last_attempt_timestamp_seconds"),
        );
        let state = match (last_attempt, last_success) {
            (None, _) => Cell::new("no attempt since start"),
            (Some(a), Some(s)) if s >= a => Cell::tone("certificate obtained", Tone::Good),
            (Some(_), _) if failed > 0.0 => Cell::tone("last attempt failed, retrying", Tone::Bad),
            (Some(_), _) => Cell::new("ordering"),
        };
        rows.extend([
            vec![Cell::new("ACME directory"), Cell::new(&acme.directory_url)],
            vec![Cell::new("ACME state"), state],
            vec![
                Cell::new("ACME last attempt"),
                Cell::new(when(last_attempt, i.now_ms)),
            ],
            vec![
                Cell::new("ACME last success"),
                Cell::new(when(last_success, i.now_ms)),
            ],
            vec![
                Cell::new("ACME failed attempts"),
                Cell::new(format!("{failed}")),
            ],
        ]);
    }
    Table {
        id: "certificate",
        title: "Certificate",
        head: vec!["", ""],
        rows,
        note: None,
    }
}

/// The leaf certificate's subject (`CN=…`) and DNS names; only certificates are read from the file.
fn leaf_subject(chain: &std::path::Path) -> Option<String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let leaf = CertificateDer::pem_file_iter(chain).ok()?.next()?.ok()?;
    let mut text = crate::proxy::certificate::facts(&leaf)?.subject;
    if let Ok(cert) = webpki::EndEntityCert::try_from(&leaf) {
        let names: Vec<&str> = cert.valid_dns_names().collect();
        if !names.is_empty() {
            text = format!("{text} ({})", names.join(", "));
        }
    }
    Some(text)
}

fn keys(i: &Inputs<'_>) -> Table {
    let rows = i
        .config
        .keys
        .iter()
        .map(|(_, key)| {
            let last = i
                .samples
                .find(
                    "koogate_access_key_last_use_timestamp_seconds",
                    &[("key", key.name())],
                )
                .and_then(|s| seconds_ms(s.value));
            vec![Cell::new(key.name()), Cell::new(when(last, i.now_ms))]
        })
        .collect();
    Table {
        id: "keys",
        title: "Access keys",
        head: vec!["name", "last verified a call (since start)"],
        rows,
        note: None,
    }
}

/// The route a journalled call went to under the running configuration; `None` for the built-in responder.
pub fn route_of<'a>(config: &'a Config, entry: &JournalEntry) -> Option<&'a str> {
    let activity = Activity::from_name(&entry.activity)?;
    let upstream = &config.upstream;
    match (&upstream.test_calls, entry.test_flag) {
        (TestCalls::Builtin { .. }, true) => None,
        (TestCalls::Sandbox(index), true) => upstream.routes.get(*index).map(|r| r.name.as_str()),
        _ => Some(upstream.route_for(activity).name.as_str()),
    }
}

fn upstream_failed(entry: &JournalEntry) -> bool {
    entry
        .reason
        .as_deref()
        .is_some_and(|r| UpstreamError::REASONS.contains(&r) || r == "upstream_invalid_answer")
        || (entry.upstream_us.is_some() && !accepted(&entry.result_code))
}

fn routes(i: &Inputs<'_>) -> Table {
    let rows = i
        .config
        .upstream
        .routes
        .iter()
        .map(|route| {
            let mine = |e: &&JournalEntry| route_of(i.config, e) == Some(route.name.as_str());
            let (mut success, mut failure) = (None::<&JournalEntry>, None::<&JournalEntry>);
            // The calls come newest first: a failure seen before any success is the route's latest word.
            let mut failing_now = false;
            for e in i.tail.into_iter().flat_map(Tail::calls).filter(mine) {
                if failure.is_none() && upstream_failed(e) {
                    failure = Some(e);
                    failing_now = success.is_none();
                } else if success.is_none() && e.upstream_us.is_some() && accepted(&e.result_code) {
                    success = Some(e);
                }
                if success.is_some() && failure.is_some() {
                    break;
                }
            }
            let mean = i
                .samples
                .find(
                    "koogate_upstream_duration_seconds",
                    &[("route", &route.name)],
                )
                .filter(|s| s.count > 0);
            let failures = i.samples.sum("koogate_upstream_failures_total", |s| {
                s.label("route") == route.name
            });
            // Host and port only: an authority may carry a user and password.
            let url = format!(
                "{}://{}{}{}",
                route.url.scheme_str().unwrap_or("http"),
                route.url.host().unwrap_or(""),
                route.url.port().map_or(String::new(), |p| format!(":{p}")),
                route.url.path()
            );
            let failure_cell = match failure {
                Some(e) => Cell::tone(
                    format!(
                        "{} · {}",
                        when(Some(e.at_ms), i.now_ms),
                        e.reason.as_deref().unwrap_or(&e.result_code)
                    ),
                    if failing_now { Tone::Bad } else { Tone::Plain },
                ),
                None => Cell::new("none in the last calls"),
            };
            vec![
                Cell::new(&route.name),
                Cell::new(url),
                Cell::new(when(success.map(|e| e.at_ms), i.now_ms)),
                failure_cell,
                Cell::new(
                    success
                        .and_then(|e| e.upstream_us)
                        .map_or("–".to_owned(), latency_us),
                ),
                Cell::new(mean.map_or("–".to_owned(), |s| {
                    format!(
                        "{} over {} calls",
                        latency_us((s.value * 1e6) as u64),
                        s.count
                    )
                })),
                Cell::tone(
                    format!("{failures}"),
                    if failures > 0.0 {
                        Tone::Warn
                    } else {
                        Tone::Plain
                    },
                ),
            ]
        })
        .collect();
    Table {
        id: "routes",
        title: "Upstream routes",
        head: vec![
            "route",
            "url",
            "last success",
            "last failure",
            "last latency",
            "mean latency (since start)",
            "failures (since start)",
        ],
        rows,
        note: None,
    }
}

fn store(i: &Inputs<'_>) -> Table {
    let (backend, place) = match &i.config.store.kind {
        StoreKind::Memory => (
            "memory (nothing durable, no journal)".to_owned(),
            String::new(),
        ),
        StoreKind::Local { data_dir } => ("local log".to_owned(), data_dir.display().to_string()),
        StoreKind::Redis {
            url,
            prefix,
            data_dir,
            ..
        } => (
            format!("redis {} (prefix {prefix})", without_credentials(url)),
            data_dir.display().to_string(),
        ),
    };
    let mut rows = vec![
        vec![Cell::new("backend"), Cell::new(backend)],
        vec![
            Cell::new("state"),
            if i.store_healthy {
                Cell::tone("taking commits", Tone::Good)
            } else {
                Cell::tone("failing: calls are answered 000005", Tone::Bad)
            },
        ],
        vec![
            Cell::new("idempotency records"),
            Cell::new(format!("{}", i.samples.value("koogate_store_records"))),
        ],
        vec![
            Cell::new("failed commits (since start)"),
            Cell::new(format!(
                "{}",
                i.samples
                    .sum("koogate_journal_writes_total", |s| s.label("result")
                        == "failure")
            )),
        ],
    ];
    if !place.is_empty() {
        rows.push(vec![Cell::new("journal"), Cell::new(place)]);
    }
    Table {
        id: "store",
        title: "Store",
        head: vec!["", ""],
        rows,
        note: None,
    }
}

/// A Redis URL without its user and password.
fn without_credentials(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://{}", &url[at + 1..]),
        _ => url.to_owned(),
    }
}

fn counts_by(samples: &Samples, name: &str, label: &str) -> String {
    let parts: Vec<String> = samples
        .all(name)
        .iter()
        .filter(|s| s.value > 0.0)
        .map(|s| format!("{} {}", s.label(label), s.value))
        .collect();
    if parts.is_empty() {
        "none since start".to_owned()
    } else {
        parts.join(", ")
    }
}

fn usage(i: &Inputs<'_>) -> Table {
    let queued = i.samples.value("koogate_usage_queue_records");
    let age = i.samples.value("koogate_usage_oldest_queued_age_seconds");
    Table {
        id: "usage",
        title: "Usage queue",
        head: vec!["", ""],
        rows: vec![
            vec![Cell::new("records queued"), Cell::new(format!("{queued}"))],
            vec![
                Cell::new("oldest queued"),
                Cell::tone(
                    format!("{age} s"),
                    if age > 3_600.0 {
                        Tone::Warn
                    } else {
                        Tone::Plain
                    },
                ),
            ],
            vec![
                Cell::new("pushes (since start)"),
                Cell::new(counts_by(
                    i.samples,
                    "koogate_usage_pushes_total",
                    "outcome",
                )),
            ],
        ],
        note: None,
    }
}

fn orders(i: &Inputs<'_>) -> Table {
    let api = i
        .samples
        .find("koogate_order_lookup_duration_seconds", &[])
        .filter(|s| s.count > 0);
    Table {
        id: "orders",
        title: "KooGallery order API",
        head: vec!["", ""],
        rows: vec![
            vec![
                Cell::new("lookups (since start)"),
                Cell::new(counts_by(
                    i.samples,
                    "koogate_order_lookups_total",
                    "outcome",
                )),
            ],
            vec![
                Cell::new("mean API latency"),
                Cell::new(api.map_or("–".to_owned(), |s| latency_us((s.value * 1e6) as u64))),
            ],
            vec![
                Cell::new("orders cached"),
                Cell::new(format!(
                    "{}",
                    i.samples.value("koogate_order_cache_entries")
                )),
            ],
        ],
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_credentials_are_left_out() {
        assert_eq!(
            without_credentials("rediss://user:s3cret@redis.internal:6380/0"),
            "rediss://redis.internal:6380/0"
        );
        assert_eq!(
            without_credentials("redis://127.0.0.1/"),
            "redis://127.0.0.1/"
        );
    }
}
