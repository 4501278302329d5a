//! The HTTP edge: Pingora's `ProxyHttp` hooks (`proxy`), one handler per route
//! (`handlers`), the gateway's own endpoint bodies (`local`), client/admin auth, reading
//! bodies, and the answer writers (`answer`, `respond`).

pub mod answer;
pub mod auth;
pub mod body;
pub mod handlers;
pub mod local;
pub mod proxy;
pub mod respond;
