//! The model list snapshot in use, swapped whole by the refresher, with the catalogue of
//! routed models built from it (SPEC §12): readers take an `Arc` and keep a consistent
//! list for the whole request.

use std::sync::Arc;

use parking_lot::RwLock;

use crate::config::ProviderSettings;
use crate::domain::catalogue::{self, Catalogue, ProviderIndex};
use crate::domain::models::Snapshot;

/// A list and what routing makes of it.
pub struct Current {
    pub snapshot: Arc<Snapshot>,
    pub catalogue: Arc<Catalogue>,
}

/// The shared, swappable current snapshot.
pub struct Registry {
    current: RwLock<Current>,
    providers: Vec<ProviderSettings>,
    order: Vec<ProviderIndex>,
}

impl Registry {
    /// `order`: provider indices in `routing.provider_order`.
    pub fn new(
        initial: Snapshot,
        providers: Vec<ProviderSettings>,
        order: Vec<ProviderIndex>,
    ) -> Self {
        let current = Self::build(initial, &providers, &order);
        Registry {
            current: RwLock::new(current),
            providers,
            order,
        }
    }

    fn build(
        snapshot: Snapshot,
        providers: &[ProviderSettings],
        order: &[ProviderIndex],
    ) -> Current {
        let catalogue = catalogue::build(&snapshot.list, providers, order);
        Current {
            snapshot: Arc::new(snapshot),
            catalogue: Arc::new(catalogue),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().snapshot.clone()
    }

    pub fn catalogue(&self) -> Arc<Catalogue> {
        self.current.read().catalogue.clone()
    }

    pub fn replace(&self, next: Snapshot) {
        let current = Self::build(next, &self.providers, &self.order);
        *self.current.write() = current;
    }
}
