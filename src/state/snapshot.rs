//! The model list snapshot in use, swapped whole by the refresher: readers take an
//! `Arc` and keep a consistent list for the whole request.

use std::sync::Arc;

use parking_lot::RwLock;

use crate::domain::models::Snapshot;

/// The shared, swappable current snapshot.
pub struct Registry {
    current: RwLock<Arc<Snapshot>>,
}

impl Registry {
    pub fn new(initial: Snapshot) -> Self {
        Registry {
            current: RwLock::new(Arc::new(initial)),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().clone()
    }

    pub fn replace(&self, next: Snapshot) {
        *self.current.write() = Arc::new(next);
    }
}
