//! The integration tests: one binary, so `support/` (scripted mock upstream, HTTP client,
//! the real gateway on free ports, scenario helpers) compiles once. One module per
//! scenario group.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod support;

mod anthropic;
mod chat_routing;
mod config_check;
mod fallback;
mod key_pool;
mod layers;
mod local_api;
mod model_list;
mod ops_lifecycle;
mod ops_log;
mod ops_metrics;
mod ops_rpm;
mod ops_upgrade;
mod packaging;
mod request_log;
mod responses;
mod sse_incremental;
mod streaming;
mod support_selftest;
