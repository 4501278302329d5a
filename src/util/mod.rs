//! Small helpers with no product knowledge: they import nothing else of the crate.

pub mod atomic_file;
pub mod body;
pub mod secret;
pub mod time;
