//! State shared by every request and background task, behind short synchronous locks
//! (never held across an `.await`); every time-dependent call takes `now`.

pub mod client_limits;
pub mod cooldowns;
pub mod key_pool;
