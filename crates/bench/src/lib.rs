//! What the benchmark binaries share: `mp-bench`, `mp-bench-hf`, `mp-bench-oci`, `mp-bench-s3`,
//! `mp-bench-push`, `mp-bench-fleet`, `mp-bench-rate` and
//! `mp-bench-signing`.

pub mod hubrepo;
pub mod measure;
pub mod run;
pub mod settle;
