//! Times as people and machines read them, in UTC: `2021-01-01 00:00:00 UTC` in messages and
//! log lines, RFC 3339 (`2021-01-01T00:00:00Z`) in the command's JSON report. No time-zone
//! database and no date crate: certificates and reports speak UTC only.

use std::time::SystemTime;

/// `2021-01-01 00:00:00 UTC`.
pub fn utc(t: SystemTime) -> String {
    let (year, month, day, h, m, s) = civil(t);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02} UTC")
}

/// `2021-01-01T00:00:00Z`, RFC 3339 in UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    let (year, month, day, h, m, s) = civil(t);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

/// Year, month, day, hour, minute, second of `t` in UTC (whole seconds, rounded down).
fn civil(t: SystemTime) -> (i64, i64, i64, i64, i64, i64) {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Before the epoch: a fraction of a second still counts as the second before.
        Err(e) => {
            let d = e.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            -whole - i64::from(d.subsec_nanos() > 0)
        }
    };
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rest / 3_600, rest % 3_600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_utc() {
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(utc(at(0)), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(at(951_782_400)), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(at(1_609_459_199)), "2020-12-31 23:59:59 UTC");
        assert_eq!(utc(at(32_503_680_000)), "3000-01-01 00:00:00 UTC");
        // GeneralizedTime's "no well-defined expiration" (RFC 5280 §4.1.2.5).
        assert_eq!(utc(at(253_402_300_799)), "9999-12-31 23:59:59 UTC");
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(utc(before), "1969-12-31 00:00:00 UTC");
        let just_before = SystemTime::UNIX_EPOCH - Duration::from_millis(1);
        assert_eq!(utc(just_before), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn rfc3339_is_the_same_instant() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(951_825_845_999);
        assert_eq!(rfc3339(t), "2000-02-29T12:04:05Z");
        assert_eq!(utc(t), "2000-02-29 12:04:05 UTC");
    }
}
