//! Per-client request budgets: `auth.client_keys[].rpm` (SPEC §3, §11). A client may
//! start at most `rpm` chat requests in any 60 s; the next one gets 429 `rate_limited`
//! with `Retry-After` = seconds until its oldest counted request leaves the window.
//!
//! A sliding log per client (the start times of the requests admitted in the last 60 s)
//! rather than a fixed-window counter or `pingora-limits`' estimator:
//! - exact: a fixed window lets a client send 2×rpm across a window boundary, and
//!   `pingora-limits::Rate` is a count-min-sketch estimate over fixed intervals with no
//!   way to tell when budget frees up, which `Retry-After` needs;
//! - cheap: one short `parking_lot` lock per request (never held across an `.await`),
//!   amortised O(1), at most `rpm` timestamps (16 bytes each) per client.
//!
//! Only chat routes are counted. Listing models and the Anthropic front's local
//! `count_tokens` (SPEC §10: Claude Code fires dozens at once) never call [`ClientLimits::check`].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::ClientKey;
use crate::domain::error::GatewayError;

/// The span an `rpm` budget covers.
pub const WINDOW: Duration = Duration::from_secs(60);

struct Budget {
    rpm: usize,
    /// Start times of the admitted requests still inside the window, oldest first.
    admitted: Mutex<VecDeque<Instant>>,
}

impl Budget {
    /// Admit one request at `now`, or say how long until one more fits.
    fn admit(&self, now: Instant) -> Result<(), Duration> {
        let mut admitted = self.admitted.lock();
        while admitted
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= WINDOW)
        {
            admitted.pop_front();
        }
        if admitted.len() < self.rpm {
            admitted.push_back(now);
            return Ok(());
        }
        // Full: the oldest request leaves the window first.
        let oldest = admitted.front().copied().unwrap_or(now);
        Err(WINDOW.saturating_sub(now.saturating_duration_since(oldest)))
    }
}

/// The budgets of every client with an `rpm`, keyed by client name (unique in the config).
/// Built once at start: the config does not change while the process runs.
pub struct ClientLimits {
    budgets: HashMap<String, Budget>,
}

impl ClientLimits {
    pub fn new(clients: &[ClientKey]) -> Self {
        let budgets = clients
            .iter()
            .filter_map(|c| {
                let rpm = c.rpm?;
                Some((
                    c.name.clone(),
                    Budget {
                        rpm: rpm as usize,
                        admitted: Mutex::new(VecDeque::new()),
                    },
                ))
            })
            .collect();
        ClientLimits { budgets }
    }

    /// Count one chat request of `client` (its configured name; `None` when client auth
    /// is off) against its budget. A refused request is not counted, so a client that
    /// keeps retrying still gets through once its window frees up.
    pub fn check(&self, client: Option<&str>, now: Instant) -> Result<(), GatewayError> {
        let Some((name, budget)) = client.and_then(|c| self.budgets.get_key_value(c)) else {
            return Ok(());
        };
        budget
            .admit(now)
            .map_err(|wait| GatewayError::rate_limited(name, budget.rpm, wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ClientLimits {
        let client = |name: &str, rpm| ClientKey {
            name: name.into(),
            key: format!("{name}-key"),
            rpm,
        };
        ClientLimits::new(&[client("alice", Some(2)), client("bob", None)])
    }

    #[test]
    fn at_most_rpm_requests_in_any_sixty_seconds() {
        let limits = limits();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(limits.check(Some("alice"), at(0)).is_ok());
        assert!(limits.check(Some("alice"), at(10)).is_ok());
        let refused = limits.check(Some("alice"), at(20)).unwrap_err();
        assert_eq!((refused.status, refused.code), (429, "rate_limited"));
        // The request at 0 s leaves the window at 60 s.
        assert_eq!(refused.retry_after, Some(40));
        assert!(refused.message.contains("2 requests per minute"));
        // Refusals are not counted; the window slides rather than resetting.
        assert!(limits.check(Some("alice"), at(59)).is_err());
        assert!(limits.check(Some("alice"), at(60)).is_ok());
        let refused = limits.check(Some("alice"), at(61)).unwrap_err();
        assert_eq!(refused.retry_after, Some(9));
        assert!(limits.check(Some("alice"), at(70)).is_ok());
    }

    #[test]
    fn clients_without_rpm_and_anonymous_requests_are_not_limited() {
        let limits = limits();
        let now = Instant::now();
        for _ in 0..1000 {
            assert!(limits.check(Some("bob"), now).is_ok());
            assert!(limits.check(None, now).is_ok());
            assert!(limits.check(Some("carol"), now).is_ok());
        }
        // ...and do not touch alice's budget.
        assert!(limits.check(Some("alice"), now).is_ok());
    }
}
