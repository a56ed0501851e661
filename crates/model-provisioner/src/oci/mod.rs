//! `oci://` and `ollama:` references: models in OCI registries.

pub mod auth;
mod unpack;
