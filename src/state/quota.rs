//! Known free-tier limits, counted locally (SPEC §12 "Known limits, no wasted calls"):
//! one [`Usage`] per limiter — an OpenRouter account (or key, until `/key` names its
//! account), or another provider's (key, model) pair — holding the requests sent in the
//! last 60 s and in the current UTC day.
//!
//! A limiter at its `rpm` or `rpd` admits nothing until a slot frees; the caller skips
//! the key without an upstream call. Time is always passed in.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::RateLimits;
use crate::util::time::{epoch_secs, from_epoch_secs};

const MINUTE: Duration = Duration::from_secs(60);
const DAY_SECS: u64 = 86_400;

/// Who a count belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimiterKey {
    /// One key (by its id), across models (`model: None`) or for one model.
    Key {
        id: Arc<str>,
        model: Option<Arc<str>>,
    },
    /// An OpenRouter account (`creator_user_id`), shared by all its keys.
    Account(Arc<str>),
}

/// The UTC day `t` falls in, as days since the epoch.
pub fn utc_day(t: SystemTime) -> u64 {
    epoch_secs(t) / DAY_SECS
}

/// Requests of one limiter: a sliding minute and the current UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Send times within the last minute (older ones are dropped as they are seen).
    minute: VecDeque<SystemTime>,
    /// The UTC day `day_used` counts.
    day: u64,
    day_used: u64,
    /// The daily limit OpenRouter's `/key` reported for this limiter.
    pub learned_rpd: Option<u64>,
}

/// One limiter's counts as shown by `/admin/state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageView {
    pub minute_used: u64,
    pub day_used: u64,
}

impl Usage {
    /// A day count read back from `keys.json`.
    pub fn restored(day: u64, day_used: u64, learned_rpd: Option<u64>) -> Self {
        Usage {
            minute: VecDeque::new(),
            day,
            day_used,
            learned_rpd,
        }
    }

    fn minute_used(&self, now: SystemTime) -> u64 {
        self.minute.iter().filter(|&&t| t + MINUTE > now).count() as u64
    }

    /// Requests sent today (0 once the UTC day has turned).
    pub fn day_used(&self, now: SystemTime) -> u64 {
        if self.day == utc_day(now) {
            self.day_used
        } else {
            0
        }
    }

    /// The saved form: (UTC day, requests that day).
    pub fn day_count(&self) -> (u64, u64) {
        (self.day, self.day_used)
    }

    pub fn view(&self, now: SystemTime) -> UsageView {
        UsageView {
            minute_used: self.minute_used(now),
            day_used: self.day_used(now),
        }
    }

    /// The daily limit in force: the configured one, else the learned one.
    pub fn daily_limit(&self, limits: RateLimits) -> Option<u64> {
        match limits.rpd {
            0 => self.learned_rpd,
            n => Some(u64::from(n)),
        }
    }

    /// `Ok` when one more request fits; else the earliest time one will.
    pub fn admits(&self, limits: RateLimits, now: SystemTime) -> Result<(), SystemTime> {
        if let Some(limit) = self.daily_limit(limits) {
            if self.day_used(now) >= limit {
                return Err(from_epoch_secs((utc_day(now) + 1) * DAY_SECS));
            }
        }
        if limits.rpm > 0 {
            let recent: Vec<SystemTime> = self
                .minute
                .iter()
                .copied()
                .filter(|&t| t + MINUTE > now)
                .collect();
            if recent.len() as u64 >= u64::from(limits.rpm) {
                // The slot of the oldest request in the window frees first.
                let oldest = recent.iter().min().copied().unwrap_or(now);
                return Err(oldest + MINUTE);
            }
        }
        Ok(())
    }

    /// Count one request sent at `now`.
    pub fn count(&mut self, now: SystemTime) {
        self.minute.retain(|&t| t + MINUTE > now);
        self.minute.push_back(now);
        let today = utc_day(now);
        if self.day != today {
            self.day = today;
            self.day_used = 0;
        }
        self.day_used += 1;
    }

    /// Take over what `/key` reported: today's count never goes down (a request counted
    /// locally may not have reached the account yet).
    pub fn learn(&mut self, limit: u64, used: u64, now: SystemTime) {
        let today = utc_day(now);
        if self.day != today {
            self.day = today;
            self.day_used = 0;
        }
        self.day_used = self.day_used.max(used);
        self.learned_rpd = Some(limit);
    }

    /// Merge another copy of the same limiter (accounts found to be one): the higher
    /// count wins, minute windows are joined.
    pub fn merge(&mut self, other: &Usage, now: SystemTime) {
        let today = utc_day(now);
        let mine = self.day_used(now);
        let theirs = other.day_used(now);
        self.day = today;
        self.day_used = mine.max(theirs);
        self.minute.extend(other.minute.iter().copied());
        self.minute.retain(|&t| t + MINUTE > now);
        self.learned_rpd = self.learned_rpd.or(other.learned_rpd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// Mid-day UTC.
    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(20_000 * DAY_SECS + 43_200 + s)
    }

    fn limits(rpm: u32, rpd: u32) -> RateLimits {
        RateLimits { rpm, rpd }
    }

    #[test]
    fn a_limiter_at_its_rpm_waits_for_the_oldest_slot() {
        let mut u = Usage::default();
        for s in [0, 10, 20] {
            assert_eq!(u.admits(limits(3, 0), at(s)), Ok(()));
            u.count(at(s));
        }
        assert_eq!(u.admits(limits(3, 0), at(30)), Err(at(60)));
        assert_eq!(u.admits(limits(3, 0), at(60)), Ok(()));
        assert_eq!(u.admits(limits(0, 0), at(30)), Ok(()), "0 = no limit");
        assert_eq!(u.view(at(30)).minute_used, 3);
        assert_eq!(u.view(at(65)).minute_used, 2);
    }

    #[test]
    fn a_limiter_at_its_rpd_waits_for_the_next_utc_day() {
        let mut u = Usage::default();
        u.count(at(0));
        u.count(at(100));
        let midnight = from_epoch_secs((utc_day(at(0)) + 1) * DAY_SECS);
        assert_eq!(u.admits(limits(0, 2), at(200)), Err(midnight));
        assert_eq!(u.admits(limits(0, 3), at(200)), Ok(()));
        // The day turns: the count starts over.
        assert_eq!(u.admits(limits(0, 2), midnight), Ok(()));
        assert_eq!(u.day_used(midnight), 0);
        u.count(midnight);
        assert_eq!(u.day_used(midnight), 1);
    }

    #[test]
    fn a_learned_limit_applies_when_none_is_configured() {
        let mut u = Usage::default();
        u.count(at(0));
        u.learn(50, 50, at(1));
        assert_eq!(u.day_used(at(1)), 50);
        assert!(u.admits(limits(0, 0), at(2)).is_err(), "learned: 50/50");
        assert_eq!(u.admits(limits(0, 1000), at(2)), Ok(()), "configured wins");
        // A report below the local count does not lower it.
        u.learn(50, 10, at(3));
        assert_eq!(u.day_used(at(3)), 50);
    }

    #[test]
    fn merging_keeps_the_higher_count() {
        let mut a = Usage::default();
        let mut b = Usage::default();
        a.count(at(0));
        for s in 0..3 {
            b.count(at(s));
        }
        a.merge(&b, at(5));
        assert_eq!(
            a.view(at(5)),
            UsageView {
                minute_used: 4,
                day_used: 3
            }
        );
    }
}
