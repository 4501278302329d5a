//! Model cooldowns: which models rest until when. Short synchronous locks only.

use std::collections::HashMap;
use std::time::SystemTime;

use parking_lot::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cooldown {
    pub until: SystemTime,
    /// Lifted by the next list refresh (the model did not exist upstream).
    pub until_refresh: bool,
}

#[derive(Default)]
pub struct ModelCooldowns {
    map: Mutex<HashMap<String, Cooldown>>,
}

impl ModelCooldowns {
    /// The cooldown end of `model` if it is still cooling at `now`.
    pub fn cooling_until(&self, model: &str, now: SystemTime) -> Option<SystemTime> {
        self.map
            .lock()
            .get(model)
            .map(|c| c.until)
            .filter(|&until| until > now)
    }

    /// Set a model aside. A longer rest already in place is kept.
    pub fn cool(&self, model: &str, cooldown: Cooldown) {
        let mut map = self.map.lock();
        match map.get_mut(model) {
            Some(existing) if existing.until >= cooldown.until => {}
            Some(existing) => *existing = cooldown,
            None => {
                map.insert(model.to_string(), cooldown);
            }
        }
    }

    /// After a refresh: drop expired entries, entries a refresh lifts, and models that
    /// left the list (`keep` says which ids are still listed).
    pub fn on_refresh(&self, now: SystemTime, keep: impl Fn(&str) -> bool) {
        self.map
            .lock()
            .retain(|id, c| c.until > now && !c.until_refresh && keep(id));
    }

    pub fn clear(&self) {
        self.map.lock().clear();
    }

    /// Models still cooling at `now`, for `/admin/state` and `/ready`.
    pub fn active(&self, now: SystemTime) -> Vec<(String, Cooldown)> {
        let mut out: Vec<(String, Cooldown)> = self
            .map
            .lock()
            .iter()
            .filter(|(_, c)| c.until > now)
            .map(|(id, c)| (id.clone(), *c))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn longer_rest_wins_and_expiry_is_respected() {
        let c = ModelCooldowns::default();
        c.cool(
            "a",
            Cooldown {
                until: at(100),
                until_refresh: false,
            },
        );
        c.cool(
            "a",
            Cooldown {
                until: at(50),
                until_refresh: false,
            },
        );
        assert_eq!(c.cooling_until("a", at(10)), Some(at(100)));
        assert_eq!(c.cooling_until("a", at(100)), None);
        assert_eq!(c.cooling_until("b", at(10)), None);
    }

    #[test]
    fn refresh_lifts_not_found_and_unlisted_models() {
        let c = ModelCooldowns::default();
        c.cool(
            "gone",
            Cooldown {
                until: at(100),
                until_refresh: false,
            },
        );
        c.cool(
            "missing",
            Cooldown {
                until: at(100),
                until_refresh: true,
            },
        );
        c.cool(
            "busy",
            Cooldown {
                until: at(100),
                until_refresh: false,
            },
        );
        c.on_refresh(at(10), |id| id != "gone");
        let left: Vec<String> = c.active(at(10)).into_iter().map(|(id, _)| id).collect();
        assert_eq!(left, ["busy"]);
    }
}
