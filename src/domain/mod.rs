//! Pure decisions: plain values in, plain values out — no Pingora sessions, no locks, no
//! clock reads (`now` is a parameter). Most unit tests live here.

pub mod chat;
pub mod error;
pub mod models;
pub mod outcome;
pub mod plan;
pub mod route;
pub mod sse;
