//! Live endpoint health (SPEC §12 "Order", "Health"): measured, not guessed.
//!
//! Why: a provider that fails most calls, or answers only after half a minute, should not
//! be tried first by every request. Each endpoint keeps a window of its last
//! `routing.health_window` attempts. Once the window holds at least 5 samples it is judged
//! after every attempt: a success rate under 50 % (over all samples), or else a median time
//! to first byte over `routing.slow_ttfb_secs` (over the successful samples), demotes it
//! for `routing.demotion_secs` — it stays in the plan, behind every healthy candidate.
//! While demoted, attempts are still recorded but do not extend the demotion; the first
//! attempt at or after its end clears the window and the endpoint is judged afresh.
//!
//! Generic over the key (an endpoint id elsewhere); one short lock, never held across an
//! `.await`; `now` is always a parameter. Reads (`demoted`, `view`) never mutate.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

/// Fewer samples than this are never judged.
const MIN_JUDGED_SAMPLES: usize = 5;

/// The operator's health settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Samples kept per endpoint (`routing.health_window`). A window under 5 never judges.
    pub window: usize,
    /// Median time to first byte above which an endpoint is demoted.
    pub slow_ttfb: Duration,
    /// How long a demotion lasts.
    pub demotion: Duration,
}

/// One attempt's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// The attempt succeeded; `ttfb` is its time to first byte.
    Success { ttfb: Duration },
    /// Any failure (status, transport, broken answer).
    Failure,
}

/// Why an endpoint was demoted, with the numbers that decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemotionReason {
    LowSuccess { successes: usize, attempts: usize },
    SlowTtfb { p50: Duration },
}

impl std::fmt::Display for DemotionReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DemotionReason::LowSuccess {
                successes,
                attempts,
            } => write!(f, "{successes}/{attempts} attempts succeeded"),
            DemotionReason::SlowTtfb { p50 } => {
                write!(f, "median time to first byte {:.1} s", p50.as_secs_f64())
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demotion {
    pub until: SystemTime,
    pub reason: DemotionReason,
}

/// One endpoint's health as `/admin/state` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthView {
    /// Samples in the window (0 once a demotion has ended: the window counts as cleared).
    pub attempts: usize,
    /// Successes / attempts, when there is at least one attempt.
    pub success_rate: Option<f64>,
    /// Median time to first byte of the successful attempts, when there is one.
    pub ttfb_p50: Option<Duration>,
    /// The demotion in force at `now`.
    pub demoted: Option<Demotion>,
}

#[derive(Debug, Default)]
struct Window {
    samples: VecDeque<Sample>,
    demotion: Option<Demotion>,
}

impl Window {
    /// The demotion's end has come: the window is (or, for reads, counts as) cleared.
    fn expired(&self, now: SystemTime) -> bool {
        self.demotion.is_some_and(|d| d.until <= now)
    }

    fn active_demotion(&self, now: SystemTime) -> Option<Demotion> {
        self.demotion.filter(|d| d.until > now)
    }

    fn successes(&self) -> usize {
        self.samples
            .iter()
            .filter(|s| matches!(s, Sample::Success { .. }))
            .count()
    }

    fn ttfb_p50(&self) -> Option<Duration> {
        let mut ttfbs: Vec<Duration> = self
            .samples
            .iter()
            .filter_map(|s| match s {
                Sample::Success { ttfb } => Some(*ttfb),
                Sample::Failure => None,
            })
            .collect();
        median(&mut ttfbs)
    }

    fn judge(&self, policy: &HealthPolicy) -> Option<DemotionReason> {
        let attempts = self.samples.len();
        if attempts < MIN_JUDGED_SAMPLES {
            return None;
        }
        let successes = self.successes();
        // successes / attempts < 50 %, in integers.
        if successes * 2 < attempts {
            return Some(DemotionReason::LowSuccess {
                successes,
                attempts,
            });
        }
        self.ttfb_p50()
            .filter(|p50| *p50 > policy.slow_ttfb)
            .map(|p50| DemotionReason::SlowTtfb { p50 })
    }
}

/// The median; for an even count, the mean of the two middle values.
fn median(values: &mut [Duration]) -> Option<Duration> {
    values.sort_unstable();
    let mid = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => values.get(mid).copied(),
        _ => {
            let (low, high) = (*values.get(mid - 1)?, *values.get(mid)?);
            Some(low + (high - low) / 2)
        }
    }
}

/// Health windows of every endpoint seen.
pub struct Health<K> {
    policy: HealthPolicy,
    map: Mutex<HashMap<K, Window>>,
}

impl<K: Hash + Eq + Clone> Health<K> {
    pub fn new(policy: HealthPolicy) -> Self {
        Health {
            policy,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Record one attempt of `key` and judge its window afresh unless it is demoted.
    pub fn record(&self, key: &K, sample: Sample, now: SystemTime) {
        let mut map = self.map.lock();
        let window = match map.get_mut(key) {
            Some(window) => window,
            None => map.entry(key.clone()).or_default(),
        };
        if window.expired(now) {
            *window = Window::default();
        }
        window.samples.push_back(sample);
        while window.samples.len() > self.policy.window {
            window.samples.pop_front();
        }
        if window.demotion.is_none() {
            window.demotion = window.judge(&self.policy).map(|reason| Demotion {
                until: now.checked_add(self.policy.demotion).unwrap_or(now),
                reason,
            });
        }
    }

    /// The demotion of `key` in force at `now`, if any.
    pub fn demoted(&self, key: &K, now: SystemTime) -> Option<Demotion> {
        self.map.lock().get(key)?.active_demotion(now)
    }

    /// `key`'s window as `/admin/state` shows it at `now`.
    pub fn view(&self, key: &K, now: SystemTime) -> HealthView {
        let map = self.map.lock();
        let Some(window) = map.get(key).filter(|w| !w.expired(now)) else {
            return HealthView {
                attempts: 0,
                success_rate: None,
                ttfb_p50: None,
                demoted: None,
            };
        };
        let attempts = window.samples.len();
        HealthView {
            attempts,
            success_rate: (attempts > 0).then(|| window.successes() as f64 / attempts as f64),
            ttfb_p50: window.ttfb_p50(),
            demoted: window.active_demotion(now),
        }
    }

    /// Forget every window (config reload, admin reset).
    pub fn clear(&self) {
        self.map.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const POLICY: HealthPolicy = HealthPolicy {
        window: 20,
        slow_ttfb: Duration::from_secs(20),
        demotion: Duration::from_secs(120),
    };

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_780_000_000 + secs)
    }

    fn ok(ms: u64) -> Sample {
        Sample::Success {
            ttfb: Duration::from_millis(ms),
        }
    }

    const F: Sample = Sample::Failure;

    /// Feed `samples` at one second apart from t(0); return what `demoted` says after.
    fn run(samples: &[Sample]) -> (Health<&'static str>, Option<DemotionReason>) {
        let health = Health::new(POLICY);
        for (i, s) in samples.iter().enumerate() {
            health.record(&"groq/llama", *s, t(i as u64));
        }
        let reason = health
            .demoted(&"groq/llama", t(samples.len() as u64))
            .map(|d| d.reason);
        (health, reason)
    }

    #[test]
    fn judgement_table() {
        let mut fifteen_of_twenty = vec![F; 15];
        fifteen_of_twenty.extend([ok(300); 5]);
        let cases: Vec<(&str, Vec<Sample>, Option<DemotionReason>)> = vec![
            (
                "15 failures of 20",
                fifteen_of_twenty,
                // Judged first at the 5th sample: 0/5.
                Some(DemotionReason::LowSuccess {
                    successes: 0,
                    attempts: 5,
                }),
            ),
            ("4 failures: never judged", vec![F; 4], None),
            (
                "5 failures: judged",
                vec![F; 5],
                Some(DemotionReason::LowSuccess {
                    successes: 0,
                    attempts: 5,
                }),
            ),
            (
                "2 of 5 succeed",
                vec![ok(100), F, ok(100), F, F],
                Some(DemotionReason::LowSuccess {
                    successes: 2,
                    attempts: 5,
                }),
            ),
            (
                "exactly half is not under 50 %",
                vec![ok(100), F, ok(100), F, ok(100), F],
                None,
            ),
            (
                "slow successes",
                vec![ok(24_100); 5],
                Some(DemotionReason::SlowTtfb {
                    p50: Duration::from_millis(24_100),
                }),
            ),
            (
                "median, not mean: one very slow answer",
                vec![ok(500), ok(600), ok(90_000), ok(700), ok(800)],
                None,
            ),
            (
                "median of an even count is the mean of the middle two",
                vec![ok(10_000), ok(19_000), ok(23_000), ok(40_000), F, F],
                Some(DemotionReason::SlowTtfb {
                    p50: Duration::from_millis(21_000),
                }),
            ),
            ("exactly slow_ttfb is not slow", vec![ok(20_000); 5], None),
            ("healthy", vec![ok(800); 20], None),
        ];
        for (label, samples, want) in cases {
            assert_eq!(run(&samples).1, want, "{label}");
        }
    }

    #[test]
    fn demotion_lasts_and_is_not_extended() {
        let (health, _) = run(&[F; 5]);
        let key = "groq/llama";
        let first = health.demoted(&key, t(5)).unwrap();
        assert_eq!(first.until, t(4) + POLICY.demotion);
        // Still recorded while demoted, but the demotion is not extended.
        health.record(&key, F, t(60));
        assert_eq!(health.demoted(&key, t(61)), Some(first));
        assert_eq!(health.view(&key, t(61)).attempts, 6);
        assert_eq!(health.demoted(&key, first.until), None);
    }

    #[test]
    fn expiry_clears_and_rejudges() {
        let (health, _) = run(&[F; 5]);
        let key = "groq/llama";
        let until = health.demoted(&key, t(5)).unwrap().until;
        // After the end the window counts as cleared even before the next record.
        let cleared = health.view(&key, until);
        assert_eq!(
            cleared,
            HealthView {
                attempts: 0,
                success_rate: None,
                ttfb_p50: None,
                demoted: None
            }
        );
        // The first record at the end clears the window, then pushes.
        health.record(&key, F, until);
        assert_eq!(health.view(&key, until).attempts, 1);
        for i in 1..4 {
            health.record(&key, F, until + Duration::from_secs(i));
        }
        assert_eq!(health.demoted(&key, until + Duration::from_secs(4)), None);
        // The fifth fresh sample is judged again: a new demotion from that time.
        let fifth = until + Duration::from_secs(4);
        health.record(&key, ok(100), fifth);
        assert_eq!(
            health.demoted(&key, fifth),
            Some(Demotion {
                until: fifth + POLICY.demotion,
                reason: DemotionReason::LowSuccess {
                    successes: 1,
                    attempts: 5
                }
            })
        );
    }

    #[test]
    fn reads_never_mutate() {
        let (health, _) = run(&[F; 5]);
        let key = "groq/llama";
        let until = health.demoted(&key, t(5)).unwrap().until;
        let late = until + Duration::from_secs(3600);
        assert_eq!(health.demoted(&key, late), None);
        assert_eq!(health.view(&key, late).attempts, 0);
        // Reading at a late time cleared nothing: an earlier read sees the same state.
        let view = health.view(&key, t(5));
        assert_eq!(view.attempts, 5);
        assert_eq!(view.success_rate, Some(0.0));
        assert!(view.demoted.is_some());
        // Reading an unknown key creates nothing.
        assert_eq!(health.view(&"cerebras/qwen", t(5)).attempts, 0);
        assert!(health.map.lock().get(&"cerebras/qwen").is_none());
    }

    #[test]
    fn window_keeps_only_the_last_n() {
        let policy = HealthPolicy {
            window: 6,
            ..POLICY
        };
        let health = Health::new(policy);
        let key = 7u32;
        // Alternating keeps the rate at 50 %: never demoted while the window fills.
        for i in 0..10 {
            let s = if i % 2 == 0 { ok(100) } else { F };
            health.record(&key, s, t(i));
        }
        let view = health.view(&key, t(10));
        assert_eq!(view.attempts, 6);
        assert_eq!(view.success_rate, Some(0.5));
        assert_eq!(view.demoted, None);
        // Four fast successes push out old samples: 5 of the last 6 succeed.
        for i in 10..14 {
            health.record(&key, ok(200), t(i));
        }
        let view = health.view(&key, t(14));
        assert_eq!(view.attempts, 6);
        assert_eq!(view.success_rate, Some(5.0 / 6.0));
        assert_eq!(view.ttfb_p50, Some(Duration::from_millis(200)));
        // Another key is independent; clear forgets everything.
        health.record(&8, F, t(14));
        health.clear();
        assert_eq!(health.view(&key, t(14)).attempts, 0);
        assert_eq!(health.view(&8, t(14)).attempts, 0);
    }

    #[test]
    fn reasons_display() {
        let cases = [
            (
                DemotionReason::LowSuccess {
                    successes: 3,
                    attempts: 20,
                },
                "3/20 attempts succeeded",
            ),
            (
                DemotionReason::SlowTtfb {
                    p50: Duration::from_millis(24_100),
                },
                "median time to first byte 24.1 s",
            ),
        ];
        for (reason, want) in cases {
            assert_eq!(reason.to_string(), want);
        }
    }
}
