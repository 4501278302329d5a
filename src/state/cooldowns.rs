//! Endpoint cooldowns (SPEC §5, §12): which (provider, model) endpoints rest until when
//! after a model fault. Short synchronous locks only.

use std::collections::HashMap;
use std::time::SystemTime;

use parking_lot::Mutex;

use crate::domain::catalogue::Endpoint;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cooldown {
    pub until: SystemTime,
    /// Lifted by the next list refresh (the model did not exist upstream).
    pub until_refresh: bool,
}

#[derive(Default)]
pub struct ModelCooldowns {
    map: Mutex<HashMap<Endpoint, Cooldown>>,
}

impl ModelCooldowns {
    /// The cooldown end of `endpoint` if it is still cooling at `now`.
    pub fn cooling_until(&self, endpoint: &Endpoint, now: SystemTime) -> Option<SystemTime> {
        self.map
            .lock()
            .get(endpoint)
            .map(|c| c.until)
            .filter(|&until| until > now)
    }

    /// Set an endpoint aside. A longer rest already in place is kept.
    pub fn cool(&self, endpoint: &Endpoint, cooldown: Cooldown) {
        let mut map = self.map.lock();
        match map.get_mut(endpoint) {
            Some(existing) if existing.until >= cooldown.until => {}
            Some(existing) => *existing = cooldown,
            None => {
                map.insert(endpoint.clone(), cooldown);
            }
        }
    }

    /// After a refresh: drop expired entries, entries a refresh lifts, and endpoints
    /// that left the catalogue (`keep` says which are still routed).
    pub fn on_refresh(&self, now: SystemTime, keep: impl Fn(&Endpoint) -> bool) {
        self.map
            .lock()
            .retain(|id, c| c.until > now && !c.until_refresh && keep(id));
    }

    pub fn clear(&self) {
        self.map.lock().clear();
    }

    /// Endpoints still cooling at `now`, for `/admin/state` and `/ready`.
    pub fn active(&self, now: SystemTime) -> Vec<(Endpoint, Cooldown)> {
        let mut out: Vec<(Endpoint, Cooldown)> = self
            .map
            .lock()
            .iter()
            .filter(|(_, c)| c.until > now)
            .map(|(id, c)| (id.clone(), *c))
            .collect();
        out.sort_by(|a, b| {
            (a.0.provider, &a.0.provider_model).cmp(&(b.0.provider, &b.0.provider_model))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn e(id: &str) -> Endpoint {
        Endpoint {
            provider: 0,
            provider_model: id.into(),
        }
    }

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn longer_rest_wins_and_expiry_is_respected() {
        let c = ModelCooldowns::default();
        c.cool(
            &e("a"),
            Cooldown {
                until: at(100),
                until_refresh: false,
            },
        );
        c.cool(
            &e("a"),
            Cooldown {
                until: at(50),
                until_refresh: false,
            },
        );
        assert_eq!(c.cooling_until(&e("a"), at(10)), Some(at(100)));
        assert_eq!(c.cooling_until(&e("a"), at(100)), None);
        assert_eq!(c.cooling_until(&e("b"), at(10)), None);
    }

    #[test]
    fn refresh_lifts_not_found_and_unlisted_models() {
        let c = ModelCooldowns::default();
        c.cool(
            &e("gone"),
            Cooldown {
                until: at(100),
                until_refresh: false,
            },
        );
        c.cool(
            &e("missing"),
            Cooldown {
                until: at(100),
                until_refresh: true,
            },
        );
        c.cool(
            &e("busy"),
            Cooldown {
                until: at(100),
                until_refresh: false,
            },
        );
        c.on_refresh(at(10), |ep| *ep.provider_model != *"gone");
        let left: Vec<String> = c
            .active(at(10))
            .into_iter()
            .map(|(ep, _)| ep.provider_model.to_string())
            .collect();
        assert_eq!(left, ["busy"]);
    }
}
