//! Rate-limited refusal log lines: a flood of forged calls must not become a flood of WARN lines.
//!
//! Each refusal reason may write [`LINES_PER_WINDOW`] lines per [`WINDOW`]; further refusals of that reason in the
//! same window are only counted, and the next line written for the reason carries the count (`suppressed`).
//! Metrics are not affected: `koogate_rejections_total` counts every refusal.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Lines per reason and window: enough to see what is happening, at most ~3.6 KB/s per reason.
pub const LINES_PER_WINDOW: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(1);

/// Per-reason budgets. Reasons are the bounded labels of `GatewayError::reason`, so the map stays small.
#[derive(Debug, Default)]
pub struct RefusalLog {
    reasons: Mutex<HashMap<&'static str, Budget>>,
}

#[derive(Debug)]
struct Budget {
    window_started: Instant,
    written: u32,
    /// Refusals not written since the last line of this reason.
    suppressed: u64,
}

impl RefusalLog {
    /// `Some(n)` when this refusal is to be logged, `n` being how many lines of the same reason were suppressed
    /// since the last one; `None` when it is only counted.
    pub fn admit(&self, reason: &'static str, now: Instant) -> Option<u64> {
        let mut reasons = self
            .reasons
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let budget = reasons.entry(reason).or_insert(Budget {
            window_started: now,
            written: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(budget.window_started) >= WINDOW {
            budget.window_started = now;
            budget.written = 0;
        }
        if budget.written >= LINES_PER_WINDOW {
            budget.suppressed += 1;
            return None;
        }
        budget.written += 1;
        Some(std::mem::take(&mut budget.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_writes_a_few_lines_per_window_and_the_next_line_counts_the_rest() {
        let log = RefusalLog::default();
        let start = Instant::now();
        let written = (0..1_000)
            .filter(|_| log.admit("bad_signature", start).is_some())
            .count();
        assert_eq!(written, LINES_PER_WINDOW as usize);
        // Another reason has its own budget.
        assert_eq!(log.admit("stale_timestamp", start), Some(0));
        // Still inside the window: counted only.
        assert_eq!(log.admit("bad_signature", start + WINDOW / 2), None);
        // The next window's first line reports every suppressed refusal, once.
        let later = start + WINDOW;
        assert_eq!(
            log.admit("bad_signature", later),
            Some(1_000 - u64::from(LINES_PER_WINDOW) + 1)
        );
        assert_eq!(log.admit("bad_signature", later), Some(0));
    }
}
