//! RFC 3339 date-times, for the body's signed `timestamp`.

use crate::code::Code;

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The civil date of a day count from 1970-01-01 (inverse of `days_from_civil`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats unix seconds as an RFC 3339 UTC date-time, e.g. `2023-11-14T22:13:20Z` (years 0 to 9999).
pub fn format_rfc3339(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Parses an RFC 3339 `date-time` (e.g. `2022-02-18T15:12:18.672945Z`, `...+02:00`) to unix seconds,
/// fractions dropped. A leap second (`:60`) counts as the second after `:59`.
pub fn parse_rfc3339(s: &[u8]) -> Result<i64, Code> {
    let bad = Code::MalformedTimestamp;
    let num = |from: usize, len: usize| -> Result<i64, Code> {
        let digits = s.get(from..from + len).ok_or(bad)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad);
        }
        Ok(digits.iter().fold(0, |n, &d| n * 10 + i64::from(d - b'0')))
    };
    let at = |i: usize, want: &[u8]| s.get(i).is_some_and(|b| want.contains(b));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt") && at(13, b":") && at(16, b":")) {
        return Err(bad);
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60
    {
        return Err(bad);
    }
    let mut i = 19;
    if at(i, b".") {
        i += 1;
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(bad);
        }
    }
    let offset = if at(i, b"Zz") {
        i += 1;
        0
    } else if at(i, b"+-") && at(i + 3, b":") {
        let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
        if oh > 23 || om > 59 {
            return Err(bad);
        }
        let sign = if s[i] == b'-' { -1 } else { 1 };
        i += 6;
        sign * (oh * 3600 + om * 60)
    } else {
        return Err(bad);
    };
    if i != s.len() {
        return Err(bad);
    }
    Ok(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_rfc3339(b"2022-02-18T15:12:18.672945Z"),
            Ok(1_645_197_138)
        );
        assert_eq!(
            parse_rfc3339(b"2022-02-18T16:12:18+01:00"),
            Ok(1_645_197_138)
        );
        assert_eq!(
            parse_rfc3339(b"2022-02-18t10:12:18.1-05:00"),
            Ok(1_645_197_138)
        );
        assert_eq!(parse_rfc3339(b"2024-02-29T00:00:00Z"), Ok(1_709_164_800));
        assert_eq!(parse_rfc3339(b"2016-12-31T23:59:60Z"), Ok(1_483_228_800));
    }

    #[test]
    fn format_round_trips() {
        for t in [
            0,
            1_645_197_138,
            1_709_164_800,
            951_782_400,
            4_102_444_799,
            253_402_300_799,
        ] {
            let text = format_rfc3339(t);
            assert_eq!(parse_rfc3339(text.as_bytes()), Ok(t), "{text}");
        }
        assert_eq!(format_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn malformed() {
        let texts = "|2022-02-18|2022-02-18T15:12:18|2022-02-18 15:12:18Z|2022-02-30T15:12:18Z\
            |2023-02-29T00:00:00Z|2022-13-18T15:12:18Z|2022-02-18T24:00:00Z|2022-02-18T15:12:18.Z\
            |2022-02-18T15:12:18+0100|2022-02-18T15:12:18Zjunk|+022-02-18T15:12:18Z";
        let not_utf8: &[u8] = b"2022-02-18T15:12:18\xff";
        for s in texts.split('|').map(str::as_bytes).chain([not_utf8]) {
            assert_eq!(
                parse_rfc3339(s),
                Err(Code::MalformedTimestamp),
                "{}",
                String::from_utf8_lossy(s)
            );
        }
    }
}
