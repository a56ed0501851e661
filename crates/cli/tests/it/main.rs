//! Integration tests of the `model-provisioner` binary: each test runs the real executable
//! against a temporary cache.

mod azure;
mod bad_input;
mod broken_pipe;
mod cache_dir;
mod exit_codes;
mod faults;
mod fixture;
mod fleet;
mod gcs;
mod happy;
mod help;
mod hf;
mod hostile;
mod http;
mod hub_nginx;
mod list;
mod mirror;
mod model_info;
mod modelscope;
mod oci;
mod progress;
mod push;
mod quant;
mod rate;
mod reuse;
mod s3;
mod s3_tls;
mod shell;
mod signing;
mod snapshots;
mod space;
mod verify;
