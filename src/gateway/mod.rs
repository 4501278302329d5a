//! One request's path, identical for every front: the attempt loop over (model, key)
//! pairs and the stream peek/relay.

pub mod app;
pub mod attempts;
pub mod ctx;
pub mod exchange;
pub mod stream;
