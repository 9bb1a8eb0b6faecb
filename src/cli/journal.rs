//! `koogate journal`: export the audit journal as JSON lines, or follow it live.

use crate::protocol::Activity;
use crate::state::{journal, seal::Sealer};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often `--follow` looks for new entries: an operator watching a call sees it within a second.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

#[derive(clap::Args)]
pub struct JournalArgs {
    /// The store's data directory (`store.data_dir`).
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long)]
    order: Option<String>,
    #[arg(long)]
    instance: Option<String>,
    /// One activity by name, such as newInstance (`unknown` for calls whose activity could not be read).
    #[arg(long)]
    activity: Option<String>,
    /// Only entries at or after this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Only entries at or before this RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
    /// Include the sealed personal data, opened with the journal key (from --journal-key-env or -file).
    #[arg(long)]
    personal_data: bool,
    #[arg(long, default_value = "KOOGATE_JOURNAL_KEY")]
    journal_key_env: String,
    #[arg(long)]
    journal_key_file: Option<PathBuf>,
    /// An earlier journal key (after a rotation) that opens older entries; repeatable.
    #[arg(long)]
    previous_journal_key_file: Vec<PathBuf>,
    /// After the entries so far, keep printing new ones as calls are answered (until Ctrl-C).
    #[arg(long)]
    follow: bool,
}

fn unix_ms(flag: &str, value: Option<String>) -> anyhow::Result<Option<u64>> {
    value
        .map(|v| {
            let at =
                time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339)
                    .with_context(|| {
                        format!(
                            "--{flag} `{v}` is not an RFC 3339 time such as 2026-11-25T00:00:00Z"
                        )
                    })?;
            Ok((at.unix_timestamp_nanos() / 1_000_000) as u64)
        })
        .transpose()
}

/// Refuses a directory that holds no journal, so a typo is not an empty (and successful) answer.
fn check_data_dir(dir: &Path) -> anyhow::Result<()> {
    let shown = dir.display();
    if !dir.is_dir() {
        anyhow::bail!(
            "--data-dir {shown} is not a directory: pass the store.data_dir of the configuration \
             (`koogate check` prints it)"
        );
    }
    if !dir.join("wal").is_dir() && !dir.join("journal").is_dir() {
        anyhow::bail!(
            "--data-dir {shown} holds no koogate journal (no wal/ or journal/ in it): pass the store.data_dir of \
             the configuration (`koogate check` prints it)"
        );
    }
    Ok(())
}

fn check_activity(activity: Option<&str>) -> anyhow::Result<()> {
    match activity {
        Some(name) if name != "unknown" && Activity::from_name(name).is_none() => {
            let names: Vec<&str> = Activity::ALL.iter().map(|a| a.name()).collect();
            anyhow::bail!(
                "--activity `{name}` is not an activity; expected one of {}, or unknown",
                names.join(", ")
            )
        }
        _ => Ok(()),
    }
}

pub fn run(args: JournalArgs) -> anyhow::Result<bool> {
    check_activity(args.activity.as_deref())?;
    check_data_dir(&args.data_dir)?;
    let filter = journal::Filter {
        order_id: args.order,
        instance_id: args.instance,
        activity: args.activity,
        since_ms: unix_ms("since", args.since)?,
        until_ms: unix_ms("until", args.until)?,
    };
    let sealer = if args.personal_data {
        let text = match &args.journal_key_file {
            Some(file) => std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?,
            None => std::env::var(&args.journal_key_env).with_context(|| {
                format!(
                    "--personal-data needs the journal key: set {} or pass --journal-key-file",
                    args.journal_key_env
                )
            })?,
        };
        let mut previous = Vec::new();
        for file in &args.previous_journal_key_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            previous.push(
                Sealer::from_text(&text)
                    .with_context(|| format!("--previous-journal-key-file {}", file.display()))?,
            );
        }
        Some(Sealer::from_text(&text)?.with_previous(previous))
    } else {
        None
    };
    let unreadable = || format!("cannot read the journal in {}", args.data_dir.display());
    let mut out = std::io::stdout().lock();
    if !args.follow {
        let entries = journal::read(&args.data_dir, &filter).with_context(unreadable)?;
        return print(&mut out, &entries, sealer.as_ref());
    }
    let mut cursor = journal::Cursor::default();
    loop {
        let entries =
            journal::read_new(&args.data_dir, &filter, &mut cursor).with_context(unreadable)?;
        if !print(&mut out, &entries, sealer.as_ref())? {
            return Ok(true);
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// Prints entries, flushed (a `--follow` reader sees each at once); `false` once the reader has gone.
fn print(
    out: &mut impl Write,
    entries: &[journal::JournalEntry],
    sealer: Option<&Sealer>,
) -> anyhow::Result<bool> {
    for entry in entries {
        match writeln!(out, "{}", journal::export(entry, sealer)) {
            // `koogate journal | head` closes the pipe early: that is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(false),
            other => other?,
        }
    }
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        other => other.map(|()| true).map_err(Into::into),
    }
}
