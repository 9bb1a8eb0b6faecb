//! Health per activity (success over 24 h and 7 days, the last lifecycle probe) and KooGallery's five-day rule.

use super::tail::{accepted, Counts, Tail, DAY_MS, HOUR_MS};
use crate::state::journal::JournalEntry;

/// KooGallery freezes a product whose saved cases fail five days in a row.
pub const FREEZE_DAYS: u64 = 5;
/// Probes failing on this many consecutive days raise the "at risk" banner (one day is a warning).
pub const AT_RISK_DAYS: u64 = 2;
/// Probes come twice a day: none for this long, after some were seen, is worth a warning of its own.
pub const PROBE_SILENCE_MS: u64 = DAY_MS;

/// One row of the health table.
#[derive(Debug, Clone)]
pub struct ActivityHealth {
    pub activity: String,
    pub day: Counts,
    pub week: Counts,
    pub last_probe: Option<JournalEntry>,
}

/// What the banner says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No probe failed on the latest probe day (or no probe was seen).
    Healthy,
    /// Probes failed on the latest probe day only.
    Warning { first_day: u64 },
    /// Probes failed on `days` consecutive days, the newest being today or yesterday.
    AtRisk { days: u64, first_day: u64 },
}

#[derive(Debug, Clone)]
pub struct Health {
    pub activities: Vec<ActivityHealth>,
    pub verdict: Verdict,
    /// When the newest probe of any activity arrived, if any.
    pub last_probe_ms: Option<u64>,
    /// Probes were seen, but none for [`PROBE_SILENCE_MS`].
    pub probes_silent: bool,
}

pub fn health(tail: &Tail, now_ms: u64) -> Health {
    let hour = now_ms / HOUR_MS;
    let activities: Vec<ActivityHealth> = tail
        .activities()
        .into_iter()
        .map(|activity| ActivityHealth {
            day: tail.counts(&activity, hour.saturating_sub(23)),
            week: tail.counts(&activity, hour.saturating_sub(7 * 24 - 1)),
            last_probe: tail.last_probe(&activity).cloned(),
            activity,
        })
        .collect();
    let last_probe_ms = activities
        .iter()
        .filter_map(|a| a.last_probe.as_ref().map(|p| p.at_ms))
        .max();
    Health {
        verdict: verdict(tail, now_ms / DAY_MS),
        probes_silent: last_probe_ms.is_some_and(|at| now_ms.saturating_sub(at) > PROBE_SILENCE_MS),
        last_probe_ms,
        activities,
    }
}

/// Counts back from the newest day with probes (today, or yesterday when today's have not come yet): each day on
/// which a probe failed extends the streak; a day whose probes all passed, or without probes, ends it.
fn verdict(tail: &Tail, today: u64) -> Verdict {
    let days = tail.probe_days();
    let start = if days.contains_key(&today) {
        today
    } else {
        today.saturating_sub(1)
    };
    let mut streak = 0;
    let mut day = start;
    while days.get(&day).is_some_and(|c| c.failed() > 0) {
        streak += 1;
        if day == 0 {
            break;
        }
        day -= 1;
    }
    let first_day = start + 1 - streak.max(1);
    match streak {
        0 => Verdict::Healthy,
        n if n < AT_RISK_DAYS => Verdict::Warning { first_day },
        days => Verdict::AtRisk { days, first_day },
    }
}

/// Whether a probe's answer counts as passed.
pub fn passed(entry: &JournalEntry) -> bool {
    accepted(&entry.result_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const TODAY: u64 = 20_000;

    fn probe(day: u64, code: &str) -> JournalEntry {
        JournalEntry {
            at_ms: day * DAY_MS + 3 * HOUR_MS,
            activity: "newInstance".into(),
            result_code: code.into(),
            test_flag: true,
            ..JournalEntry::default()
        }
    }

    fn tail_of(probes: &[(u64, &str)]) -> Tail {
        let mut tail = Tail::new(PathBuf::new());
        for (day, code) in probes {
            tail.add(probe(*day, code));
        }
        tail
    }

    fn now() -> u64 {
        TODAY * DAY_MS + 12 * HOUR_MS
    }

    #[test]
    fn failing_probes_on_three_consecutive_days_put_the_product_at_risk() {
        let tail = tail_of(&[
            (TODAY - 3, "000000"),
            (TODAY - 2, "000005"),
            (TODAY - 1, "000005"),
            (TODAY - 1, "000000"),
            (TODAY, "000001"),
        ]);
        let h = health(&tail, now());
        assert_eq!(
            h.verdict,
            Verdict::AtRisk {
                days: 3,
                first_day: TODAY - 2
            }
        );
        assert!(!h.probes_silent);
    }

    #[test]
    fn a_streak_counts_from_yesterday_until_today_has_probes() {
        let tail = tail_of(&[(TODAY - 2, "000005"), (TODAY - 1, "000005")]);
        assert!(matches!(
            health(&tail, now()).verdict,
            Verdict::AtRisk { days: 2, .. }
        ));
        let tail = tail_of(&[
            (TODAY - 2, "000005"),
            (TODAY - 1, "000005"),
            (TODAY, "000000"),
        ]);
        assert_eq!(health(&tail, now()).verdict, Verdict::Healthy);
    }

    #[test]
    fn one_failing_day_is_a_warning_and_a_gap_breaks_the_streak() {
        let tail = tail_of(&[(TODAY - 3, "000005"), (TODAY, "000005")]);
        assert_eq!(
            health(&tail, now()).verdict,
            Verdict::Warning { first_day: TODAY }
        );
    }

    #[test]
    fn rates_cover_24_hours_and_7_days_and_silence_is_noticed() {
        let tail = tail_of(&[(TODAY - 5, "000000"), (TODAY - 3, "000005")]);
        let h = health(&tail, now());
        let row = &h.activities[0];
        assert_eq!((row.week.calls, row.week.accepted), (2, 1));
        assert_eq!(row.day.calls, 0);
        assert!(h.probes_silent);
        assert_eq!(h.verdict, Verdict::Healthy);
    }
}
