//! The rules the command line reads beside its flags, read the same way: mirror rules
//! (`MODEL_PROVISIONER_MIRRORS`, then `<cache>/mirrors.conf`) and signer rules
//! (`MODEL_PROVISIONER_SIGNERS`, then `<cache>/signers.conf`). A rule that does not parse is a
//! `UsageError`.

use std::path::Path;

use model_provisioner::ProvisionerBuilder;
use model_provisioner::mirror::{MIRRORS_ENV, MIRRORS_FILE, Mirrors};
use model_provisioner::signing::{SIGNERS_ENV, SIGNERS_FILE, SignerRules};
use pyo3::PyResult;

use crate::errors::{self, usage};

/// `builder` with the mirror and signer rules of the environment and of `cache_dir`.
pub(crate) fn apply(builder: ProvisionerBuilder, cache_dir: &Path) -> PyResult<ProvisionerBuilder> {
    let mirror_usage =
        |e: model_provisioner::mirror::ParseMirrorError| usage(&e.to_string(), e.hint());
    let mut mirrors = match std::env::var(MIRRORS_ENV) {
        Ok(value) => Mirrors::from_env_value(&value).map_err(mirror_usage)?,
        Err(_) => Mirrors::new(),
    };
    mirrors.extend(Mirrors::from_file(&cache_dir.join(MIRRORS_FILE)).map_err(errors::to_py)?);
    let signer_usage =
        |e: model_provisioner::signing::ParsePolicyError| usage(&e.to_string(), Some(e.hint()));
    let mut signers = match std::env::var(SIGNERS_ENV) {
        Ok(value) => SignerRules::from_env_value(&value).map_err(signer_usage)?,
        Err(_) => SignerRules::new(),
    };
    signers.extend(SignerRules::from_file(&cache_dir.join(SIGNERS_FILE)).map_err(signer_usage)?);
    Ok(builder.mirrors(mirrors).signers(signers))
}
