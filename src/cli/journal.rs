//! `koogate journal`: export the audit journal as JSON lines.

use crate::state::{journal, seal::Sealer};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct JournalArgs {
    /// The store's data directory (`store.data_dir`).
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long)]
    order: Option<String>,
    #[arg(long)]
    instance: Option<String>,
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

pub fn run(args: JournalArgs) -> anyhow::Result<bool> {
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
    let entries = journal::read(&args.data_dir, &filter)
        .with_context(|| format!("cannot read the journal in {}", args.data_dir.display()))?;
    let mut out = std::io::stdout().lock();
    for entry in &entries {
        match writeln!(out, "{}", journal::export(entry, sealer.as_ref())) {
            // `koogate journal | head` closes the pipe early: that is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(true),
            other => other?,
        }
    }
    Ok(true)
}
