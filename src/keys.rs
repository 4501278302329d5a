//! The upstream key pool: round-robin among usable keys, with per-key state.
//!
//! Keys never leave this module whole except as the bearer token of an upstream request;
//! everything that is logged or shown uses [`mask`].

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;

pub use crate::config::mask_key as mask;
use crate::outcome::KeyFault;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    Active,
    Cooling { until: SystemTime, reason: KeyFault },
    Disabled { reason: KeyFault },
}

impl KeyState {
    pub fn label(&self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Cooling { .. } => "cooling",
            KeyState::Disabled { .. } => "disabled",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyCounters {
    pub requests: u64,
    pub successes: u64,
    pub errors: u64,
}

struct KeyEntry {
    secret: Arc<str>,
    state: KeyState,
    counters: KeyCounters,
    marked_at: Option<SystemTime>,
}

impl KeyEntry {
    fn usable_at(&mut self, now: SystemTime) -> bool {
        if let KeyState::Cooling { until, .. } = self.state {
            if until <= now {
                // Cooling keys come back by themselves.
                self.state = KeyState::Active;
                self.marked_at = Some(now);
            }
        }
        self.state == KeyState::Active
    }
}

/// A key handed out for one attempt.
#[derive(Clone)]
pub struct KeyLease {
    index: usize,
    secret: Arc<str>,
}

impl KeyLease {
    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn masked(&self) -> String {
        mask(&self.secret)
    }
}

impl fmt::Debug for KeyLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyLease({})", self.masked())
    }
}

/// Why no key could be handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoKey {
    /// No upstream key is configured at all.
    NoneConfigured,
    /// Every key is disabled; `described` names them as `...abcd (len=N)`.
    AllDisabled { described: Vec<String> },
    /// Every usable-in-principle key is cooling; the earliest returns at `until`.
    AllCooling { until: SystemTime },
}

/// What happened to a key during one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEvent {
    /// The attempt reached the model (whatever the model then did).
    Served,
    Cooled {
        until: SystemTime,
        reason: KeyFault,
    },
    Disabled {
        reason: KeyFault,
    },
}

/// One key as shown by `/admin/state`.
#[derive(Debug, Clone)]
pub struct KeyView {
    pub masked: String,
    pub state: KeyState,
    pub counters: KeyCounters,
    pub marked_at: Option<SystemTime>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyTally {
    pub usable: usize,
    pub cooling: usize,
    pub disabled: usize,
}

struct PoolInner {
    keys: Vec<KeyEntry>,
    next: usize,
}

pub struct KeyPool {
    inner: Mutex<PoolInner>,
}

impl KeyPool {
    pub fn new(secrets: &[String]) -> Self {
        let keys = secrets
            .iter()
            .map(|s| KeyEntry {
                secret: Arc::from(s.as_str()),
                state: KeyState::Active,
                counters: KeyCounters::default(),
                marked_at: None,
            })
            .collect();
        KeyPool {
            inner: Mutex::new(PoolInner { keys, next: 0 }),
        }
    }

    /// The next usable key, round-robin.
    pub fn lease(&self, now: SystemTime) -> Result<KeyLease, NoKey> {
        let mut inner = self.inner.lock();
        let n = inner.keys.len();
        if n == 0 {
            return Err(NoKey::NoneConfigured);
        }
        let start = inner.next;
        for offset in 0..n {
            let index = (start + offset) % n;
            let entry = &mut inner.keys[index];
            if entry.usable_at(now) {
                entry.counters.requests += 1;
                let secret = entry.secret.clone();
                inner.next = (index + 1) % n;
                return Ok(KeyLease { index, secret });
            }
        }
        let earliest_cooling = inner
            .keys
            .iter()
            .filter_map(|k| match k.state {
                KeyState::Cooling { until, .. } => Some(until),
                _ => None,
            })
            .min();
        Err(match earliest_cooling {
            Some(until) => NoKey::AllCooling { until },
            None => NoKey::AllDisabled {
                described: inner
                    .keys
                    .iter()
                    .map(|k| format!("{} (len={})", mask(&k.secret), k.secret.chars().count()))
                    .collect(),
            },
        })
    }

    pub fn record(&self, lease: &KeyLease, event: KeyEvent, now: SystemTime) {
        let mut inner = self.inner.lock();
        let Some(entry) = inner.keys.get_mut(lease.index) else {
            return;
        };
        // The pool may have been rebuilt since the lease was taken.
        if entry.secret != lease.secret {
            return;
        }
        match event {
            KeyEvent::Served => entry.counters.successes += 1,
            KeyEvent::Cooled { until, reason } => {
                entry.counters.errors += 1;
                entry.state = KeyState::Cooling { until, reason };
                entry.marked_at = Some(now);
            }
            KeyEvent::Disabled { reason } => {
                entry.counters.errors += 1;
                entry.state = KeyState::Disabled { reason };
                entry.marked_at = Some(now);
            }
        }
    }

    /// Every key back to `active`.
    pub fn reset(&self, now: SystemTime) {
        for entry in self.inner.lock().keys.iter_mut() {
            entry.state = KeyState::Active;
            entry.marked_at = Some(now);
        }
    }

    pub fn tally(&self, now: SystemTime) -> KeyTally {
        let mut inner = self.inner.lock();
        let mut tally = KeyTally::default();
        for entry in inner.keys.iter_mut() {
            if entry.usable_at(now) {
                tally.usable += 1;
            } else if matches!(entry.state, KeyState::Cooling { .. }) {
                tally.cooling += 1;
            } else {
                tally.disabled += 1;
            }
        }
        tally
    }

    pub fn view(&self, now: SystemTime) -> Vec<KeyView> {
        let mut inner = self.inner.lock();
        inner
            .keys
            .iter_mut()
            .map(|entry| {
                entry.usable_at(now);
                KeyView {
                    masked: mask(&entry.secret),
                    state: entry.state.clone(),
                    counters: entry.counters.clone(),
                    marked_at: entry.marked_at,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    fn pool(n: usize) -> KeyPool {
        KeyPool::new(
            &(0..n)
                .map(|i| format!("sk-or-v1-secret-{i:04}"))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn mask_keeps_only_the_tail() {
        assert_eq!(mask("sk-or-v1-abcdef"), "...cdef");
        assert_eq!(mask("abcd"), "...");
        assert_eq!(mask(""), "...");
    }

    #[test]
    fn round_robin_skips_cooling_and_disabled_keys() {
        let p = pool(3);
        let a = p.lease(at(0)).unwrap();
        let b = p.lease(at(0)).unwrap();
        assert_eq!(
            (a.masked(), b.masked()),
            ("...0000".into(), "...0001".into())
        );
        p.record(
            &b,
            KeyEvent::Cooled {
                until: at(100),
                reason: KeyFault::DailyCap,
            },
            at(0),
        );
        p.record(
            &a,
            KeyEvent::Disabled {
                reason: KeyFault::Unauthorized,
            },
            at(0),
        );
        let got: Vec<String> = (0..3).map(|_| p.lease(at(1)).unwrap().masked()).collect();
        assert_eq!(got, ["...0002", "...0002", "...0002"]);
        assert_eq!(
            p.tally(at(1)),
            KeyTally {
                usable: 1,
                cooling: 1,
                disabled: 1
            }
        );
        // Cooling keys return by themselves.
        assert_eq!(
            p.tally(at(100)),
            KeyTally {
                usable: 2,
                cooling: 0,
                disabled: 1
            }
        );
    }

    #[test]
    fn exhaustion_reasons() {
        let p = pool(2);
        let a = p.lease(at(0)).unwrap();
        let b = p.lease(at(0)).unwrap();
        p.record(
            &a,
            KeyEvent::Cooled {
                until: at(50),
                reason: KeyFault::PaymentRequired,
            },
            at(0),
        );
        p.record(
            &b,
            KeyEvent::Cooled {
                until: at(30),
                reason: KeyFault::DailyCap,
            },
            at(0),
        );
        assert_eq!(
            p.lease(at(1)).unwrap_err(),
            NoKey::AllCooling { until: at(30) }
        );
        p.record(
            &a,
            KeyEvent::Disabled {
                reason: KeyFault::Unauthorized,
            },
            at(1),
        );
        p.record(
            &b,
            KeyEvent::Disabled {
                reason: KeyFault::Unauthorized,
            },
            at(1),
        );
        assert_eq!(
            p.lease(at(1)).unwrap_err(),
            NoKey::AllDisabled {
                described: vec!["...0000 (len=20)".into(), "...0001 (len=20)".into()]
            }
        );
        p.reset(at(2));
        assert!(p.lease(at(2)).is_ok());
        assert_eq!(
            KeyPool::new(&[]).lease(at(0)).unwrap_err(),
            NoKey::NoneConfigured
        );
    }
}
