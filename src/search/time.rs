//! Times for `grep` and `tail`: what `--since`/`--until` accept, and the timestamp a stored log
//! line carries at its start.
//!
//! Times without an offset are UTC: the store, the ledger and `cat` all speak UTC, and a loghost
//! gathers servers from many zones. RFC 3164 timestamps (`Dec  2 10:00:00`) carry neither a year
//! nor a zone: the year is the one of the frame that holds the line (the one before when that
//! would put the line more than two days after its collection), the zone UTC.

use jiff::Timestamp;
use jiff::civil::DateTime;

/// Microseconds since the Unix epoch.
pub type Micros = i64;

/// Parses a `--since`/`--until` value as journalctl takes them: `2026-12-01T10:00:00Z` (RFC
/// 3339), `2026-12-01`, `2026-12-01 10:00[:00]`, `10:00[:00]` (today), `now`, `today`,
/// `yesterday`, `tomorrow`, `-2h`, `+30min`, `2h ago`.
pub fn parse_when(s: &str, now: Timestamp) -> Result<Timestamp, String> {
    let t = s.trim();
    let midnight = |days: i64| -> Result<Timestamp, String> {
        let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
        today
            .checked_add(jiff::Span::new().days(days))
            .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC))
            .map(|z| z.timestamp())
            .map_err(|e| e.to_string())
    };
    match t {
        "now" => return Ok(now),
        "today" => return midnight(0),
        "yesterday" => return midnight(-1),
        "tomorrow" => return midnight(1),
        _ => {}
    }
    let relative = |sign: i64, d: &str| -> Result<Timestamp, String> {
        let d = humantime::parse_duration(d.trim()).map_err(|e| e.to_string())?;
        let span = jiff::SignedDuration::try_from(d).map_err(|e| e.to_string())?;
        let span = if sign < 0 { -span } else { span };
        now.checked_add(span).map_err(|e| e.to_string())
    };
    if let Some(d) = t.strip_prefix('-') {
        return relative(-1, d);
    }
    if let Some(d) = t.strip_prefix('+') {
        return relative(1, d);
    }
    if let Some(d) = t.strip_suffix(" ago") {
        return relative(-1, d);
    }
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts);
    }
    let civil = |dt: DateTime| {
        dt.to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|e| e.to_string())
    };
    for fmt in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = DateTime::strptime(fmt, t) {
            return civil(dt);
        }
    }
    if let Ok(d) = jiff::civil::Date::strptime("%Y-%m-%d", t) {
        return civil(d.to_datetime(jiff::civil::Time::midnight()));
    }
    for fmt in ["%H:%M:%S", "%H:%M"] {
        if let Ok(time) = jiff::civil::Time::strptime(fmt, t) {
            let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
            return civil(today.to_datetime(time));
        }
    }
    Err(format!(
        "cannot read {s:?} as a time: give RFC 3339 (2026-12-01T10:00:00Z), a day \
         (2026-12-01), a day and time in UTC (\"2026-12-01 10:00\"), now, today, yesterday, \
         or a time relative to now (-2h, -30min, \"1 day ago\")"
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |n, &d| n * 10 + i64::from(d - b'0')))
}

fn micros(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<Micros> {
    let days_in = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&mo) || d < 1 || d > days_in[(mo - 1) as usize] || h > 23 || mi > 59 {
        return None;
    }
    // A leap second (`:60`) counts as the second before the next minute.
    if s > 60 {
        return None;
    }
    Some(((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60_000_000 + s.min(59) * 1_000_000)
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|±HH:MM|±HHMM]`; no offset is UTC.
fn rfc3339(b: &[u8]) -> Option<Micros> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let mut t = micros(
        digits(&b[0..4])?,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    )?;
    let mut rest = &b[19..];
    if let [b'.' | b',', more @ ..] = rest {
        let n = more.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let mut frac = 0i64;
        for (i, &c) in more[..n].iter().take(6).enumerate() {
            frac += i64::from(c - b'0') * 10i64.pow(5 - i as u32);
        }
        t += frac;
        rest = &more[n..];
    }
    let offset = match rest {
        [b'Z' | b'z', ..] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2, ..]
        | [sign @ (b'+' | b'-'), h1, h2, m1, m2, ..]
            if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) =>
        {
            let h = digits(&[*h1, *h2])?;
            let m = digits(&[*m1, *m2])?;
            if h > 23 || m > 59 {
                return None;
            }
            let o = (h * 60 + m) * 60_000_000;
            if *sign == b'+' { o } else { -o }
        }
        _ => 0,
    };
    Some(t - offset)
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `Mmm dd HH:MM:SS` (the day space-padded or not), the year taken from `reference`.
fn rfc3164(b: &[u8], reference: Micros) -> Option<Micros> {
    if b.len() < 15 || b[3] != b' ' {
        return None;
    }
    let mo = MONTHS.iter().position(|m| &b[..3] == *m)? as i64 + 1;
    let d = match (b[4], b[5]) {
        (b' ', d) if d.is_ascii_digit() => i64::from(d - b'0'),
        (d1, d2) if d1.is_ascii_digit() && d2.is_ascii_digit() => digits(&[d1, d2])?,
        _ => return None,
    };
    if b[6] != b' ' || b[9] != b':' || b[12] != b':' {
        return None;
    }
    let (h, mi, s) = (digits(&b[7..9])?, digits(&b[10..12])?, digits(&b[13..15])?);
    let year = Timestamp::from_microsecond(reference)
        .ok()?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .year() as i64;
    let t = micros(year, mo, d, h, mi, s)?;
    // A line from late December collected in January belongs to the year before.
    if t > reference + 2 * 86_400_000_000 {
        return micros(year - 1, mo, d, h, mi, s);
    }
    Some(t)
}

/// The time a stored line states at its start, if it states one: RFC 3339 (rsyslog's default
/// file format, most applications), RFC 3164, either after a syslog `<PRI>` and RFC 5424's
/// version (lines received over syslog). `reference` is the line's collection time (a year
/// for RFC 3164).
pub fn line_time(line: &[u8], reference: Micros) -> Option<Micros> {
    let mut b = line;
    if let [b'<', rest @ ..] = b {
        let n = rest.iter().take(4).position(|&c| c == b'>')?;
        if n == 0 || !rest[..n].iter().all(u8::is_ascii_digit) {
            return None;
        }
        b = &rest[n + 1..];
        if let [b'1', b' ', rest @ ..] = b {
            b = rest;
        }
    }
    match b.first() {
        Some(c) if c.is_ascii_digit() => rfc3339(b),
        Some(c) if c.is_ascii_uppercase() => rfc3164(b, reference),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Micros {
        s.parse::<Timestamp>().expect("timestamp").as_microsecond()
    }

    #[test]
    fn line_times_in_the_forms_logs_use() {
        let r = ts("2026-12-02T12:00:00Z");
        assert_eq!(
            line_time(b"2026-12-02T10:00:00.123456+00:00 web1 sshd[1]: x", r),
            Some(ts("2026-12-02T10:00:00.123456Z"))
        );
        assert_eq!(
            line_time(b"2026-12-02T11:00:00+01:00 web1 x", r),
            Some(ts("2026-12-02T10:00:00Z"))
        );
        assert_eq!(
            line_time(b"2026-12-02 10:00:00,5 INFO x", r),
            Some(ts("2026-12-02T10:00:00.5Z"))
        );
        assert_eq!(
            line_time(b"Dec  2 10:00:00 web1 sshd[1]: x", r),
            Some(ts("2026-12-02T10:00:00Z"))
        );
        assert_eq!(
            line_time(b"<34>1 2026-12-02T10:00:00Z web1 app - - - x", r),
            Some(ts("2026-12-02T10:00:00Z"))
        );
        assert_eq!(
            line_time(b"<13>Dec 02 10:00:00 web1 app: x", r),
            Some(ts("2026-12-02T10:00:00Z"))
        );
        // December lines collected in January are of the year before.
        assert_eq!(
            line_time(b"Dec 31 23:59:59 x", ts("2027-01-01T00:00:10Z")),
            Some(ts("2026-12-31T23:59:59Z"))
        );
        for bad in [
            &b"   at java.lang.Thread.run"[..],
            b"2026-13-02T10:00:00Z",
            b"2026-02-30T10:00:00Z",
            b"Foo  2 10:00:00 x",
            b"<999999>1 2026",
            b"",
            b"12345",
        ] {
            assert_eq!(
                line_time(bad, r),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn since_and_until_as_journalctl_takes_them() {
        let now: Timestamp = "2026-12-02T15:30:00Z".parse().expect("now");
        let p = |s| parse_when(s, now).map(|t| t.to_string());
        assert_eq!(p("2026-12-01").as_deref(), Ok("2026-12-01T00:00:00Z"));
        assert_eq!(p("2026-12-01 10:00").as_deref(), Ok("2026-12-01T10:00:00Z"));
        assert_eq!(
            p("2026-12-01T10:00:00+01:00").as_deref(),
            Ok("2026-12-01T09:00:00Z")
        );
        assert_eq!(p("yesterday").as_deref(), Ok("2026-12-01T00:00:00Z"));
        assert_eq!(p("today").as_deref(), Ok("2026-12-02T00:00:00Z"));
        assert_eq!(p("-2h").as_deref(), Ok("2026-12-02T13:30:00Z"));
        assert_eq!(p("1 day ago").as_deref(), Ok("2026-12-01T15:30:00Z"));
        assert_eq!(p("08:00").as_deref(), Ok("2026-12-02T08:00:00Z"));
        assert!(p("last tuesday").is_err());
        assert!(p("2026-12-32").is_err());
    }
}
