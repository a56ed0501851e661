//! Mirrors: rules that send a reference to a copy of its model before its origin, and the
//! layout an `hf:` model has in a registry or a bucket (`docs/fleet.md` is the user's guide).
//!
//! A rule is `SOURCE=MIRROR`: a prefix of references and the prefix of their mirror. Rules are
//! tried in order (the command line's, then `MODEL_PROVISIONER_MIRRORS`, then
//! `<cache>/mirrors.conf`); every rule that matches gives one place to try.
//!
//! - `hf:` sources map structurally: `hf:org/repo@<commit>` under `hf:=oci://reg/hf` is
//!   `oci://reg/hf/org/repo:<commit>`, and a revision name (`main`) is a tag of its own; under
//!   `hf:=s3://bucket/hf` it is the folder `s3://bucket/hf/org/repo/<commit>/`, and a revision
//!   name is the object `s3://bucket/hf/org/repo/refs/<name>` holding the commit. Names are
//!   lowercased, and a name no registry takes is spelled with a hash; a reference to one file
//!   or a quantisation, or with `--include`/`--exclude`, adds `-<hash of them>` to the tag or
//!   folder.
//! - Every other source maps by text: the prefix is replaced. `ollama:` references are first
//!   written as `oci://<ollama registry>/<namespace>/<name>:<tag>`, so that a rule for
//!   `oci://registry.ollama.ai` applies to them.
//!
//! A source matches at a boundary only: `oci://127.0.0.1:5000` matches
//! `oci://127.0.0.1:5000/repo:tag` and not `oci://127.0.0.1:50001/repo:tag`.
//!
//! | module | its one job |
//! |---|---|
//! | `rules` | [`MirrorRule`] and [`Mirrors`]: rules parsed, read from their places, matched |
//! | `hf_layout` | [`HfLocation`] and [`HfMirror`]: where a mirror keeps an `hf:` model |
//! | `hf_copy` | a copy read back from a mirror: checked against what was asked, and listed as the Hub's |
//! | `hf_read` | that copy found and listed through the mirror's own source, above every source |
//! | `skip` | when a mirror is passed over for the next place to try |

#[cfg(feature = "http")]
mod hf_copy;
mod hf_layout;
#[cfg(feature = "http")]
mod hf_read;
mod rules;
mod skip;
#[cfg(test)]
mod testing;

pub use self::hf_layout::{HfLocation, HfMirror};
#[cfg(feature = "http")]
pub(crate) use self::hf_read::resolve_hf_copy;
pub use self::rules::{
    HF_HUB, Hub, MIRRORS_ENV, MIRRORS_FILE, MirrorContext, MirrorRule, MirrorShape, Mirrors,
    ParseMirrorError, Route, RuleOrigin, Target,
};
pub(crate) use self::skip::skip_reason;
