//! Reading the TOML text into [`RawConfig`]: every syntax, unknown-key and type error in one run, each with its key
//! path, line and column, the line itself and, for a misspelt key, the known key it most resembles.
//!
//! serde stops at the first error, so the text is read again after each one with the offending line, key or value
//! neutralised in a copy (a broken line blanked, an unknown key removed, a mistyped value replaced by a placeholder
//! of the expected type). Edits never add or remove a line, so line numbers stay those of the file.

use super::{ConfigIssue, Location, RawConfig};
use std::ops::Range;
use toml_edit::{ImDocument, Item, Table, Value};

/// Bounds the work on a badly broken file; a real one has a handful of mistakes.
const MAX_ERRORS: usize = 50;
/// How alike (Jaro-Winkler, 0..=1) an unknown key must be to a known one to be suggested; below it the known keys
/// are listed instead.
const SUGGESTION_SCORE: f64 = 0.8;

/// One key or array element of the document, with where its key and value are written.
struct Entry {
    path: String,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
}

/// The file as serde structs, or every problem found on the way.
pub(super) fn raw_config(text: &str) -> Result<RawConfig, Vec<ConfigIssue>> {
    let mut edited = text.to_owned();
    let (mut issues, header_broken) = syntax_errors(text, &mut edited);
    if header_broken {
        // A blanked `[table]` line would move its keys into the table above: what follows would mislead.
        return Err(issues);
    }
    let mut removed: Vec<String> = Vec::new();
    let mut last: Option<(Option<Range<usize>>, String)> = None;
    for _ in 0..MAX_ERRORS {
        let error = match toml::from_str::<RawConfig>(&edited) {
            Ok(raw) if issues.is_empty() => return Ok(raw),
            Ok(_) => break,
            Err(error) => error,
        };
        let (span, message) = (error.span(), error.message().to_owned());
        if last.as_ref() == Some(&(span.clone(), message.clone())) {
            break; // no progress: do not report the same error twice
        }
        last = Some((span.clone(), message.clone()));
        let Ok(doc) = ImDocument::parse(edited.as_str()) else {
            break;
        };
        let entries = entries(doc.as_table());
        let at =
            |range: &Option<Range<usize>>| range.as_ref().map(|r| location(text, &edited, r.start));
        if let Some(name) = quoted_after(&message, "unknown field ") {
            let Some(entry) = entries.iter().find(|e| e.key.is_some() && e.key == span) else {
                issues.push(issue("(config)", message, at(&span)));
                break;
            };
            issues.push(issue(&entry.path, unknown_key(name, &message), at(&span)));
            let range = extent(entry, &entries);
            blank(&mut edited, range);
            removed.push(entry.path.clone());
        } else if let Some(name) = quoted_after(&message, "missing field ") {
            let table = entries
                .iter()
                .find(|e| e.value.is_some() && e.value == span)
                .map_or("", |e| e.path.as_str());
            let path = join(table, name);
            // A key removed for an earlier error is missing now: that is the same error, not a new one.
            if !removed.contains(&path) {
                issues.push(issue(
                    &path,
                    format!("required key `{name}` is missing"),
                    at(&span),
                ));
            }
            break;
        } else {
            let entry = span.as_ref().and_then(|span| {
                entries
                    .iter()
                    .filter(|e| {
                        e.value
                            .as_ref()
                            .is_some_and(|v| v.start <= span.start && span.end <= v.end)
                    })
                    .min_by_key(|e| e.value.as_ref().map_or(usize::MAX, |v| v.end - v.start))
            });
            let Some(entry) = entry else {
                issues.push(issue("(config)", message, at(&span)));
                break;
            };
            issues.push(issue(&entry.path, message.clone(), at(&entry.value)));
            match (placeholder(&message), &entry.value) {
                (Some(value), Some(range)) => replace(&mut edited, range.clone(), value),
                _ => {
                    let range = extent(entry, &entries);
                    blank(&mut edited, range);
                    removed.push(entry.path.clone());
                }
            }
        }
    }
    Err(issues)
}

/// Adds the line and column of the key each issue names, for issues found after parsing (by validation).
pub(super) fn locate(text: &str, issues: &mut [ConfigIssue]) {
    let Ok(doc) = ImDocument::parse(text) else {
        return;
    };
    let entries = entries(doc.as_table());
    for issue in issues.iter_mut().filter(|i| i.location.is_none()) {
        if let Some(entry) = entries.iter().find(|e| e.path == issue.path) {
            issue.location = entry
                .value
                .as_ref()
                .or(entry.key.as_ref())
                .map(|r| location(text, text, r.start));
        }
    }
}

/// Every syntax error, each line blanked in `edited` after it is reported; `true` when a table header was broken.
fn syntax_errors(text: &str, edited: &mut String) -> (Vec<ConfigIssue>, bool) {
    let mut issues = Vec::new();
    for _ in 0..MAX_ERRORS {
        let error = match ImDocument::parse(edited.as_str()) {
            Ok(_) => return (issues, false),
            Err(error) => error,
        };
        let start = error.span().map_or(0, |s| s.start).min(edited.len());
        let line_start = edited[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = edited[start..]
            .find('\n')
            .map_or(edited.len(), |i| start + i);
        let line = edited[line_start..line_end].trim().to_owned();
        let message = format!(
            "TOML syntax: {}",
            error.message().trim_end().replace('\n', "; ")
        );
        issues.push(issue(
            &syntax_path(edited, line_start, &line),
            message,
            Some(location(text, edited, start)),
        ));
        if line.is_empty() || line.starts_with('[') {
            // An unclosed string or array runs to the end of the file; a broken header moves keys: stop here.
            return (issues, true);
        }
        blank(edited, line_start..line_end);
    }
    (issues, true)
}

/// The key on a broken line, under the last `[table]` header above it.
fn syntax_path(text: &str, line_start: usize, line: &str) -> String {
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned())
        .unwrap_or_default();
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"'))
        .filter(|k| !k.is_empty() && !k.contains(char::is_whitespace));
    match key {
        Some(key) => join(&table, key),
        None if table.is_empty() => "(top level)".to_owned(),
        None => table,
    }
}

fn unknown_key(name: &str, message: &str) -> String {
    let known: Vec<&str> = message
        .split_once("expected")
        .map(|(_, list)| list.split('`').skip(1).step_by(2).collect())
        .unwrap_or_default();
    // Jaro-Winkler weighs a shared beginning: `listen_adress` → `listen`, `routs` → `routes`, `uspream` → `upstream`.
    let nearest = known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(score, _)| *score >= SUGGESTION_SCORE)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match (nearest, known.is_empty()) {
        (Some((_, k)), _) => format!("unknown key `{name}`; did you mean `{k}`?"),
        (None, true) => format!("unknown key `{name}`: this table takes no keys"),
        (None, false) => format!(
            "unknown key `{name}`; the keys of this table are {}",
            known.join(", ")
        ),
    }
}

/// A value of the type an error expects, so the key stays present (a required key must not look missing).
fn placeholder(message: &str) -> Option<&'static str> {
    let expected = message.rsplit_once("expected ")?.1;
    let table = [
        ("a duration", "0"),
        ("u64", "0"),
        ("u32", "0"),
        ("u16", "0"),
        ("usize", "0"),
        ("i64", "0"),
        ("a string", "\"\""),
        ("path string", "\"\""),
        ("a boolean", "false"),
        ("a sequence", "[]"),
        ("struct", "{}"),
        ("a map", "{}"),
    ];
    table
        .iter()
        .find(|(what, _)| expected.starts_with(what))
        .map(|(_, value)| *value)
}

/// The text an entry occupies: its key and value, and for a table everything written inside it.
fn extent(entry: &Entry, entries: &[Entry]) -> Range<usize> {
    let inside = |e: &&Entry| {
        e.path.len() > entry.path.len()
            && e.path.starts_with(&entry.path)
            && matches!(e.path.as_bytes()[entry.path.len()], b'.' | b'[')
    };
    let spans = entries
        .iter()
        .filter(inside)
        .chain([entry])
        .flat_map(|e| [&e.key, &e.value]);
    let (mut start, mut end) = (usize::MAX, 0);
    for span in spans.flatten() {
        start = start.min(span.start);
        end = end.max(span.end);
    }
    start.min(end)..end
}

fn entries(root: &Table) -> Vec<Entry> {
    let mut out = Vec::new();
    walk_table(root, "", &mut out);
    out
}

fn walk_table(table: &Table, prefix: &str, out: &mut Vec<Entry>) {
    for (name, item) in table.iter() {
        let path = join(prefix, name);
        let key = table.get_key_value(name).and_then(|(k, _)| k.span());
        out.push(Entry {
            path: path.clone(),
            key,
            value: item.span(),
        });
        match item {
            Item::Table(t) => walk_table(t, &path, out),
            Item::ArrayOfTables(tables) => {
                for (i, t) in tables.iter().enumerate() {
                    let element = format!("{path}[{i}]");
                    out.push(Entry {
                        path: element.clone(),
                        key: None,
                        value: t.span(),
                    });
                    walk_table(t, &element, out);
                }
            }
            Item::Value(v) => walk_value(v, &path, out),
            Item::None => {}
        }
    }
}

fn walk_value(value: &Value, path: &str, out: &mut Vec<Entry>) {
    match value {
        Value::InlineTable(table) => {
            for (name, v) in table.iter() {
                let inner = join(path, name);
                let key = table.get_key_value(name).and_then(|(k, _)| k.span());
                out.push(Entry {
                    path: inner.clone(),
                    key,
                    value: v.span(),
                });
                walk_value(v, &inner, out);
            }
        }
        Value::Array(array) => {
            for (i, v) in array.iter().enumerate() {
                let element = format!("{path}[{i}]");
                out.push(Entry {
                    path: element.clone(),
                    key: None,
                    value: v.span(),
                });
                walk_value(v, &element, out);
            }
        }
        _ => {}
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The name in backticks right after `prefix` at the start of `message`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split_once('`').map(|(name, _)| name)
}

/// Line and column (1-based) of `offset` in `edited`, with that line of the original text.
fn location(original: &str, edited: &str, offset: usize) -> Location {
    let offset = offset.min(edited.len());
    let before = &edited[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    let snippet = original
        .lines()
        .nth(line - 1)
        .unwrap_or_default()
        .trim_end();
    Location {
        line,
        column,
        snippet: snippet.chars().take(200).collect(),
    }
}

fn issue(path: &str, message: impl Into<String>, location: Option<Location>) -> ConfigIssue {
    ConfigIssue {
        path: path.to_owned(),
        message: message.into(),
        location,
    }
}

/// Overwrites `range` with spaces, keeping every newline and the text's length.
fn blank(text: &mut String, range: Range<usize>) {
    let spaces: String = text[range.clone()]
        .chars()
        .map(|c| {
            if c == '\n' {
                "\n".to_owned()
            } else {
                " ".repeat(c.len_utf8())
            }
        })
        .collect();
    text.replace_range(range, &spaces);
}

/// Writes `value` over `range` (padded with spaces when shorter), keeping every newline.
fn replace(text: &mut String, range: Range<usize>, value: &str) {
    blank(text, range.clone());
    let first_line_end = text[range.clone()]
        .find('\n')
        .map_or(range.end, |i| range.start + i);
    let end = (range.start + value.len()).min(first_line_end);
    text.replace_range(range.start..end, value);
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
