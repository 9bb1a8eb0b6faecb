//! The console's HTML, rendered on the server: the page shell with its filter form, and the live part that the
//! page's script fetches again every few seconds. Every value is HTML-escaped.

use super::health::{passed, Health, Verdict, FREEZE_DAYS};
use super::status::route_of;
use super::view::{day, latency_us, rate, time_ms, when, Cell, Table};
use crate::config::Config;
use crate::protocol::Activity;
use crate::state::journal::JournalEntry;
use std::fmt::Write;

/// Rows of the calls table.
pub const ROWS_SHOWN: usize = 100;
/// How often the page fetches the live part.
pub const REFRESH_MS: u64 = 5_000;
/// Filter values longer than this are ignored (nothing real is longer).
const MAX_FILTER_LEN: usize = 64;

/// The calls table's filters, from the query string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filters {
    pub activity: String,
    /// `ok`, `failed` or a result code.
    pub result: String,
    /// Part of an order id.
    pub order: String,
}

impl Filters {
    pub fn parse(query: &str) -> Self {
        let mut filters = Self::default();
        for pair in query.split('&').take(16) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = value.replace('+', " ");
            let value = percent_encoding::percent_decode_str(&value).decode_utf8_lossy();
            let value = value.trim();
            if value.len() > MAX_FILTER_LEN {
                continue;
            }
            match name {
                "activity" => filters.activity = value.to_owned(),
                "result" => filters.result = value.to_owned(),
                "order" => filters.order = value.to_owned(),
                _ => {}
            }
        }
        filters
    }

    pub fn matches(&self, e: &JournalEntry) -> bool {
        let ok = super::tail::accepted(&e.result_code);
        (self.activity.is_empty() || e.activity == self.activity)
            && match self.result.as_str() {
                "" => true,
                "ok" => ok,
                "failed" => !ok,
                code => e.result_code == code,
            }
            && (self.order.is_empty()
                || e.order_id
                    .as_deref()
                    .is_some_and(|o| o.contains(&self.order)))
    }
}

/// `s` with `&`, `<`, `>`, `"` and `'` escaped, for text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The whole page, with `live` (from [`live`]) inside.
pub fn page(filters: &Filters, live: &str) -> String {
    let mut activities = String::from(r#"<option value="">every activity</option>"#);
    for a in Activity::ALL.iter().map(|a| a.name()).chain(["unknown"]) {
        let selected = if filters.activity == a {
            " selected"
        } else {
            ""
        };
        let _ = write!(activities, r#"<option value="{a}"{selected}>{a}</option>"#);
    }
    let mut results = String::new();
    for (value, label) in [
        ("", "every result"),
        ("ok", "succeeded"),
        ("failed", "failed"),
    ] {
        let selected = if filters.result == value {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            results,
            r#"<option value="{value}"{selected}>{label}</option>"#
        );
    }
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>koogate console</title>
<link rel="stylesheet" href="/console/console.css">
<script src="/console/console.js" defer></script>
</head>
<body>
<header><h1>koogate</h1><p>What KooGallery sent, what the app answered, and whether the product is at risk.</p></header>
<form id="filters" method="get" action="/console">
<label>activity <select name="activity">{activities}</select></label>
<label>result <select name="result">{results}</select></label>
<label>order id <input name="order" value="{order}" maxlength="{MAX_FILTER_LEN}" autocomplete="off"></label>
<button type="submit">filter</button>
</form>
<div id="live" data-refresh-ms="{REFRESH_MS}" data-state="server">
{live}
</div>
</body>
</html>
"#,
        order = escape(&filters.order),
    )
}

/// The part that refreshes: the banner, health per activity, the last calls and the status tables.
pub fn live(
    config: &Config,
    health: Option<&Health>,
    calls: &[&JournalEntry],
    status: &[Table],
    now_ms: u64,
) -> String {
    let mut out = String::new();
    match health {
        Some(health) => {
            banner(&mut out, health, now_ms);
            health_table(&mut out, health, now_ms);
            calls_table(&mut out, config, calls);
        }
        None => out.push_str(
            r#"<div id="banner" class="banner warn">No journal: this store keeps none (store.backend = "memory"), so the page cannot show calls or probes.</div>"#,
        ),
    }
    for table in status {
        render_table(&mut out, table);
    }
    let _ = write!(
        out,
        r#"<p class="updated">updated {}</p>"#,
        escape(&time_ms(now_ms))
    );
    out
}

fn banner(out: &mut String, health: &Health, now_ms: u64) {
    let (class, text) = match &health.verdict {
        Verdict::AtRisk { days, first_day } => (
            "banner at-risk",
            if *days >= FREEZE_DAYS {
                format!(
                    "AT RISK: lifecycle probes have failed on {days} consecutive days (since {}). KooGallery freezes a product after {FREEZE_DAYS} failing days: check the product in the seller console now.",
                    day(*first_day)
                )
            } else {
                format!(
                    "AT RISK: lifecycle probes have failed on {days} consecutive days (since {}). KooGallery freezes the product after {FREEZE_DAYS} failing days: {} left.",
                    day(*first_day),
                    FREEZE_DAYS - days
                )
            },
        ),
        Verdict::Warning { first_day } => (
            "banner warn",
            format!(
                "Lifecycle probes failed on {}. One more failing day makes two in a row; KooGallery freezes after {FREEZE_DAYS}.",
                day(*first_day)
            ),
        ),
        Verdict::Healthy if health.last_probe_ms.is_none() => (
            "banner quiet",
            "No lifecycle probe (testFlag) in the journal yet.".to_owned(),
        ),
        Verdict::Healthy => (
            "banner ok",
            "Lifecycle probes are passing.".to_owned(),
        ),
    };
    let _ = write!(
        out,
        r#"<div id="banner" class="{class}">{}</div>"#,
        escape(&text)
    );
    if health.probes_silent {
        let _ = write!(
            out,
            r#"<div id="silence" class="banner warn">No lifecycle probe since {}: KooGallery probes twice a day, so it may not reach this gateway.</div>"#,
            escape(&when(health.last_probe_ms, now_ms))
        );
    }
}

fn health_table(out: &mut String, health: &Health, now_ms: u64) {
    let rows = health
        .activities
        .iter()
        .map(|a| {
            let probe = a.last_probe.as_ref();
            let tone = |ok: bool| {
                if ok {
                    super::view::Tone::Good
                } else {
                    super::view::Tone::Bad
                }
            };
            vec![
                Cell::new(&a.activity),
                Cell::new(a.day.calls.to_string()),
                Cell::tone(rate(a.day.accepted, a.day.calls), tone(a.day.failed() == 0)),
                Cell::new(a.week.calls.to_string()),
                Cell::tone(
                    rate(a.week.accepted, a.week.calls),
                    tone(a.week.failed() == 0),
                ),
                Cell::new(when(probe.map(|p| p.at_ms), now_ms)),
                match probe {
                    Some(p) => Cell::tone(
                        format!("{} {}", p.result_code, p.reason.as_deref().unwrap_or("")),
                        tone(passed(p)),
                    ),
                    None => Cell::new("–"),
                },
            ]
        })
        .collect();
    render_table(
        out,
        &Table {
            id: "health",
            title: "Health per activity",
            head: vec![
                "activity",
                "calls 24 h",
                "success 24 h",
                "calls 7 d",
                "success 7 d",
                "last probe",
                "last probe result",
            ],
            rows,
            note: Some("No verified call in the last 7 days.".to_owned()),
        },
    );
}

fn calls_table(out: &mut String, config: &Config, calls: &[&JournalEntry]) {
    out.push_str(r#"<section><h2>Last calls</h2><table id="calls"><thead><tr><th>time</th><th>generation</th><th>activity</th><th>kind</th><th>result</th><th>reason</th><th>latency</th><th>from record</th><th>order id</th><th>instance id</th></tr></thead><tbody>"#);
    if calls.is_empty() {
        out.push_str(r#"<tr><td colspan="10" class="note">No call matches.</td></tr>"#);
    }
    for e in calls {
        let id = escape(&e.request_id);
        let class = if super::tail::accepted(&e.result_code) {
            "good"
        } else {
            "bad"
        };
        let _ = write!(
            out,
            r#"<tr class="call" data-id="{id}" tabindex="0"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="{class}">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            escape(&time_ms(e.at_ms)),
            escape(&e.generation),
            escape(&e.activity),
            if e.test_flag { "test" } else { "real" },
            escape(&e.result_code),
            escape(e.reason.as_deref().unwrap_or("")),
            escape(&latency_us(e.latency_us)),
            if e.from_record { "yes" } else { "no" },
            escape(e.order_id.as_deref().unwrap_or("")),
            escape(e.instance_id.as_deref().unwrap_or("")),
        );
        let _ = write!(
            out,
            r#"<tr class="detail" id="detail-{id}" hidden><td colspan="10"><div class="detail">"#
        );
        let call = [
            ("requestId", e.request_id.clone()),
            ("at", e.at.clone()),
            ("generation", e.generation.clone()),
            ("activity", e.activity.clone()),
            ("testFlag", if e.test_flag { "1" } else { "0" }.to_owned()),
            ("orderId", e.order_id.clone().unwrap_or_default()),
            ("orderLineId", e.order_line_id.clone().unwrap_or_default()),
        ];
        let answer = [
            ("resultCode", e.result_code.clone()),
            ("reason", e.reason.clone().unwrap_or_default()),
            ("instanceId", e.instance_id.clone().unwrap_or_default()),
            ("fromRecord", e.from_record.to_string()),
            (
                "route",
                route_of(config, e)
                    .unwrap_or("built-in test responder")
                    .to_owned(),
            ),
            ("latency", latency_us(e.latency_us)),
            (
                "upstream",
                e.upstream_us.map(latency_us).unwrap_or_default(),
            ),
        ];
        for (title, fields) in [
            ("The call, normalised", &call[..]),
            ("The answer", &answer[..]),
        ] {
            let _ = write!(out, "<section><h3>{title}</h3><dl>");
            for (name, value) in fields {
                let _ = write!(out, "<dt>{name}</dt><dd>{}</dd>", escape(value));
            }
            out.push_str("</dl></section>");
        }
        out.push_str(r#"<p class="note">Personal data (buyer fields, returned credentials) is kept only sealed in the journal and is never shown here: <code>koogate journal --personal-data</code> opens it.</p></div></td></tr>"#);
    }
    out.push_str("</tbody></table></section>");
}

fn render_table(out: &mut String, table: &Table) {
    let _ = write!(
        out,
        r#"<section><h2>{}</h2><table id="{}">"#,
        escape(table.title),
        table.id
    );
    if table.head.iter().any(|h| !h.is_empty()) {
        out.push_str("<thead><tr>");
        for h in &table.head {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
        out.push_str("</tr></thead>");
    }
    out.push_str("<tbody>");
    for row in &table.rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(
                out,
                r#"<td class="{}">{}</td>"#,
                cell.tone.class(),
                escape(&cell.text)
            );
        }
        out.push_str("</tr>");
    }
    if table.rows.is_empty() {
        if let Some(note) = &table.note {
            let _ = write!(
                out,
                r#"<tr><td colspan="{}" class="note">{}</td></tr>"#,
                table.head.len().max(1),
                escape(note)
            );
        }
    }
    out.push_str("</tbody></table></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }

    #[test]
    fn filters_parse_from_the_query_and_select_calls() {
        let f = Filters::parse("activity=newInstance&result=failed&order=CS%2023+x&junk=1");
        assert_eq!(f.activity, "newInstance");
        assert_eq!(f.result, "failed");
        assert_eq!(f.order, "CS 23 x");
        let mut e = JournalEntry {
            activity: "newInstance".into(),
            result_code: "000005".into(),
            order_id: Some("CS 23 xyz".into()),
            ..JournalEntry::default()
        };
        assert!(f.matches(&e));
        e.result_code = "000000".into();
        assert!(!f.matches(&e));
        assert!(Filters::parse(&format!("order={}", "x".repeat(65)))
            .order
            .is_empty());
    }
}
