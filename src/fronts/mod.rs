//! The API shapes clients speak. Each front only translates in and out; routing,
//! fallback and streaming are the gateway's.

pub mod anthropic;
