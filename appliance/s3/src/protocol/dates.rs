//! Dates and the clock, in the forms S3 writes them: ISO 8601 extended in XML
//! (`2026-11-26T07:00:00.000Z`), ISO 8601 basic in `x-amz-date` (`20261126T070000Z`), and
//! RFC 7231 HTTP-dates in headers (`Date`, `Last-Modified`, `x-amz-expiration`); the forms
//! S3 accepts are parsed back to Unix seconds.
//!
//! Must not import anything of this crate but `error`: every layer reads the clock here.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// ISO 8601 with milliseconds, as S3 XML uses (`2026-11-22T02:41:01.000Z`).
pub fn iso8601(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil_from_days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// HTTP date (RFC 9110) for Last-Modified.
pub fn http_date(unix_ms: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_millis(unix_ms))
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an ISO 8601 basic timestamp `YYYYMMDDTHHMMSSZ` (x-amz-date) into Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = days_from_civil(y as i64, mo, d);
    u64::try_from(days * 86_400 + (h * 3600 + mi * 60 + se) as i64).ok()
}

/// Unix seconds as an ISO 8601 basic timestamp (`20261126T070000Z`), as `x-amz-date` carries.
pub fn amz_date(unix_secs: u64) -> String {
    let iso = crate::protocol::dates::iso8601(unix_secs * 1000); // 2026-11-26T07:00:00.000Z
    format!(
        "{}{}{}T{}{}{}Z",
        &iso[0..4],
        &iso[5..7],
        &iso[8..10],
        &iso[11..13],
        &iso[14..16],
        &iso[17..19]
    )
}

/// Parses an HTTP date as clients send them (RFC 9110 section 5.6.7): RFC 1123 with `GMT`
/// (`Wed, 25 Nov 2026 21:56:35 GMT`) or with a numeric zone (`... +0000`, RFC 2822, as s3cmd and
/// Python's `email.utils` send), RFC 850 (`Wednesday, 25-Nov-26 21:56:35 GMT`) and asctime
/// (`Wed Nov 25 21:56:35 2026`). Returns Unix seconds.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let s = s.trim();
    let parse = |t: &str| {
        httpdate::parse_http_date(t)
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs())
    };
    if let Some(t) = parse(s) {
        return Some(t);
    }
    // A numeric zone `+HHMM` / `-HHMM` (or `UT`/`Z`): parse as GMT, then apply the offset.
    let (base, zone) = s.rsplit_once(' ')?;
    let offset_secs: i64 = match zone {
        "UT" | "UTC" | "Z" | "GMT" => 0,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let hh: i64 = z.get(1..3)?.parse().ok()?;
            let mm: i64 = z.get(3..5)?.parse().ok()?;
            if hh > 23 || mm > 59 {
                return None;
            }
            let secs = hh * 3600 + mm * 60;
            if z.starts_with('-') {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let local = parse(&format!("{base} GMT"))
        .or_else(|| {
            // RFC 2822 allows a single-digit day ("Wed, 5 Nov 2026 ..."); IMF-fixdate does not.
            let (wday, rest) = base.split_once(", ")?;
            let (day, rest) = rest.split_once(' ')?;
            (day.len() == 1).then(|| parse(&format!("{wday}, 0{day} {rest} GMT")))?
        })
        .or_else(|| date_ignoring_weekday(base))?;
    u64::try_from(local as i64 - offset_secs).ok()
}

/// `Www, DD Mon YYYY HH:MM:SS` (no zone) in Unix seconds, whatever the weekday says: S3 reads
/// the date and judges its skew, and does not refuse a weekday that does not match the day.
fn date_ignoring_weekday(s: &str) -> Option<u64> {
    let (_, rest) = s.split_once(", ")?;
    let mut fields = rest.split(' ');
    let (day, month, year, time) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    if fields.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let (day, year): (u32, i64) = (day.parse().ok()?, year.parse().ok()?);
    let mut hms = time.split(':').map(|t| t.parse::<u32>().ok());
    let (h, mi, se) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || se > 60 || hms.next().is_some() {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + (h * 3600 + mi * 60 + se) as i64;
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_369_353_600_123), "2013-05-24T00:00:00.123Z");
    }

    #[test]
    fn amz_dates_parse() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20130524T000000Z"), Some(1_369_353_600));
        assert_eq!(parse_amz_date("2013052T000000Z"), None);
        assert_eq!(amz_date(1_369_353_600), "20130524T000000Z");
        assert_eq!(parse_amz_date("20131324T000000Z"), None);
    }

    /// The date forms S3 accepts in `Date` and SigV2's `x-amz-date`.
    #[test]
    fn http_dates_parse_in_every_form_clients_send() {
        let t = 1_795_643_795; // 2026-11-25T21:56:35Z
        for s in [
            "Wed, 25 Nov 2026 21:56:35 GMT",
            "Wed, 25 Nov 2026 21:56:35 +0000",
            "Wed, 25 Nov 2026 22:56:35 +0100",
            "Wed, 25 Nov 2026 16:56:35 -0500",
            "Wednesday, 25-Nov-26 21:56:35 GMT",
            "Wed Nov 25 21:56:35 2026",
        ] {
            assert_eq!(parse_http_date(s), Some(t), "{s}");
        }
        assert_eq!(
            parse_http_date("Thu, 5 Nov 2026 21:56:35 +0000"),
            Some(t - 20 * 86_400)
        );
        for bad in [
            "",
            "yesterday",
            "Wed, 25 Nov 2026 21:56:35 +2400",
            "Wed, 25 Nov 2026 21:56:35 EST",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
