//! The integration tests of `mp-signing`: bundles made and checked by the reference package
//! (`model_signing`, from `<repo>/.venv`) against ours, both ways, with keys and CA chains made
//! by `openssl`; and bundles made hostile.

mod fixture;
mod interop;
mod refusals;
