//! A copy of a hub's model read back from a mirror, a registry's or a bucket's: checked
//! against what was asked ([`check_hf_copy`]), then listed as the hub's ([`as_hf_listing`]).

use catalog_core::{Digest, printable};

use super::HfMirror;
use super::hf_layout::is_commit;
use super::rules::read_hub;
use crate::error::{Error, Result};

/// Checks what a mirror states about its copy of an `hf:` model against what was asked: the
/// copy's id names the same repository (and file), its filters are the ones asked for, its
/// commit is a commit (the pinned one, if any), and its files are those its provenance lists,
/// with the same sha256s. Returns the commit and, by path, the Hub's `ETag` of each file.
///
/// `files` are the mirror's files (path, sha256); for a reference to one file, its one file
/// stands for the reference's path whatever its name.
pub(crate) fn check_hf_copy(
    id: &str,
    at: &str,
    mirror: &HfMirror,
    name: Option<&str>,
    provenance: &catalog_core::Provenance,
    files: &[(String, Digest)],
) -> Result<(String, std::collections::HashMap<String, Option<String>>)> {
    let refuse = |reason: String| Error::MirrorMismatch {
        id: id.to_owned(),
        mirror: at.to_owned(),
        reason,
    };
    let hf = &mirror.hf;
    let named = name.and_then(|n| read_hub(n, mirror.hub.scheme));
    match &named {
        Some(h)
            if h.org.eq_ignore_ascii_case(&hf.org)
                && h.repo.eq_ignore_ascii_case(&hf.repo)
                && h.path == hf.path
                && h.quant == hf.quant => {}
        _ => {
            return Err(refuse(format!(
                "it holds `{}`",
                printable(name.unwrap_or("an unnamed model"))
            )));
        }
    }
    let commit = provenance
        .resolved_revision
        .as_deref()
        .filter(|c| is_commit(c))
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| refuse("it records no commit".to_owned()))?;
    if let Some(pinned) = mirror.pinned_commit()
        && pinned != commit
    {
        return Err(refuse(format!(
            "it holds commit `{commit}`, not `{pinned}`"
        )));
    }
    if provenance.include != mirror.include || provenance.exclude != mirror.exclude {
        return Err(refuse(
            "it was selected with other `--include`/`--exclude` patterns".to_owned(),
        ));
    }
    let recorded: std::collections::HashMap<&str, &catalog_core::FileRecord> = provenance
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    let mut etags = std::collections::HashMap::new();
    let pairs: Vec<(&str, &Digest)> = match &hf.path {
        Some(path) => match files {
            [(_, digest)] => vec![(path.as_str(), digest)],
            _ => return Err(refuse(format!("it holds {} files for one", files.len()))),
        },
        None => files.iter().map(|(p, d)| (p.as_str(), d)).collect(),
    };
    if pairs.len() != recorded.len() {
        return Err(refuse(format!(
            "it holds {} files, and its provenance lists {}",
            pairs.len(),
            recorded.len()
        )));
    }
    for (path, digest) in pairs {
        let Some(record) = recorded.get(path) else {
            return Err(refuse(format!(
                "`{}` is not in its provenance",
                printable(path)
            )));
        };
        if record.digest.as_ref() != Some(digest) {
            return Err(refuse(format!(
                "`{}` is `{digest}`, and its provenance says `{}`",
                printable(path),
                record
                    .digest
                    .as_ref()
                    .map_or_else(|| "nothing".to_owned(), ToString::to_string)
            )));
        }
        etags.insert(path.to_owned(), record.etag.clone());
    }
    Ok((commit, etags))
}

/// Makes a mirror's listing of its copy of a hub's model the listing of the hub's model,
/// published in the entry's directory, at `commit`, with the reference's
/// filters, `origin` naming the mirror.
pub(crate) fn as_hf_listing(
    listing: &mut crate::pipeline::Listing<'_>,
    req: &crate::request::FetchRequest<'_>,
    mirror: &HfMirror,
    (commit, select): (String, Option<catalog_core::SafeRelPath>),
    origin: String,
) {
    listing.label = if mirror.hub == super::HF_HUB {
        mirror.hf.repo_id()
    } else {
        format!("{}:{}", mirror.hub.scheme, mirror.hf.repo_id())
    };
    listing.dest = crate::hf::repo_entry_dir(
        req.layout,
        mirror.hub.scheme,
        &mirror.hf,
        req.id,
        &commit,
        (&mirror.include, &mirror.exclude),
    );
    listing.select = select;
    listing.revision = crate::pipeline::Revision::Named(commit);
    listing.origin = Some(origin);
    listing.include.clone_from(&mirror.include);
    listing.exclude.clone_from(&mirror.exclude);
}
