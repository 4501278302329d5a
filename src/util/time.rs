//! Wall-clock helpers, one copy: epoch conversions (clamped, never panicking on a clock
//! before 1970), the next UTC midnight (daily quotas reset then, SPEC §5), and the
//! RFC 3339 timestamps of the model list.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whole seconds since the Unix epoch (0 for times before it).
pub fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Milliseconds since the Unix epoch (0 for times before it).
pub fn epoch_ms(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

/// Nanoseconds since the Unix epoch, truncated to 64 bits (for unique ids, not arithmetic).
pub fn epoch_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub fn from_epoch_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn from_epoch_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Time left until `until` (zero once it has passed).
pub fn until(until: SystemTime, now: SystemTime) -> Duration {
    until.duration_since(now).unwrap_or_default()
}

/// The next 00:00 UTC strictly after `now`.
pub fn next_utc_midnight(now: SystemTime) -> SystemTime {
    from_epoch_secs((epoch_secs(now) / 86_400 + 1) * 86_400)
}

/// Parse the RFC 3339 UTC timestamps the list uses (`2026-04-25T03:17:45.681Z`).
/// Offsets other than `Z` are accepted too; anything else yields `None`.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: u32 = date_parts.next()?.parse().ok()?;
    let day: u32 = date_parts.next()?.parse().ok()?;
    let (clock, offset_secs) = split_offset(time)?;
    let mut clock_parts = clock.splitn(3, ':');
    let hour: i64 = clock_parts.next()?.parse().ok()?;
    let minute: i64 = clock_parts.next()?.parse().ok()?;
    let seconds: f64 = clock_parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let whole = days * 86_400 + hour * 3_600 + minute * 60 + seconds.trunc() as i64 - offset_secs;
    let nanos = (seconds.fract() * 1e9) as u32;
    let secs = u64::try_from(whole).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

fn split_offset(time: &str) -> Option<(&str, i64)> {
    if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        return Some((clock, 0));
    }
    let sign_at = time.rfind(['+', '-'])?;
    let (clock, offset) = time.split_at(sign_at);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let (h, m) = offset[1..].split_once(':')?;
    let secs = h.parse::<i64>().ok()? * 3_600 + m.parse::<i64>().ok()? * 60;
    Some((clock, sign * secs))
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parsing() {
        let t = parse_rfc3339("2026-04-25T03:17:45.681Z").unwrap();
        let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1_777_087_065);
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(UNIX_EPOCH));
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
    }

    #[test]
    fn epoch_conversions_round_trip_and_clamp() {
        assert_eq!(
            epoch_ms(from_epoch_ms(1_780_012_800_123)),
            1_780_012_800_123
        );
        assert_eq!(epoch_secs(from_epoch_secs(42)), 42);
        assert_eq!(epoch_secs(UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert_eq!(
            next_utc_midnight(from_epoch_secs(86_399)),
            from_epoch_secs(86_400)
        );
        assert_eq!(
            next_utc_midnight(from_epoch_secs(86_400)),
            from_epoch_secs(172_800)
        );
        assert_eq!(
            until(from_epoch_secs(10), from_epoch_secs(4)),
            Duration::from_secs(6)
        );
        assert_eq!(
            until(from_epoch_secs(1), from_epoch_secs(4)),
            Duration::ZERO
        );
    }
}
