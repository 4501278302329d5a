//! free-llm-proxy: one OpenAI-compatible endpoint backed by the best currently working
//! free LLM. See README.md ("Code map") and spec/SPEC.md.
//!
//! The modules are layers; a lower one never imports a higher one (checked by
//! `tests/it/layers.rs`):
//!
//! ```text
//! util, config  →  domain  →  state, upstream  →  gateway  →  fronts  →  obs  →  http  →  services
//! ```
//!
//! - [`util`], [`config`]: helpers with no product knowledge; the typed, validated config.
//! - [`domain`]: pure decisions — model list, chat body, plan, outcome classification, SSE.
//! - [`state`]: shared state behind short synchronous locks, `now` passed in.
//! - [`upstream`]: outbound HTTP on Pingora's connector.
//! - [`gateway`]: one request's path, identical for every front (attempt loop, streams).
//! - [`fronts`]: what differs between the APIs clients speak (OpenAI, Anthropic).
//! - [`obs`]: the request log line and Prometheus metrics.
//! - [`http`]: the Pingora `ProxyHttp` shell and the gateway's own endpoints.
//! - [`services`]: background services and the wiring of the server.

// Tests may unwrap (Cargo.toml denies it everywhere else).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cli;
pub mod config;
pub mod domain;
pub mod fronts;
pub mod gateway;
pub mod http;
pub mod obs;
pub mod services;
pub mod state;
pub mod upstream;
pub mod util;
