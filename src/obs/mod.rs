//! Observability: the `request_done` log line and Prometheus metrics. Reads a finished
//! request's record and the shared state; never writes either.

pub mod metrics;
pub mod request_log;
