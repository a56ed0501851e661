//! What the user can do about an error, a failed transfer's included.

use std::io;

use super::Error;

impl Error {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Catalog(e) => e.hint(),
            Error::InvalidRef(e) => e.hint().map(str::to_owned),
            Error::NotFound { .. } => Some("check the path; relative paths are taken from the current directory".into()),
            Error::Signature { .. } => Some("the model is not signed as its policy (`--signed-by`, `MODEL_PROVISIONER_SIGNERS` or `<cache>/signers.conf`) asks; `show ID` tells who signed what was checked before".into()),
            Error::ChecksumMismatch { .. } => Some("the bytes were damaged on their way, or the object changed while it was read: run the same command again; a second mismatch means the store's copy is damaged".into()),
            Error::Read { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                Some("make the file readable by this user".into())
            }
            Error::ChangedWhileHashing { .. } => Some("wait until the file is fully written, then run again".into()),
            Error::DigestMismatch { .. } => Some(
                "the file is not the one expected: check the `--digest` value, or fetch the file again".into(),
            ),
            Error::Structure { .. } => Some(
                "the file is damaged or incomplete: fetch it again, or remove it with `model-provisioner rm`".into(),
            ),
            Error::PushDigestRefused { .. } => Some(
                "the model's bytes changed on disk: run `model-provisioner verify` on it, and fetch it again".into(),
            ),
            Error::Unsupported { hint, .. } => Some(hint.clone()),
            Error::PushDestination { .. } => Some(
                "push to a folder: end the destination with `/`, as in `s3://bucket/models/name/`".into(),
            ),
            Error::UnknownId { .. } => Some("`model-provisioner ls` lists the catalog".into()),
            Error::Source { hint, .. } => hint.clone(),
            Error::LockTimeout { .. } => Some(
                "the other process may still be downloading: run again later, or raise `--lock-timeout`".into(),
            ),
            Error::HfToolMissing => Some(
                "install one with `pip install -U huggingface_hub` (it provides `hf`), or use the native client, which needs no tool (`--via native`)".into(),
            ),
            Error::HfDenied { .. } => Some(
                "set `HF_TOKEN` (or log in with `hf auth login`) with access to this repository".into(),
            ),
            Error::HfOffline { .. } => Some("unset `HF_HUB_OFFLINE` (or drop `--offline`) to download it".into()),
            Error::UnsafeArchive { .. } => Some(
                "the artifact is malformed or hostile; nothing from it was published".into(),
            ),
            Error::HfUnknownQuant { repo, available, .. } => Some(match available.first() {
                Some(first) => format!("name one of them, as in `hf:{repo}:{first}`"),
                None => format!("name a file (`hf:{repo}/<file>`) or the whole repository (`hf:{repo}`)"),
            }),
            Error::HfNotFound { .. } => Some("check the organisation, repository, revision and file names".into()),
            Error::OciNotFound { .. } => Some("check the registry, repository, tag and file names".into()),
            Error::OciDenied { registry, looked, .. } => Some(format!(
                "log in with `docker login {registry}`, or set `MODEL_PROVISIONER_REGISTRY_USERNAME` and `MODEL_PROVISIONER_REGISTRY_PASSWORD` ({looked})"
            )),
            Error::OciPushTarget { .. } => Some("push to a tag: `oci://registry/repository:tag`".into()),
            Error::OciUnknownFormat { .. } => Some(
                "model-provisioner lays out ModelPack, Docker model, Ollama, KitOps ModelKit and ORAS artifacts (files named by `org.opencontainers.image.title`)".into(),
            ),
            Error::OciModelKitParent { .. } => Some(
                "a Kitfile's `model.path` may name another ModelKit as `registry/repository:tag` (or `@sha256:…`), pushed to that registry; fix the Kitfile that names it, or push that ModelKit".into(),
            ),
            Error::OciNoPlatform { .. } => Some("name the manifest you want by its digest: `oci://registry/repo@sha256:…`".into()),
            Error::Offline { .. } => Some("drop `--offline` to fetch it".into()),
            Error::MirrorMismatch { .. } => Some(
                "push the model to the mirror again with `model-provisioner mirror`, or pass `--no-mirror` to fetch it from its origin".into(),
            ),
            Error::MirrorRule(e) => e.hint().map(str::to_owned),
            Error::MirrorSource { .. } => Some(
                "a model from a web server is mirrored by a caching server in front of it, and `ensure --mirror 'https://host/=https://cache.internal/host/'`".into(),
            ),
            Error::S3NotFound { .. } => Some("check the bucket, the key (a folder ends with `/`) and the endpoint (`AWS_ENDPOINT_URL`)".into()),
            Error::S3Denied { write: false, .. } => Some(
                "check that the credentials may read it (`s3:GetObject`, and `s3:ListBucket` for a folder); a public bucket takes `--no-sign-request`".into(),
            ),
            Error::S3Denied { write: true, .. } => Some(
                "check that the credentials may write there (`s3:PutObject`, and `s3:AbortMultipartUpload` for files of 64 MiB and more)".into(),
            ),
            Error::S3SignatureMismatch { .. } => Some(
                "check the secret key, this machine's clock, and the region (`AWS_REGION`)".into(),
            ),
            Error::S3Unreachable { .. } => Some("check the endpoint (`AWS_ENDPOINT_URL`, `--endpoint-url`) and that the server is up".into()),
            Error::S3Untrusted { .. } => Some(
                "if the endpoint's certificate comes from a private certificate authority, point `AWS_CA_BUNDLE` (or `ca_bundle` in the AWS profile) at a PEM file holding that authority's certificate".into(),
            ),
            #[cfg(feature = "s3")]
            Error::S3Credentials(e) => Some(e.hint()),
            #[cfg(feature = "http")]
            Error::Transfer(e) => transfer_hint(e),
            _ => None,
        }
    }
}

/// What the user can do about a failed transfer.
#[cfg(feature = "http")]
fn transfer_hint(e: &mp_transfer::Error) -> Option<String> {
    use mp_transfer::Error as E;
    match e {
        E::NoSpace { .. } => Some(
            "free space (`model-provisioner gc` deletes what the catalog no longer needs), or use a cache on a larger file system with `--cache-dir DIR` or `MODEL_PROVISIONER_CACHE`".into(),
        ),
        E::Download { status: Some(401 | 403), .. } => {
            Some("the server refused access: check the URL and its credentials".into())
        }
        E::Download { status: Some(404 | 410), .. } => Some("check the URL".into()),
        E::Download { attempts, .. } if *attempts > 1 => {
            Some("run the same command again: the download resumes where it stopped".into())
        }
        E::CaBundle { .. } => Some("name a PEM file of certificate authorities".into()),
        E::Catalog(e) => e.hint(),
        _ => None,
    }
}
