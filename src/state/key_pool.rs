//! One provider's key pool: round-robin among usable keys, with per-key state, per-
//! endpoint rests and the local quota counts of SPEC §12.
//!
//! A key can be unusable three ways: its own state (cooling after a daily cap or a 402,
//! disabled after a 401 — for every model), a *rest* for one endpoint (a provider whose
//! free limits are per key and model answered 429), or its limiter at a known `rpm` or
//! `rpd` ([`Usage`]). All three are skipped without an upstream call.
//!
//! Keys never leave this module whole except as the bearer token of an upstream request;
//! everything that is logged or shown uses [`mask`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::config::RateLimits;
use crate::domain::outcome::KeyFault;
use crate::domain::provider::LimitScope;
use crate::state::quota::{LimiterKey, Usage, UsageView};
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
    pub rate_limited: u64,
}

impl KeyCounters {
    fn count_error(&mut self, fault: KeyFault) {
        match fault {
            KeyFault::DailyCap => self.daily_cap += 1,
            KeyFault::PaymentRequired => self.payment_required += 1,
            KeyFault::Unauthorized => self.unauthorized += 1,
            KeyFault::RateLimited => self.rate_limited += 1,
        }
    }

    pub fn errors(&self) -> u64 {
        self.daily_cap + self.payment_required + self.unauthorized + self.rate_limited
    }
}

/// A key resting for one endpoint only (SPEC §12 "Faults at other providers").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rest {
    pub until: SystemTime,
    pub reason: KeyFault,
}

struct KeyEntry {
    secret: Arc<str>,
    /// `key_id(secret)`, computed once.
    id: Arc<str>,
    state: KeyState,
    /// By the provider's model id.
    rests: HashMap<Arc<str>, Rest>,
    /// The OpenRouter account (`creator_user_id`) `/key` named, once known.
    account: Option<Arc<str>>,
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
    /// Endpoint rests still running, by model id.
    pub rests: Vec<(String, Rest)>,
    pub account: Option<String>,
}

/// One limiter's day count as saved in `keys.json` (minute windows are not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedUsage {
    pub limiter: LimiterKey,
    pub day: u64,
    pub used: u64,
    pub learned_rpd: Option<u64>,
}

/// A pool's saved form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedPool {
    pub keys: Vec<SavedKey>,
    pub usage: Vec<SavedUsage>,
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
        self.rests = saved
            .rests
            .into_iter()
            .map(|(model, rest)| (Arc::from(model), rest))
            .collect();
        self.account = saved.account.map(Arc::from);
    }

    fn fresh(secret: &str) -> Self {
        KeyEntry {
            secret: Arc::from(secret),
            id: Arc::from(key_id(secret)),
            state: KeyState::Active,
            rests: HashMap::new(),
            account: None,
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

    fn rest_for(&self, model: &str, now: SystemTime) -> Option<Rest> {
        self.rests.get(model).copied().filter(|r| r.until > now)
    }

    /// Bring a cooling key whose time has passed back to `active`, and drop ended rests
    /// (an explicit write, made when the key is leased). Returns whether the state changed.
    fn tick(&mut self, now: SystemTime) -> bool {
        let rests_before = self.rests.len();
        self.rests.retain(|_, r| r.until > now);
        let mut changed = self.rests.len() != rests_before;
        if matches!(self.state, KeyState::Cooling { until, .. } if until <= now) {
            self.state = KeyState::Active;
            self.marked_at = Some(now);
            changed = true;
        }
        changed
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
    /// Every usable-in-principle key is cooling, resting or at a known limit; the
    /// earliest can serve again at `until`.
    AllCooling { until: SystemTime },
}

/// What happened to a key during one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyEvent {
    /// The attempt reached the model (whatever the model then did).
    Served,
    Cooled {
        until: SystemTime,
        reason: KeyFault,
    },
    /// Rest for this one model (the provider's id) only.
    Rested {
        model: Arc<str>,
        until: SystemTime,
        reason: KeyFault,
    },
    Disabled {
        reason: KeyFault,
    },
}

/// Where a limit shown by `/admin/state` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSource {
    Config,
    Learned,
}

/// One limiter of a key as `/admin/state` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterView {
    /// `None` for a limiter across models.
    pub model: Option<Arc<str>>,
    pub used: UsageView,
    pub rpm: Option<u64>,
    pub rpd: Option<u64>,
    pub rpd_source: Option<LimitSource>,
}

impl LimiterView {
    /// Requests left today, when a daily limit is known.
    pub fn remaining_today(&self) -> Option<u64> {
        self.rpd
            .map(|limit| limit.saturating_sub(self.used.day_used))
    }
}

/// One key as shown by `/admin/state`.
#[derive(Debug, Clone)]
pub struct KeyView {
    pub id: Arc<str>,
    pub masked: String,
    pub state: KeyState,
    pub counters: KeyCounters,
    pub marked_at: Option<SystemTime>,
    pub rests: Vec<(Arc<str>, Rest)>,
    /// One entry for an account-wide limiter, one per model for per-model limits.
    pub limiters: Vec<LimiterView>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyTally {
    pub usable: usize,
    pub cooling: usize,
    pub disabled: usize,
}

/// How a pool counts its keys' requests.
#[derive(Debug, Clone)]
pub struct PoolPolicy {
    pub scope: LimitScope,
    /// The provider's limits (per account, or per key and model).
    pub limits: RateLimits,
    /// Per-model limits replacing `limits`, by the provider's model id.
    pub model_limits: HashMap<Arc<str>, RateLimits>,
    /// The provider's model ids, for per-model views.
    pub models: Vec<Arc<str>>,
}

impl Default for PoolPolicy {
    /// No local limits, counted per account (OpenRouter's shape).
    fn default() -> Self {
        PoolPolicy {
            scope: LimitScope::Account,
            limits: RateLimits::default(),
            model_limits: HashMap::new(),
            models: Vec::new(),
        }
    }
}

impl PoolPolicy {
    fn limits_for(&self, model: &str) -> RateLimits {
        self.model_limits.get(model).copied().unwrap_or(self.limits)
    }

    fn limiter(&self, entry: &KeyEntry, model: &str) -> LimiterKey {
        match self.scope {
            LimitScope::Account => match &entry.account {
                Some(account) => LimiterKey::Account(account.clone()),
                None => LimiterKey::Key {
                    id: entry.id.clone(),
                    model: None,
                },
            },
            LimitScope::KeyAndModel => LimiterKey::Key {
                id: entry.id.clone(),
                model: Some(Arc::from(model)),
            },
        }
    }
}

struct PoolInner {
    keys: Vec<KeyEntry>,
    next: usize,
    /// Saved records that matched no key at start: keys from the URL source arrive only
    /// after its first sync, and must find their state here. Kept (and saved) until the
    /// first sync of every source is over.
    dormant: Vec<SavedKey>,
    usage: HashMap<LimiterKey, Usage>,
}

/// Whether a key (or none) could serve one model now.
enum Pick {
    Key(usize),
    NotBefore(SystemTime),
    Never,
}

impl PoolInner {
    /// The next key, round-robin, that can serve `model` at `now`, else when one can.
    fn pick(&self, policy: &PoolPolicy, model: &str, now: SystemTime) -> Pick {
        let n = self.keys.len();
        let limits = policy.limits_for(model);
        let mut earliest: Option<SystemTime> = None;
        let mut later =
            |t: SystemTime| earliest = Some(earliest.map_or(t, |e: SystemTime| e.min(t)));
        for offset in 0..n {
            let index = (self.next + offset) % n;
            let entry = &self.keys[index];
            match entry.state_at(now) {
                KeyState::Disabled { .. } => continue,
                KeyState::Cooling { until, .. } => {
                    later(until);
                    continue;
                }
                KeyState::Active => {}
            }
            if let Some(rest) = entry.rest_for(model, now) {
                later(rest.until);
                continue;
            }
            let usage = self.usage.get(&policy.limiter(entry, model));
            match usage.map_or(Ok(()), |u| u.admits(limits, now)) {
                Ok(()) => return Pick::Key(index),
                Err(free_at) => later(free_at),
            }
        }
        match earliest {
            Some(t) => Pick::NotBefore(t),
            None => Pick::Never,
        }
    }

    fn no_key(&self, pick: Pick) -> NoKey {
        match pick {
            _ if self.keys.is_empty() => NoKey::NoneConfigured,
            Pick::NotBefore(until) => NoKey::AllCooling { until },
            Pick::Key(_) | Pick::Never => NoKey::AllDisabled {
                described: described(&self.keys),
            },
        }
    }
}

pub struct KeyPool {
    inner: Mutex<PoolInner>,
    policy: PoolPolicy,
    /// Signalled on every state change, so the persister writes it out at once (one
    /// notifier may be shared by every pool).
    pub changed: Arc<Notify>,
}

impl KeyPool {
    /// A pool with no local limits, counted per account (OpenRouter's defaults).
    pub fn new(secrets: &[String]) -> Self {
        Self::with_policy(secrets, PoolPolicy::default())
    }

    pub fn with_policy(secrets: &[String], policy: PoolPolicy) -> Self {
        let keys = secrets.iter().map(|s| KeyEntry::fresh(s)).collect();
        KeyPool {
            inner: Mutex::new(PoolInner {
                keys,
                next: 0,
                dormant: Vec::new(),
                usage: HashMap::new(),
            }),
            policy,
            changed: Arc::new(Notify::new()),
        }
    }

    /// Signal state changes on `changed` (shared with other pools).
    pub fn notifying(mut self, changed: Arc<Notify>) -> Self {
        self.changed = changed;
        self
    }

    pub fn policy(&self) -> &PoolPolicy {
        &self.policy
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
                        if let Some(i) = dormant.iter().position(|d| *d.id == *entry.id) {
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
    /// Records matching no configured key wait (dormant) for keys that join later; day
    /// counts of an earlier UTC day are dropped as they are read.
    pub fn restore(&self, saved: SavedPool, now: SystemTime) -> usize {
        let mut inner = self.inner.lock();
        let mut restored = 0;
        for record in saved.keys {
            match inner.keys.iter_mut().find(|k| *k.id == *record.id) {
                Some(entry) => {
                    entry.apply(record);
                    restored += 1;
                }
                None => inner.dormant.push(record),
            }
        }
        for record in saved.usage {
            let usage = Usage::restored(record.day, record.used, record.learned_rpd);
            if usage.day_used(now) > 0 || usage.learned_rpd.is_some() {
                inner.usage.insert(record.limiter, usage);
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
    pub fn saved(&self) -> SavedPool {
        let inner = self.inner.lock();
        let keys = inner
            .keys
            .iter()
            .map(|k| {
                let mut rests: Vec<(String, Rest)> =
                    k.rests.iter().map(|(m, r)| (m.to_string(), *r)).collect();
                rests.sort_by(|a, b| a.0.cmp(&b.0));
                SavedKey {
                    id: k.id.to_string(),
                    tail: mask(&k.secret).trim_start_matches('.').to_string(),
                    state: k.state.clone(),
                    counters: k.counters.clone(),
                    marked_at: k.marked_at,
                    rests,
                    account: k.account.as_deref().map(str::to_string),
                }
            })
            .chain(inner.dormant.iter().cloned())
            .collect();
        let mut usage: Vec<SavedUsage> = inner
            .usage
            .iter()
            .map(|(limiter, u)| {
                let (day, used) = u.day_count();
                SavedUsage {
                    limiter: limiter.clone(),
                    day,
                    used,
                    learned_rpd: u.learned_rpd,
                }
            })
            .collect();
        usage.sort_by(|a, b| a.limiter.cmp(&b.limiter));
        SavedPool { keys, usage }
    }

    /// Whether some key could serve `model` now (`Ok`), or why not. A read: it changes
    /// nothing.
    pub fn availability(&self, model: &str, now: SystemTime) -> Result<(), NoKey> {
        let inner = self.inner.lock();
        match inner.pick(&self.policy, model, now) {
            Pick::Key(_) => Ok(()),
            other => Err(inner.no_key(other)),
        }
    }

    /// The next key that can serve `model`, round-robin; its request is counted against
    /// its limiter (the attempt is sent right after).
    pub fn lease(&self, model: &str, now: SystemTime) -> Result<KeyLease, NoKey> {
        let mut inner = self.inner.lock();
        let index = match inner.pick(&self.policy, model, now) {
            Pick::Key(index) => index,
            other => return Err(inner.no_key(other)),
        };
        let limiter = self.policy.limiter(&inner.keys[index], model);
        inner.usage.entry(limiter).or_default().count(now);
        let n = inner.keys.len();
        inner.next = (index + 1) % n;
        let entry = &mut inner.keys[index];
        let returned = entry.tick(now);
        entry.counters.requests += 1;
        let secret = entry.secret.clone();
        drop(inner);
        if returned {
            // A key back from cooling: the persister writes that out.
            self.changed.notify_one();
        }
        Ok(KeyLease { index, secret })
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
            KeyEvent::Rested {
                model,
                until,
                reason,
            } => {
                entry.counters.count_error(reason);
                let rest = entry.rests.entry(model).or_insert(Rest { until, reason });
                // A longer rest already in place is kept.
                if rest.until < until {
                    *rest = Rest { until, reason };
                }
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

    /// When the pool has keys and every one is disabled: them, as `...abcd (len=N)`.
    pub fn all_disabled(&self) -> Option<Vec<String>> {
        let inner = self.inner.lock();
        let all = !inner.keys.is_empty()
            && inner
                .keys
                .iter()
                .all(|k| matches!(k.state, KeyState::Disabled { .. }));
        all.then(|| described(&inner.keys))
    }

    /// The secrets, for the background `/key` lookups (never logged).
    pub fn secrets(&self) -> Vec<Arc<str>> {
        self.inner
            .lock()
            .keys
            .iter()
            .map(|k| k.secret.clone())
            .collect()
    }

    /// Take over what OpenRouter's `/key` said about `secret`: its account (keys of one
    /// account then share one count) and the account's daily limit and use today.
    pub fn learn(
        &self,
        secret: &str,
        account: Option<&str>,
        daily: Option<(u64, u64)>,
        now: SystemTime,
    ) {
        let mut inner = self.inner.lock();
        let Some(index) = inner.keys.iter().position(|k| &*k.secret == secret) else {
            return;
        };
        let before = self.policy.limiter(&inner.keys[index], "");
        if let Some(account) = account {
            inner.keys[index].account = Some(Arc::from(account));
        }
        let after = self.policy.limiter(&inner.keys[index], "");
        if before != after {
            // The key's own count so far joins the account's.
            if let Some(own) = inner.usage.get(&before).cloned() {
                inner
                    .usage
                    .entry(after.clone())
                    .or_default()
                    .merge(&own, now);
            }
        }
        if let Some((limit, used)) = daily {
            inner
                .usage
                .entry(after)
                .or_default()
                .learn(limit, used, now);
        }
        drop(inner);
        self.changed.notify_one();
    }

    /// Every key back to `active`, every rest lifted.
    pub fn reset(&self, now: SystemTime) {
        for entry in self.inner.lock().keys.iter_mut() {
            entry.state = KeyState::Active;
            entry.rests.clear();
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
        let policy = &self.policy;
        inner
            .keys
            .iter()
            .map(|entry| {
                let limiter_view = |model: Option<&Arc<str>>| {
                    let name = model.map_or("", |m| &**m);
                    let limits = policy.limits_for(name);
                    let usage = inner.usage.get(&policy.limiter(entry, name));
                    let empty = Usage::default();
                    let usage = usage.unwrap_or(&empty);
                    LimiterView {
                        model: model.cloned(),
                        used: usage.view(now),
                        rpm: (limits.rpm > 0).then_some(u64::from(limits.rpm)),
                        rpd: usage.daily_limit(limits),
                        rpd_source: match (limits.rpd, usage.learned_rpd) {
                            (0, None) => None,
                            (0, Some(_)) => Some(LimitSource::Learned),
                            _ => Some(LimitSource::Config),
                        },
                    }
                };
                let limiters = match policy.scope {
                    LimitScope::Account => vec![limiter_view(None)],
                    LimitScope::KeyAndModel => policy
                        .models
                        .iter()
                        .map(|m| limiter_view(Some(m)))
                        .collect(),
                };
                let mut rests: Vec<(Arc<str>, Rest)> = entry
                    .rests
                    .iter()
                    .filter(|(_, r)| r.until > now)
                    .map(|(m, r)| (m.clone(), *r))
                    .collect();
                rests.sort_by(|a, b| a.0.cmp(&b.0));
                KeyView {
                    id: entry.id.clone(),
                    masked: mask(&entry.secret),
                    state: entry.state_at(now),
                    counters: entry.counters.clone(),
                    marked_at: entry.marked_at,
                    rests,
                    limiters,
                }
            })
            .collect()
    }
}

/// Keys as an error message names them: `...abcd (len=N)`.
fn described(keys: &[KeyEntry]) -> Vec<String> {
    keys.iter()
        .map(|k| format!("{} (len={})", mask(&k.secret), k.secret.chars().count()))
        .collect()
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

    /// A model id; the default pool counts per account, so it does not matter which.
    const M: &str = "m";

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
        let a = p.lease(M, at(0)).unwrap();
        let b = p.lease(M, at(0)).unwrap();
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
        let got: Vec<String> = (0..3)
            .map(|_| p.lease(M, at(1)).unwrap().masked())
            .collect();
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
        let a = p.lease(M, at(0)).unwrap();
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
            p.lease(M, at(0)).unwrap();
            p.lease(M, at(0)).unwrap()
        };
        p.record(
            &b,
            KeyEvent::Disabled {
                reason: KeyFault::Unauthorized,
            },
            at(5),
        );
        let saved = p.saved();
        assert_eq!(saved.keys[1].tail, "0001");
        assert_eq!(saved.keys[1].id.len(), 16);
        assert_ne!(saved.keys[0].id, saved.keys[1].id);
        let q = pool(2);
        assert_eq!(q.restore(saved.clone(), at(6)), 2);
        // Disabled "until reload": a restart is one.
        assert_eq!(q.view(at(6))[1].state, KeyState::Active);
        assert_eq!(q.view(at(6))[1].counters.unauthorized, 1);
        // A record for a key that joins later (URL source) waits for it.
        let r = pool(1);
        assert_eq!(r.restore(saved, at(6)), 1);
        assert_eq!(r.saved().keys.len(), 2, "the unmatched record is kept");
        r.set_keys(&["sk-or-v1-secret-0000".into(), "sk-or-v1-secret-0001".into()]);
        assert_eq!(r.view(at(6))[1].counters.unauthorized, 1);
        r.forget_dormant();
        assert_eq!(r.saved().keys.len(), 2);
    }

    #[test]
    fn reads_never_change_the_saved_state() {
        let p = pool(2);
        let a = p.lease(M, at(0)).unwrap();
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
        p.lease(M, at(500)).unwrap();
        assert_eq!(p.saved().keys[0], before.keys[0]);
        p.lease(M, at(500)).unwrap();
        assert_eq!(p.saved().keys[0].state, KeyState::Active);
        assert_eq!(p.saved().keys[0].marked_at, Some(at(500)));
    }

    #[test]
    fn exhaustion_reasons() {
        let p = pool(2);
        let a = p.lease(M, at(0)).unwrap();
        let b = p.lease(M, at(0)).unwrap();
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
            p.lease(M, at(1)).unwrap_err(),
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
            p.lease(M, at(1)).unwrap_err(),
            NoKey::AllDisabled {
                described: vec!["...0000 (len=20)".into(), "...0001 (len=20)".into()]
            }
        );
        p.reset(at(2));
        assert!(p.lease(M, at(2)).is_ok());
        assert_eq!(
            KeyPool::new(&[]).lease(M, at(0)).unwrap_err(),
            NoKey::NoneConfigured
        );
    }

    fn per_model_pool(n: usize, limits: RateLimits) -> KeyPool {
        KeyPool::with_policy(
            &(0..n)
                .map(|i| format!("gsk-secret-{i:04}"))
                .collect::<Vec<_>>(),
            PoolPolicy {
                scope: LimitScope::KeyAndModel,
                limits,
                model_limits: HashMap::from([(Arc::from("big"), RateLimits { rpm: 0, rpd: 1 })]),
                models: vec![Arc::from("small"), Arc::from("big")],
            },
        )
    }

    #[test]
    fn a_rest_for_one_model_leaves_the_key_usable_for_others() {
        let p = per_model_pool(1, RateLimits::default());
        let a = p.lease("small", at(0)).unwrap();
        p.record(
            &a,
            KeyEvent::Rested {
                model: Arc::from("small"),
                until: at(60),
                reason: KeyFault::RateLimited,
            },
            at(0),
        );
        assert_eq!(
            p.lease("small", at(1)).unwrap_err(),
            NoKey::AllCooling { until: at(60) }
        );
        assert!(p.availability("small", at(1)).is_err());
        assert!(p.lease("big", at(1)).is_ok(), "the same key's other model");
        assert!(p.lease("small", at(60)).is_ok(), "the rest ends by itself");
        let saved = p.saved();
        assert!(
            saved.keys[0].rests.is_empty(),
            "an ended rest is dropped on lease"
        );
    }

    #[test]
    fn known_limits_skip_keys_without_a_call() {
        let p = per_model_pool(2, RateLimits { rpm: 1, rpd: 0 });
        // rpm 1 per (key, model): two keys give two requests a minute.
        assert!(p.lease("small", at(0)).is_ok());
        assert!(p.lease("small", at(1)).is_ok());
        assert_eq!(
            p.lease("small", at(2)).unwrap_err(),
            NoKey::AllCooling { until: at(60) }
        );
        // A model entry's own limits replace the provider's: big has rpd 1, no rpm.
        assert!(p.lease("big", at(2)).is_ok());
        assert!(p.lease("big", at(3)).is_ok());
        assert!(matches!(
            p.lease("big", at(4)),
            Err(NoKey::AllCooling { .. })
        ));
        let view = p.view(at(4));
        let big = &view[0].limiters[1];
        assert_eq!(
            (big.used.day_used, big.rpd, big.remaining_today()),
            (1, Some(1), Some(0))
        );
        assert_eq!(big.rpd_source, Some(LimitSource::Config));
    }

    #[test]
    fn day_counts_survive_a_restore_and_drop_on_a_new_day() {
        let p = per_model_pool(1, RateLimits { rpm: 0, rpd: 2 });
        p.lease("small", at(0)).unwrap();
        p.lease("small", at(1)).unwrap();
        let saved = p.saved();
        let q = per_model_pool(1, RateLimits { rpm: 0, rpd: 2 });
        q.restore(saved.clone(), at(2));
        assert!(q.lease("small", at(2)).is_err(), "2 of 2 used today");
        let r = per_model_pool(1, RateLimits { rpm: 0, rpd: 2 });
        r.restore(saved, at(2 * 86_400));
        assert!(r.lease("small", at(2 * 86_400)).is_ok(), "another day");
    }

    #[test]
    fn keys_of_one_account_share_the_learned_count() {
        let p = pool(2);
        let [a, b] = [0, 1].map(|i| format!("sk-or-v1-secret-{i:04}"));
        p.learn(&a, Some("user_1"), Some((3, 1)), at(0));
        p.learn(&b, Some("user_1"), Some((3, 1)), at(0));
        p.lease(M, at(1)).unwrap();
        p.lease(M, at(1)).unwrap();
        // 1 learned + 2 sent = 3 of 3: neither key of the account may send.
        assert!(matches!(p.lease(M, at(2)), Err(NoKey::AllCooling { .. })));
        let view = p.view(at(2));
        assert_eq!(view[0].limiters[0].rpd_source, Some(LimitSource::Learned));
        assert_eq!(view[1].limiters[0].remaining_today(), Some(0));
        // remaining 0 straight from /key: nothing is sent.
        let q = pool(1);
        q.learn("sk-or-v1-secret-0000", None, Some((50, 50)), at(0));
        assert!(q.availability(M, at(0)).is_err());
    }
}
