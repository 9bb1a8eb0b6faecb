//! KooGallery time formats turned into RFC 3339 UTC for the upstream.

use time::{
    format_description::well_known::Rfc3339, macros::format_description, OffsetDateTime,
    PrimitiveDateTime,
};

/// Converts `yyyyMMddHHmmss` (14 digits) or `yyyyMMddHHmmssSSS` (17 digits), read as UTC, to RFC 3339.
pub fn expire_time_to_rfc3339(value: &str) -> Option<String> {
    if !matches!(value.len(), 14 | 17) || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (seconds, millis) = value.split_at(14);
    let format = format_description!("[year][month][day][hour][minute][second]");
    let mut at = PrimitiveDateTime::parse(seconds, &format)
        .ok()?
        .assume_utc();
    if !millis.is_empty() {
        at += time::Duration::milliseconds(millis.parse().ok()?);
    }
    rfc3339(at)
}

/// The basic ISO 8601 form in UTC, `yyyyMMdd'T'HHmmss'Z'`: Huawei API Gateway's `X-Sdk-Date` and the usage-data
/// record times.
pub fn basic_utc(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let seconds = koogallery(at, false);
    format!("{}T{}Z", &seconds[..8], &seconds[8..])
}

/// KooGallery's own form of an instant (UTC): `yyyyMMddHHmmss`, or `yyyyMMddHHmmssSSS` with `millis` (V1's
/// `timeStamp`). The inverse of [`expire_time_to_rfc3339`]'s input.
pub fn koogallery(at: OffsetDateTime, millis: bool) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let seconds = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    if millis {
        format!("{seconds}{:03}", at.millisecond())
    } else {
        seconds
    }
}

/// Formats an instant as RFC 3339 (UTC, `Z`).
pub fn rfc3339(at: OffsetDateTime) -> Option<String> {
    at.format(&Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_utc_is_the_sdk_date_form() {
        let at = time::macros::datetime!(2006-01-02 15:04:05 +01:00);
        assert_eq!(basic_utc(at), "20060102T140405Z");
    }

    #[test]
    fn fourteen_and_seventeen_digit_times_convert() {
        assert_eq!(
            expire_time_to_rfc3339("20210916133124").as_deref(),
            Some("2021-09-16T13:31:24Z")
        );
        assert_eq!(
            expire_time_to_rfc3339("20210916133124481").as_deref(),
            Some("2021-09-16T13:31:24.481Z")
        );
    }

    #[test]
    fn koogallery_times_round_trip_through_the_parser() {
        let at = time::macros::datetime!(2021-09-16 13:31:24.481 UTC);
        assert_eq!(koogallery(at, true), "20210916133124481");
        assert_eq!(koogallery(at, false), "20210916133124");
        assert_eq!(
            expire_time_to_rfc3339(&koogallery(at, true)).as_deref(),
            Some("2021-09-16T13:31:24.481Z")
        );
    }

    #[test]
    fn malformed_times_are_refused() {
        for v in [
            "",
            "2021091613312",
            "202109161331244",
            "20211316133124",
            "20210230133124",
            "2021-09-16T13:31",
        ] {
            assert_eq!(expire_time_to_rfc3339(v), None, "{v}");
        }
    }
}
