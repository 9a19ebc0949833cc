//! The policy model: parse TOML, follow `extends`, merge, validate, diagnose.

pub mod raw;
