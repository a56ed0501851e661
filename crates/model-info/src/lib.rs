//! What a model is, read from its files' headers, and whether those files are whole.
//!
//! [`inspect()`] reads, for a file or every file of a folder: a GGUF file's metadata and tensor
//! table ([`gguf`]), a safetensors file's JSON header ([`safetensors`]), a Hub-style folder's
//! `config.json` and `model.safetensors.index.json` ([`hf_config`]); never tensor data. It is
//! cheap (headers and file sizes), so the provisioner runs it on every fetch and every
//! `verify`.
//!
//! A file *claims* a format by its bytes (the GGUF magic; a safetensors header length that
//! fits the file and a header that starts with `{`). One that claims a format and breaks it
//! (tensor data past its end, overlapping tensors) makes the structure `fail`, as does a split
//! set or an index with a missing or an extra file. A file *named* like a format whose bytes
//! are something else (an HTML page saved as `model.gguf`), or a format version this build
//! does not read, is only a warning: nothing is refused for it unless a digest says so.
//!
//! Only local files are read: no network, no processes, no async. What is found is a
//! [`catalog_core::ModelInfo`]; recording it is the caller's business.
#![deny(missing_docs)]

mod inspect;
mod misnamed;
mod problem;

pub mod gguf;
pub mod hf_config;
pub mod safetensors;

pub use inspect::{inspect, inspect_selection};
pub use misnamed::looks_like;
pub use problem::Problem;
