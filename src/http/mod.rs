//! The HTTP edge: Pingora's `ProxyHttp` hooks, client/admin auth, the gateway's own
//! endpoints and the answer writers.

pub mod auth;
pub mod local;
pub mod proxy;
pub mod respond;
