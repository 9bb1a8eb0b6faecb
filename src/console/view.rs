//! The console's building blocks: tables of cells with a tone, and how times and durations are written.

/// How a cell is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Warn,
    Bad,
}

impl Tone {
    pub fn class(self) -> &'static str {
        match self {
            Tone::Plain => "",
            Tone::Good => "good",
            Tone::Warn => "warn",
            Tone::Bad => "bad",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cell {
    pub text: String,
    pub tone: Tone,
}

impl Cell {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            tone: Tone::Plain,
        }
    }

    pub fn tone(text: impl Into<String>, tone: Tone) -> Self {
        Self {
            text: text.into(),
            tone,
        }
    }
}

/// A titled table of the status page.
#[derive(Debug, Clone)]
pub struct Table {
    /// The element id (stable, for tests and links).
    pub id: &'static str,
    pub title: &'static str,
    pub head: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
    /// Shown when there are no rows, or under them.
    pub note: Option<String>,
}

/// `2026-12-02 07:32:20Z` for a Unix time in milliseconds.
pub fn time_ms(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// `2026-12-02` for a day number (days since the Unix epoch, UTC).
pub fn day(day: u64) -> String {
    time_ms(day * 86_400_000)
        .split(' ')
        .next()
        .unwrap_or("?")
        .to_owned()
}

/// `12 ms`, `1.5 s` for microseconds.
pub fn latency_us(us: u64) -> String {
    if us < 10_000 {
        format!("{:.1} ms", us as f64 / 1_000.0)
    } else if us < 1_000_000 {
        format!("{} ms", us / 1_000)
    } else {
        format!("{:.2} s", us as f64 / 1_000_000.0)
    }
}

/// `97.5 %` (of `calls`), or `–` without calls.
pub fn rate(accepted: u64, calls: u64) -> String {
    if calls == 0 {
        "–".to_owned()
    } else {
        format!("{:.1} %", accepted as f64 * 100.0 / calls as f64)
    }
}

/// A time with how long ago it was: `2026-12-02 07:32:20Z (3 min ago)`; `never` for `None`.
pub fn when(ms: Option<u64>, now_ms: u64) -> String {
    let Some(ms) = ms else {
        return "never".to_owned();
    };
    let ago = now_ms.saturating_sub(ms) / 1000;
    let ago = match ago {
        0..=59 => format!("{ago} s ago"),
        60..=3_599 => format!("{} min ago", ago / 60),
        3_600..=172_799 => format!("{} h ago", ago / 3_600),
        _ => format!("{} days ago", ago / 86_400),
    };
    format!("{} ({ago})", time_ms(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_written_for_people() {
        assert_eq!(time_ms(1_700_000_000_000), "2023-11-14 22:13:20Z");
        assert_eq!(day(1_700_000_000_000 / 86_400_000), "2023-11-14");
        assert_eq!(latency_us(1_234), "1.2 ms");
        assert_eq!(latency_us(250_000), "250 ms");
        assert_eq!(latency_us(1_500_000), "1.50 s");
        assert_eq!(rate(1, 3), "33.3 %");
        assert_eq!(rate(0, 0), "–");
        assert_eq!(
            when(Some(1_000), 181_000),
            format!("{} (3 min ago)", time_ms(1_000))
        );
        assert_eq!(when(None, 1), "never");
    }
}
