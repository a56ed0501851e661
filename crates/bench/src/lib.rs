//! What the benchmark binaries share: `mp-bench`, `mp-bench-hf`, `mp-bench-oci` and
//! `mp-bench-s3`.

pub mod measure;
pub mod run;
pub mod settle;
