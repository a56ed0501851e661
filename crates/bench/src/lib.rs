//! What the benchmark binaries share: `mp-bench`, `mp-bench-hf`, `mp-bench-oci`, `mp-bench-s3`,
//! `mp-bench-push` and `mp-bench-fleet`.

pub mod hubrepo;
pub mod measure;
pub mod run;
pub mod settle;
