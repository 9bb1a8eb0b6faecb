//! What KooGallery's answer to a usage push means for the records in it (`koogallery-openapi.md` §4 codes).

use serde::Deserialize;

/// What came back from one push.
#[derive(Debug, Clone)]
pub struct PushAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a push got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PushFailure {
    #[error("timed out")]
    Timeout,
    #[error("unreachable")]
    Unreachable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the request could not be built or signed")]
    Build(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The decision for the batch that was pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `MKT.0000`: every record was taken.
    Done,
    /// `MKT.0999`, HTTP 5xx, timeouts, no answer: send the same batch again after a backoff.
    Retry { reason: String },
    /// Credentials or configuration refused (`MKT.0102` body sign, `MKT.0150`, `MKT.0154`, `APIGW.*`, unknown
    /// codes): not the records' fault, so they stay queued and are retried with backoff until an operator fixes it.
    Blocked { code: String, reason: String },
    /// A refusal about a record (`MKT.0100`, `MKT.0101`, `MKT.9001`, `MKT.9002`, `MKT.9004`). KooGallery does not
    /// say which record: a batch is split until the record is alone, and that record is kept as rejected.
    RecordError { code: String, reason: String },
    /// `MKT.9003`: more than KooGallery takes in one call; split the batch.
    TooMany { reason: String },
}

#[derive(Deserialize)]
struct Answer {
    error_code: Option<String>,
    error_msg: Option<String>,
}

/// Classifies one push's outcome.
pub fn classify(outcome: &Result<PushAnswer, PushFailure>) -> Verdict {
    let answer = match outcome {
        Ok(answer) => answer,
        Err(failure) => {
            return Verdict::Retry {
                reason: failure.to_string(),
            }
        }
    };
    let parsed: Option<Answer> = serde_json::from_slice(&answer.body).ok();
    let code = parsed
        .as_ref()
        .and_then(|a| a.error_code.as_deref())
        .map(clean);
    let reason = parsed
        .as_ref()
        .and_then(|a| a.error_msg.as_deref())
        .map(clean)
        .unwrap_or_default();
    match code.as_deref() {
        Some("MKT.0000") if answer.status == 200 => Verdict::Done,
        Some("MKT.0999") => Verdict::Retry {
            reason: format!("MKT.0999 {reason}"),
        },
        Some("MKT.9003") => Verdict::TooMany { reason },
        Some(c @ ("MKT.0100" | "MKT.0101" | "MKT.9001" | "MKT.9002" | "MKT.9004")) => {
            Verdict::RecordError {
                code: c.to_owned(),
                reason,
            }
        }
        Some(c) if answer.status >= 500 && !c.starts_with("MKT.") && !c.starts_with("APIGW.") => {
            Verdict::Retry {
                reason: format!("HTTP {}", answer.status),
            }
        }
        Some(c) => Verdict::Blocked {
            code: c.to_owned(),
            reason,
        },
        None if answer.status >= 500 || answer.status == 200 || answer.status == 429 => {
            Verdict::Retry {
                reason: format!("HTTP {} without an error_code", answer.status),
            }
        }
        None => Verdict::Blocked {
            code: format!("HTTP {}", answer.status),
            reason: String::new(),
        },
    }
}

/// KooGallery's text, bounded and printable, safe for logs and the status output.
fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Result<PushAnswer, PushFailure> {
        Ok(PushAnswer {
            status,
            body: body.as_bytes().to_vec(),
        })
    }

    fn code_answer(status: u16, code: &str) -> Verdict {
        classify(&answer(
            status,
            &format!(r#"{{"error_code":"{code}","error_msg":"m"}}"#),
        ))
    }

    #[test]
    fn success_is_done() {
        assert_eq!(code_answer(200, "MKT.0000"), Verdict::Done);
    }

    #[test]
    fn internal_errors_server_errors_and_timeouts_are_retried() {
        assert!(matches!(
            code_answer(500, "MKT.0999"),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            classify(&answer(502, "<html>")),
            Verdict::Retry { .. }
        ));
        assert!(matches!(classify(&answer(503, "")), Verdict::Retry { .. }));
        assert!(matches!(
            classify(&Err(PushFailure::Timeout)),
            Verdict::Retry { .. }
        ));
    }

    #[test]
    fn record_level_codes_are_record_errors_with_their_reason() {
        for code in ["MKT.0100", "MKT.0101", "MKT.9001", "MKT.9002", "MKT.9004"] {
            assert_eq!(
                code_answer(500, code),
                Verdict::RecordError {
                    code: code.into(),
                    reason: "m".into()
                }
            );
        }
        assert!(matches!(
            code_answer(500, "MKT.9003"),
            Verdict::TooMany { .. }
        ));
    }

    #[test]
    fn credential_and_signature_refusals_block_without_rejecting_records() {
        for (status, code) in [
            (400, "MKT.0102"),
            (401, "MKT.0150"),
            (401, "MKT.0154"),
            (401, "APIGW.0301"),
        ] {
            assert!(
                matches!(code_answer(status, code), Verdict::Blocked { .. }),
                "{code}"
            );
        }
        assert!(matches!(
            classify(&answer(403, "")),
            Verdict::Blocked { .. }
        ));
    }

    #[test]
    fn koogallery_text_is_bounded_and_printable() {
        let long = format!(
            r#"{{"error_code":"MKT.9001","error_msg":"a\nb{}"}}"#,
            "x".repeat(500)
        );
        let Verdict::RecordError { reason, .. } = classify(&answer(500, &long)) else {
            panic!()
        };
        assert!(reason.starts_with("ab") && reason.len() == 200);
    }
}
