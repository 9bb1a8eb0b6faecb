//! How a run is shown: a table printed line by line as cases complete, JSON, and JUnit XML for CI.

use super::{Outcome, Report};
use serde_json::Value;

/// Prints the table as the run goes: [`Table::header`], one [`Table::line`] per case, then [`Table::footer`].
pub struct Table {
    pub colour: bool,
    /// Also show each answer's body.
    pub verbose: bool,
}

impl Table {
    pub fn header(&self, target: &str, insecure: bool) -> String {
        let mut out = format!("koogate simulate → {target}\n");
        if insecure {
            out.push_str(&self.paint(
                false,
                "--insecure: the target's certificate is NOT checked (KooGallery checks it)\n",
            ));
        }
        out
    }

    pub fn line(&self, case: &Outcome) -> String {
        let verdict = self.paint(case.passed, if case.passed { "PASS" } else { "FAIL" });
        let code = case.result_code.as_deref().unwrap_or("------");
        let record = if case.from_record {
            "  (answered from koogate's record)"
        } else {
            ""
        };
        let mut out = format!(
            "{verdict}  {:<44}  {code}  {:>5} ms{record}\n",
            case.name, case.elapsed_ms
        );
        if let Some(reason) = &case.reason {
            out.push_str(&format!("      {reason}\n"));
            let mut seen = Vec::new();
            if let Some(status) = case.http_status {
                seen.push(format!("HTTP {status}"));
            }
            if let Some(message) = &case.result_msg {
                seen.push(format!("resultMsg {message:?}"));
            }
            if let Some(id) = &case.request_id {
                seen.push(format!("request id {id}"));
            }
            if !seen.is_empty() {
                out.push_str(&format!("      ({})\n", seen.join(", ")));
            }
        }
        if let (true, Some(body)) = (self.verbose, &case.body) {
            out.push_str(&format!("      answer: {body}\n"));
        }
        out
    }

    pub fn footer(&self, report: &Report) -> String {
        let mut out = String::new();
        if let Some(reason) = &report.stopped {
            out.push_str(&self.paint(
                false,
                &format!(
                    "stopped: the target cannot be reached ({} case(s) not run): {reason}\n",
                    report.not_run
                ),
            ));
        }
        out.push_str(&format!(
            "{} cases passed, {} failed\n",
            report.passed, report.failed
        ));
        out
    }

    fn paint(&self, ok: bool, text: &str) -> String {
        match (self.colour, ok) {
            (false, _) => text.to_owned(),
            (true, true) => format!("\u{1b}[32m{text}\u{1b}[0m"),
            (true, false) => format!("\u{1b}[31m{text}\u{1b}[0m"),
        }
    }
}

impl Report {
    /// The whole table at once (the demo prints it after the run).
    pub fn table(&self, colour: bool) -> String {
        let table = Table {
            colour,
            verbose: false,
        };
        let mut out = table.header(&self.target, self.insecure);
        for case in &self.cases {
            out.push_str(&table.line(case));
        }
        out + &table.footer(self)
    }

    /// Drops the answer bodies (kept only with `-v`): a V2 answer may carry the app's initial passwords in plain
    /// text, which a saved report or CI artefact should not.
    pub fn without_bodies(mut self) -> Self {
        for case in &mut self.cases {
            case.body = None;
        }
        self
    }

    pub fn json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// JUnit XML (one `<testcase>` per case), for CI systems that show test reports.
    pub fn junit(&self) -> String {
        let seconds = |ms: u64| format!("{:.3}", ms as f64 / 1000.0);
        let total: u64 = self.cases.iter().map(|c| c.elapsed_ms).sum();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(&format!(
            "<testsuite name=\"koogate simulate\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{}\" \
             timestamp=\"{}\" hostname=\"{}\">\n",
            self.cases.len() + self.not_run,
            self.failed,
            self.not_run,
            seconds(total),
            xml(&self.started_at),
            xml(&self.target)
        ));
        for case in &self.cases {
            out.push_str(&format!(
                "  <testcase classname=\"koogate.simulate\" name=\"{}\" time=\"{}\"",
                xml(&case.name),
                seconds(case.elapsed_ms)
            ));
            match &case.reason {
                None => out.push_str("/>\n"),
                Some(reason) => out.push_str(&format!(
                    ">\n    <failure message=\"{}\">resultCode {} HTTP {} request id {}\n{}</failure>\n  </testcase>\n",
                    xml(reason),
                    xml(case.result_code.as_deref().unwrap_or("-")),
                    case.http_status.map_or("-".to_owned(), |s| s.to_string()),
                    xml(case.request_id.as_deref().unwrap_or("-")),
                    xml(case.body.as_deref().unwrap_or(""))
                )),
            }
        }
        if let Some(reason) = &self.stopped {
            out.push_str(&format!(
                "  <system-err>stopped: {}</system-err>\n",
                xml(reason)
            ));
        }
        out.push_str("</testsuite>\n");
        out
    }
}

/// Escapes text for an XML attribute or element; drops the control characters XML 1.0 cannot carry.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_escapes_what_the_target_sent() {
        assert_eq!(xml("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
    }
}
