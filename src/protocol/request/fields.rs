//! Typed, lenient access to KooGallery fields, whether they came as JSON values (V2) or query strings (V1).

use super::ParamError;
use crate::protocol::timefmt::expire_time_to_rfc3339;
use serde_json::{Map, Number, Value};

/// Longest id or name accepted in any field. Real values are under 64 characters; the bound keeps input sane.
pub(super) const MAX_TEXT_LEN: usize = 256;

/// A JSON object of KooGallery fields. V1 query parameters are held as an object of strings.
#[derive(Clone, Copy)]
pub(super) struct Fields<'a>(pub &'a Map<String, Value>);

impl<'a> Fields<'a> {
    /// A non-blank string; `None` when absent, null or blank; an error for other JSON types or over-long text.
    pub fn text(&self, name: &'static str) -> Result<Option<&'a str>, ParamError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) if s.len() <= MAX_TEXT_LEN => Ok(Some(s)),
            Some(_) => Err(ParamError::InvalidField(name)),
        }
    }

    /// Like [`Fields::text`], owned.
    pub fn string(&self, name: &'static str) -> Result<Option<String>, ParamError> {
        Ok(self.text(name)?.map(str::to_owned))
    }

    /// A mandatory non-blank string.
    pub fn required(&self, name: &'static str) -> Result<String, ParamError> {
        self.string(name)?.ok_or(ParamError::MissingField(name))
    }

    /// `"1"`/`"0"` (KooGallery's form), also numbers and booleans.
    pub fn flag(&self, name: &'static str) -> Result<Option<bool>, ParamError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) if s == "1" => Ok(Some(true)),
            Some(Value::String(s)) if s == "0" => Ok(Some(false)),
            Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
            Some(_) => Err(ParamError::InvalidField(name)),
        }
    }

    /// A JSON number or a decimal string.
    pub fn number(&self, name: &'static str) -> Result<Option<Number>, ParamError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(Some(n.clone())),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => match s.trim().parse::<Number>() {
                Ok(n) if n.as_f64().is_some_and(f64::is_finite) => Ok(Some(n)),
                _ => Err(ParamError::InvalidField(name)),
            },
            Some(_) => Err(ParamError::InvalidField(name)),
        }
    }

    /// An integer, as a JSON number or a decimal string.
    pub fn integer(&self, name: &'static str) -> Result<Option<i64>, ParamError> {
        match self.number(name)? {
            None => Ok(None),
            Some(n) => n.as_i64().map(Some).ok_or(ParamError::InvalidField(name)),
        }
    }

    /// A 14- or 17-digit KooGallery time as RFC 3339; `None` when absent or unreadable (the value stays in `raw`).
    pub fn time(&self, name: &'static str) -> Option<String> {
        self.text(name)
            .ok()
            .flatten()
            .and_then(expire_time_to_rfc3339)
    }

    /// A nested object (V2 nested bodies only).
    pub fn object(&self, name: &'static str) -> Result<Option<Fields<'a>>, ParamError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Fields(map))),
            Some(_) => Err(ParamError::InvalidField(name)),
        }
    }

    /// A nested array of objects (V2 nested bodies only).
    pub fn objects(&self, name: &'static str) -> Result<Option<Vec<Fields<'a>>>, ParamError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_object()
                        .map(Fields)
                        .ok_or(ParamError::InvalidField(name))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(ParamError::InvalidField(name)),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| !v.is_null())
    }
}
