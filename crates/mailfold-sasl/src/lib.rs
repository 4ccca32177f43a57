//! # mailfold-sasl: sans-IO SASL client mechanisms
#![forbid(unsafe_code)]

pub mod secret;

pub use secret::Secret;
