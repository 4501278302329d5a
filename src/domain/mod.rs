//! Pure decisions: plain values in, plain values out — no Pingora sessions, no locks, no
//! clock reads (`now` is a parameter). Most unit tests live here.

pub mod catalogue;
pub mod chat;
pub mod error;
pub mod key_info;
pub mod models;
pub mod outcome;
pub mod plan;
pub mod provider;
pub mod reset_hints;
pub mod route;
pub mod sse;
