//! Outbound HTTP: Pingora's connector, one exchange at a time, transport failures typed.

pub mod client;
pub mod provider;
