//! What the benchmark binaries share: `mp-bench`, `mp-bench-hf`, `mp-bench-oci`, `mp-bench-s3`
//! and `mp-bench-push`.

pub mod measure;
pub mod run;
pub mod settle;
