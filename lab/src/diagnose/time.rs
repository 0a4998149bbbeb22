//! Timestamps as access logs print them, to ns since the Unix epoch.
//!
//! Envoy's `%START_TIME%` prints `2026-12-01T02:44:26.123Z` (UTC, ms);
//! Envoy's own log prefix prints `2026-12-01 02:44:26.123` (its local time,
//! UTC in containers); a custom `%START_TIME(%s.%3f)%` prints epoch seconds.
//! All three are read; anything else is `None`, never a panic.

const NS_PER_S: i64 = 1_000_000_000;

/// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > 18 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
}

/// Fractional seconds ("123" -> 123_000_000 ns); at most 9 digits are used.
fn fraction_ns(text: &[u8]) -> Option<i64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let used = &text[..text.len().min(9)];
    let value = digits(used)?;
    Some(value * 10i64.pow(9 - used.len() as u32))
}

/// Parses `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|+HH:MM|-HH:MM]` or epoch seconds
/// `S[.frac]`; returns ns since the epoch (before 1970 is `None`).
pub fn parse_ns(text: &str) -> Option<u64> {
    // Trimmed only when it has to be (the check is cheaper than `trim`).
    let graphic = |c: Option<&u8>| c.is_some_and(u8::is_ascii_graphic);
    let b = text.as_bytes();
    let b = if graphic(b.first()) && graphic(b.last()) {
        b
    } else {
        text.trim().as_bytes()
    };
    if b.len() >= 19 && b[4] == b'-' && b[7] == b'-' && (b[10] == b'T' || b[10] == b' ') {
        return iso(b);
    }
    epoch(b)
}

fn iso(b: &[u8]) -> Option<u64> {
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, s) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut frac = 0;
    if let Some(after) = rest.strip_prefix(b".") {
        let n = after.iter().take_while(|c| c.is_ascii_digit()).count();
        frac = fraction_ns(&after[..n])?;
        rest = &after[n..];
    }
    let offset_s = match rest {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), hh1, hh2, b':', mm1, mm2] => {
            let off = digits(&[*hh1, *hh2])? * 3600 + digits(&[*mm1, *mm2])? * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset_s;
    u64::try_from(secs.checked_mul(NS_PER_S)?.checked_add(frac)?).ok()
}

fn epoch(b: &[u8]) -> Option<u64> {
    let (whole, frac) = match b.iter().position(|&c| c == b'.') {
        Some(dot) => (&b[..dot], fraction_ns(&b[dot + 1..])?),
        None => (b, 0),
    };
    let secs = digits(whole)?;
    u64::try_from(secs.checked_mul(NS_PER_S)?.checked_add(frac)?).ok()
}

/// `2026-12-01T02:44:26.123Z` (ms, UTC): how the summary prints times.
pub fn format_ms(ns: u64) -> String {
    let secs = (ns / NS_PER_S as u64) as i64;
    let ms = (ns / 1_000_000) % 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil_from_days (Hinnant).
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
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_start_time() {
        let ns = parse_ns("2026-12-01T02:44:26.123Z").unwrap();
        assert_eq!(ns, 1_796_093_066_123_000_000);
        assert_eq!(format_ms(ns), "2026-12-01T02:44:26.123Z");
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn prefix_offsets_and_epoch() {
        let utc = parse_ns("2026-12-01T02:44:26.123Z").unwrap();
        assert_eq!(parse_ns("2026-12-01 02:44:26.123"), Some(utc));
        assert_eq!(parse_ns("2026-12-01T03:44:26.123+01:00"), Some(utc));
        assert_eq!(
            parse_ns("2026-12-01T02:44:26.123456789Z"),
            Some(utc + 456_789)
        );
        assert_eq!(parse_ns("1796093066.123"), Some(utc));
        assert_eq!(
            parse_ns("2024-02-29T00:00:00Z"),
            Some(1_709_164_800 * 1_000_000_000)
        );
    }

    #[test]
    fn garbage_is_none() {
        for bad in [
            "",
            "-",
            "2026-13-01T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T00:00:00X",
            "2026-12-01Tab:00:00Z",
            "1.2.3",
            "99999999999999999999999",
            "2026-12-01T00:00:00.Z",
            "€€€€-12-01T00:00:00Z",
        ] {
            assert_eq!(parse_ns(bad), None, "{bad}");
        }
    }
}
