//! The journal's recent past as the console shows it: the last calls and per-hour and per-day counts, kept up to
//! date by reading only what was appended since the last look (the reader `koogate journal` uses).

use crate::protocol::ResultCode;
use crate::state::journal::{self, Cursor, Filter, JournalEntry};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

/// The calls table shows at most this many (newest first); filters apply to these.
pub const CALLS_KEPT: usize = 1_000;
pub const HOUR_MS: u64 = 3_600_000;
pub const DAY_MS: u64 = 86_400_000;
/// Success rates go back 7 days.
const HOURS_KEPT: u64 = 7 * 24;
/// Probe days go back two weeks: enough to show a streak past KooGallery's five days.
const PROBE_DAYS_KEPT: u64 = 14;

/// Calls and how many of them KooGallery counts as answered (`000000`, or `000004` still provisioning).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub calls: u64,
    pub accepted: u64,
}

impl Counts {
    fn add(&mut self, accepted: bool) {
        self.calls += 1;
        self.accepted += u64::from(accepted);
    }

    pub fn failed(&self) -> u64 {
        self.calls - self.accepted
    }

    pub fn plus(self, other: Counts) -> Counts {
        Counts {
            calls: self.calls + other.calls,
            accepted: self.accepted + other.accepted,
        }
    }
}

/// Whether KooGallery counts an answer with this result code as a success.
pub fn accepted(result_code: &str) -> bool {
    ResultCode::parse(result_code).is_some_and(ResultCode::is_accepted)
}

/// What the console knows of the journal. Entries are held without their sealed personal data.
#[derive(Debug)]
pub struct Tail {
    data_dir: PathBuf,
    cursor: Cursor,
    /// Oldest first.
    calls: VecDeque<JournalEntry>,
    /// `(hour, activity)` → every call.
    hours: BTreeMap<(u64, String), Counts>,
    /// Day (UTC) → the lifecycle probes and debugging calls (`testFlag`) of that day.
    probe_days: BTreeMap<u64, Counts>,
    /// Activity → its newest probe.
    last_probe: BTreeMap<String, JournalEntry>,
}

impl Tail {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            cursor: Cursor::default(),
            calls: VecDeque::new(),
            hours: BTreeMap::new(),
            probe_days: BTreeMap::new(),
            last_probe: BTreeMap::new(),
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Reads what was appended since the last refresh and forgets what is too old to show.
    pub fn refresh(&mut self, now_ms: u64) -> std::io::Result<()> {
        let filter = Filter {
            since_ms: Some(now_ms.saturating_sub(PROBE_DAYS_KEPT * DAY_MS)),
            ..Filter::default()
        };
        for entry in journal::read_new(&self.data_dir, &filter, &mut self.cursor)? {
            self.add(entry);
        }
        let oldest_hour = (now_ms / HOUR_MS).saturating_sub(HOURS_KEPT);
        self.hours.retain(|(hour, _), _| *hour >= oldest_hour);
        let oldest_day = (now_ms / DAY_MS).saturating_sub(PROBE_DAYS_KEPT);
        self.probe_days.retain(|day, _| *day >= oldest_day);
        Ok(())
    }

    /// Takes one entry in; its personal data (sealed) is dropped here and never held.
    pub fn add(&mut self, mut entry: JournalEntry) {
        entry.sealed = None;
        let ok = accepted(&entry.result_code);
        self.hours
            .entry((entry.at_ms / HOUR_MS, entry.activity.clone()))
            .or_default()
            .add(ok);
        if entry.test_flag {
            self.probe_days
                .entry(entry.at_ms / DAY_MS)
                .or_default()
                .add(ok);
            let newer = self
                .last_probe
                .get(&entry.activity)
                .is_none_or(|last| last.at_ms <= entry.at_ms);
            if newer {
                self.last_probe
                    .insert(entry.activity.clone(), entry.clone());
            }
        }
        if self.calls.len() == CALLS_KEPT {
            self.calls.pop_front();
        }
        self.calls.push_back(entry);
    }

    /// The calls held, newest first.
    pub fn calls(&self) -> impl Iterator<Item = &JournalEntry> {
        self.calls.iter().rev()
    }

    /// Every call of `activity` in the hours from `since_hour` on.
    pub fn counts(&self, activity: &str, since_hour: u64) -> Counts {
        self.hours
            .range((since_hour, String::new())..)
            .filter(|((_, a), _)| a == activity)
            .fold(Counts::default(), |sum, (_, c)| sum.plus(*c))
    }

    /// The activities with calls in the last 7 days or a probe, in name order.
    pub fn activities(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .hours
            .keys()
            .map(|(_, a)| a.clone())
            .chain(self.last_probe.keys().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub fn last_probe(&self, activity: &str) -> Option<&JournalEntry> {
        self.last_probe.get(activity)
    }

    pub fn probe_days(&self) -> &BTreeMap<u64, Counts> {
        &self.probe_days
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at_ms: u64, activity: &str, code: &str, test_flag: bool) -> JournalEntry {
        JournalEntry {
            at_ms,
            activity: activity.into(),
            result_code: code.into(),
            test_flag,
            sealed: Some("c2VjcmV0".into()),
            ..JournalEntry::default()
        }
    }

    #[test]
    fn counts_split_by_hour_and_activity_and_personal_data_is_dropped() {
        let mut tail = Tail::new(PathBuf::new());
        let t = 1_000 * HOUR_MS;
        tail.add(entry(t, "newInstance", "000000", false));
        tail.add(entry(t + 10, "newInstance", "000005", false));
        tail.add(entry(t + 2 * HOUR_MS, "newInstance", "000004", true));
        tail.add(entry(t, "releaseInstance", "000000", false));
        let all = tail.counts("newInstance", 0);
        assert_eq!((all.calls, all.accepted), (3, 2));
        let recent = tail.counts("newInstance", 1_001);
        assert_eq!((recent.calls, recent.accepted), (1, 1));
        assert_eq!(tail.activities(), ["newInstance", "releaseInstance"]);
        assert!(tail.calls().all(|e| e.sealed.is_none()));
        assert_eq!(tail.calls().next().unwrap().result_code, "000000");
        assert_eq!(
            tail.last_probe("newInstance").unwrap().result_code,
            "000004"
        );
        assert_eq!(tail.probe_days().len(), 1);
    }

    #[test]
    fn only_the_newest_calls_are_kept() {
        let mut tail = Tail::new(PathBuf::new());
        for i in 0..CALLS_KEPT as u64 + 5 {
            tail.add(entry(i, "newInstance", "000000", false));
        }
        assert_eq!(tail.calls().count(), CALLS_KEPT);
        assert_eq!(tail.calls().last().unwrap().at_ms, 5);
    }
}
