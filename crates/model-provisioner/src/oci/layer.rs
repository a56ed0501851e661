//! What a layer becomes, shared by the formats that place layers (`manifest.rs`) and the
//! KitOps layout (`modelkit.rs`).

use catalog_core::{Digest, SafeRelPath};
use oci_spec::image::Descriptor;

use super::unpack::Compression;
use crate::error::{Error, Result};

/// How a layer becomes files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// The blob is one file, at this path.
    File(SafeRelPath),
    /// The blob is a tar archive, unpacked under this directory (the model's root if `None`).
    Unpack {
        base: Option<SafeRelPath>,
        compression: Compression,
    },
}

/// Where a layer goes and whether it holds weights; `None` when the format has no place for
/// it (the artifact is then refused as unknown).
pub(crate) type Placed = Option<(Place, bool)>;

/// The layer's digest as ours; only sha256 is accepted, so every byte can be checked.
pub(crate) fn descriptor_digest(d: &Descriptor) -> Result<Digest> {
    let text = d.digest().to_string();
    text.parse().map_err(|_| Error::OciProtocol {
        registry: String::new(),
        reason: format!(
            "the digest `{}` is not a sha256 digest",
            crate::error::printable(&text)
        ),
    })
}
