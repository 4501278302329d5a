//! The upstream key pool: round-robin among usable keys, with per-key state.
//!
//! Keys never leave this module whole except as the bearer token of an upstream request;
//! everything that is logged or shown uses [`mask`].

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::domain::outcome::KeyFault;
use crate::util::secret::{key_id, mask_key as mask};

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
    /// Errors by class.
    pub daily_cap: u64,
    pub payment_required: u64,
    pub unauthorized: u64,
}

impl KeyCounters {
    fn count_error(&mut self, fault: KeyFault) {
        match fault {
            KeyFault::DailyCap => self.daily_cap += 1,
            KeyFault::PaymentRequired => self.payment_required += 1,
            KeyFault::Unauthorized => self.unauthorized += 1,
        }
    }

    pub fn errors(&self) -> u64 {
        self.daily_cap + self.payment_required + self.unauthorized
    }
}

struct KeyEntry {
    secret: Arc<str>,
    state: KeyState,
    counters: KeyCounters,
    marked_at: Option<SystemTime>,
}

/// A key's state as saved in `state_dir/keys.json`: identified by hash and tail, never
/// by the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedKey {
    pub id: String,
    pub tail: String,
    pub state: KeyState,
    pub counters: KeyCounters,
    pub marked_at: Option<SystemTime>,
}

impl KeyEntry {
    /// Take over a saved record. A key disabled by a 401 comes back `active`: SPEC §5
    /// disables it "until reload", and a restart or upgrade is that reload.
    fn apply(&mut self, saved: SavedKey) {
        self.state = match saved.state {
            KeyState::Disabled { .. } => KeyState::Active,
            other => other,
        };
        self.counters = saved.counters;
        self.marked_at = saved.marked_at;
    }

    fn fresh(secret: &str) -> Self {
        KeyEntry {
            secret: Arc::from(secret),
            state: KeyState::Active,
            counters: KeyCounters::default(),
            marked_at: None,
        }
    }

    /// The state as of `now`: a cooling key whose time has passed counts as active. A read
    /// only; the stored state changes when the key is next leased ([`KeyPool::lease`]).
    fn state_at(&self, now: SystemTime) -> KeyState {
        match self.state {
            KeyState::Cooling { until, .. } if until <= now => KeyState::Active,
            ref state => state.clone(),
        }
    }

    fn usable_at(&self, now: SystemTime) -> bool {
        self.state_at(now) == KeyState::Active
    }

    /// Bring a cooling key whose time has passed back to `active` (an explicit write,
    /// made when the key is leased). Returns whether the state changed.
    fn tick(&mut self, now: SystemTime) -> bool {
        if matches!(self.state, KeyState::Cooling { until, .. } if until <= now) {
            self.state = KeyState::Active;
            self.marked_at = Some(now);
            return true;
        }
        false
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
    /// Saved records that matched no key at start: keys from the URL source arrive only
    /// after its first sync, and must find their state here. Kept (and saved) until the
    /// first sync of every source is over.
    dormant: Vec<SavedKey>,
}

pub struct KeyPool {
    inner: Mutex<PoolInner>,
    /// Signalled on every state change, so the persister writes it out at once.
    pub changed: Notify,
}

impl KeyPool {
    pub fn new(secrets: &[String]) -> Self {
        let keys = secrets.iter().map(|s| KeyEntry::fresh(s)).collect();
        KeyPool {
            inner: Mutex::new(PoolInner {
                keys,
                next: 0,
                dormant: Vec::new(),
            }),
            changed: Notify::new(),
        }
    }

    /// Follow a new key set: keys still present keep their state and counters, new keys
    /// start `active`, keys no longer configured are dropped. Returns whether it changed.
    pub fn set_keys(&self, secrets: &[String]) -> bool {
        let mut inner = self.inner.lock();
        let same = inner.keys.len() == secrets.len()
            && inner
                .keys
                .iter()
                .zip(secrets)
                .all(|(k, s)| &*k.secret == s.as_str());
        if same {
            return false;
        }
        let mut old: Vec<KeyEntry> = std::mem::take(&mut inner.keys);
        let mut dormant = std::mem::take(&mut inner.dormant);
        inner.keys = secrets
            .iter()
            .map(
                |s| match old.iter().position(|k| &*k.secret == s.as_str()) {
                    Some(i) => old.swap_remove(i),
                    None => {
                        let mut entry = KeyEntry::fresh(s);
                        let id = key_id(s);
                        if let Some(i) = dormant.iter().position(|d| d.id == id) {
                            entry.apply(dormant.swap_remove(i));
                        }
                        entry
                    }
                },
            )
            .collect();
        inner.dormant = dormant;
        inner.next = 0;
        drop(inner);
        self.changed.notify_one();
        true
    }

    /// Apply saved state to the configured keys it matches (by hash).
    /// Records matching no configured key wait (dormant) for keys that join later.
    pub fn restore(&self, saved: Vec<SavedKey>) -> usize {
        let mut inner = self.inner.lock();
        let mut restored = 0;
        for record in saved {
            match inner
                .keys
                .iter_mut()
                .find(|k| key_id(&k.secret) == record.id)
            {
                Some(entry) => {
                    entry.apply(record);
                    restored += 1;
                }
                None => inner.dormant.push(record),
            }
        }
        restored
    }

    /// Every source has been read once: saved records still unmatched belong to keys
    /// that are no longer configured.
    pub fn forget_dormant(&self) {
        self.inner.lock().dormant.clear();
    }

    /// The pool's state in its saved form.
    pub fn saved(&self) -> Vec<SavedKey> {
        let inner = self.inner.lock();
        inner
            .keys
            .iter()
            .map(|k| SavedKey {
                id: key_id(&k.secret),
                tail: mask(&k.secret).trim_start_matches('.').to_string(),
                state: k.state.clone(),
                counters: k.counters.clone(),
                marked_at: k.marked_at,
            })
            .chain(inner.dormant.iter().cloned())
            .collect()
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
                let returned = entry.tick(now);
                entry.counters.requests += 1;
                let secret = entry.secret.clone();
                inner.next = (index + 1) % n;
                drop(inner);
                if returned {
                    // A key back from cooling: the persister writes that out.
                    self.changed.notify_one();
                }
                return Ok(KeyLease { index, secret });
            }
        }
        Err(match earliest_return(&inner.keys, now) {
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
        // The pool may have been rebuilt since the lease was taken: match by key.
        let index = match inner.keys.get(lease.index) {
            Some(entry) if entry.secret == lease.secret => lease.index,
            _ => match inner.keys.iter().position(|k| k.secret == lease.secret) {
                Some(i) => i,
                None => return,
            },
        };
        let entry = &mut inner.keys[index];
        match event {
            KeyEvent::Served => {
                entry.counters.successes += 1;
                return;
            }
            KeyEvent::Cooled { until, reason } => {
                entry.counters.count_error(reason);
                entry.state = KeyState::Cooling { until, reason };
            }
            KeyEvent::Disabled { reason } => {
                entry.counters.count_error(reason);
                entry.state = KeyState::Disabled { reason };
            }
        }
        entry.marked_at = Some(now);
        drop(inner);
        self.changed.notify_one();
    }

    /// Every key back to `active`.
    pub fn reset(&self, now: SystemTime) {
        for entry in self.inner.lock().keys.iter_mut() {
            entry.state = KeyState::Active;
            entry.marked_at = Some(now);
        }
        self.changed.notify_one();
    }

    /// When the first key still cooling at `now` comes back, if any is cooling.
    pub fn next_return(&self, now: SystemTime) -> Option<SystemTime> {
        earliest_return(&self.inner.lock().keys, now)
    }

    /// Keys by state as of `now`. A read: it changes nothing (a Prometheus scrape or
    /// `GET /ready` must not alter what `keys.json` holds).
    pub fn tally(&self, now: SystemTime) -> KeyTally {
        let inner = self.inner.lock();
        let mut tally = KeyTally::default();
        for entry in inner.keys.iter() {
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

    /// Every key as of `now`, for `/admin/state`. A read: it changes nothing.
    pub fn view(&self, now: SystemTime) -> Vec<KeyView> {
        let inner = self.inner.lock();
        inner
            .keys
            .iter()
            .map(|entry| KeyView {
                masked: mask(&entry.secret),
                state: entry.state_at(now),
                counters: entry.counters.clone(),
                marked_at: entry.marked_at,
            })
            .collect()
    }
}

/// The earliest end among the keys still cooling at `now`.
fn earliest_return(keys: &[KeyEntry], now: SystemTime) -> Option<SystemTime> {
    keys.iter()
        .filter_map(|k| match k.state_at(now) {
            KeyState::Cooling { until, .. } => Some(until),
            _ => None,
        })
        .min()
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
    fn set_keys_keeps_state_of_kept_keys_and_drops_removed_ones() {
        let p = pool(2);
        let a = p.lease(at(0)).unwrap();
        p.record(
            &a,
            KeyEvent::Cooled {
                until: at(100),
                reason: KeyFault::DailyCap,
            },
            at(0),
        );
        assert!(p.set_keys(&["sk-or-v1-secret-0000".into(), "new-key-9999".into()]));
        assert!(!p.set_keys(&["sk-or-v1-secret-0000".into(), "new-key-9999".into()]));
        let view = p.view(at(1));
        assert_eq!(view.len(), 2);
        assert_eq!(
            (view[0].masked.as_str(), view[0].state.label()),
            ("...0000", "cooling")
        );
        assert_eq!(
            (view[1].masked.as_str(), view[1].state.label()),
            ("...9999", "active")
        );
        assert_eq!(view[0].counters.daily_cap, 1);
    }

    #[test]
    fn saved_state_round_trips_by_hash_only() {
        let p = pool(2);
        let b = {
            p.lease(at(0)).unwrap();
            p.lease(at(0)).unwrap()
        };
        p.record(
            &b,
            KeyEvent::Disabled {
                reason: KeyFault::Unauthorized,
            },
            at(5),
        );
        let saved = p.saved();
        assert_eq!(saved[1].tail, "0001");
        assert_eq!(saved[1].id.len(), 16);
        assert_ne!(saved[0].id, saved[1].id);
        let q = pool(2);
        assert_eq!(q.restore(saved.clone()), 2);
        // Disabled "until reload": a restart is one.
        assert_eq!(q.view(at(6))[1].state, KeyState::Active);
        assert_eq!(q.view(at(6))[1].counters.unauthorized, 1);
        // A record for a key that joins later (URL source) waits for it.
        let r = pool(1);
        assert_eq!(r.restore(saved), 1);
        assert_eq!(r.saved().len(), 2, "the unmatched record is kept");
        r.set_keys(&["sk-or-v1-secret-0000".into(), "sk-or-v1-secret-0001".into()]);
        assert_eq!(r.view(at(6))[1].counters.unauthorized, 1);
        r.forget_dormant();
        assert_eq!(r.saved().len(), 2);
    }

    #[test]
    fn reads_never_change_the_saved_state() {
        let p = pool(2);
        let a = p.lease(at(0)).unwrap();
        p.record(
            &a,
            KeyEvent::Cooled {
                until: at(100),
                reason: KeyFault::DailyCap,
            },
            at(0),
        );
        let before = p.saved();
        // Long after the cooldown ended, reads report the key active...
        assert_eq!(p.tally(at(500)).usable, 2);
        assert_eq!(p.view(at(500))[0].state, KeyState::Active);
        // ...but what is persisted stays as it was until the key is leased again.
        assert_eq!(p.saved(), before);
        // (Round robin: the second key is next, then the first.)
        p.lease(at(500)).unwrap();
        assert_eq!(p.saved()[0], before[0]);
        p.lease(at(500)).unwrap();
        assert_eq!(p.saved()[0].state, KeyState::Active);
        assert_eq!(p.saved()[0].marked_at, Some(at(500)));
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
