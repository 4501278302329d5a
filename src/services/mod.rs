//! Long-running services (model list refresh, key sync, graceful listeners) and the
//! wiring of the whole server.

pub mod graceful;
pub mod keys;
pub mod quota;
pub mod refresh;
pub mod server;
