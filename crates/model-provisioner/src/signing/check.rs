//! The check of one bundle against the model the catalog records, and its outcome in words.

use catalog_core::{
    CacheLayout, CatalogEntry, Digest, SafeRelPath, SignatureCheck, SignatureOutcome, now_ms,
};
use mp_signing::{Bundle, Material, Refused, SignedBy};

use super::{SIGNATURE_FILE, SignerPolicy};
use crate::error::{Error, Result};
use crate::model_files::model_files;
use mp_progress::Reporter;

/// Checks `bundles` (at least one) in turn against the model `entry` records: the first that
/// satisfies `policy` (with none: whose files hold) is taken, else the first one's record;
/// with a policy none satisfies, the refusal names each. Returns the bundle taken.
pub(super) fn check_any<'b>(
    layout: &CacheLayout,
    entry: &CatalogEntry,
    reporter: &dyn Reporter,
    policy: Option<&SignerPolicy>,
    bundles: &[&'b [u8]],
) -> (&'b [u8], Result<Option<SignatureCheck>>) {
    let mut first = None;
    let mut refusals = Vec::new();
    for bytes in bundles {
        let checked = check_bundle(layout, entry, reporter, policy, bytes);
        match &checked {
            Ok(Some(c)) if c.outcome != SignatureOutcome::Failed => return (bytes, checked),
            Ok(_) => {
                first.get_or_insert((*bytes, checked));
            }
            Err(Error::Signature { reason, .. }) => refusals.push(reason.clone()),
            Err(_) => return (bytes, checked),
        }
    }
    if let Some(first) = first {
        return first;
    }
    let reason = match refusals.as_slice() {
        [one] => one.clone(),
        all => format!(
            "none of its {} signatures will do: {}",
            all.len(),
            all.join("; ")
        ),
    };
    let id = entry.id.clone();
    (bundles[0], Err(Error::Signature { id, reason }))
}

/// Checks the bundle `bytes` against the model `entry` records, as [`Signing::check`].
pub(super) fn check_bundle(
    layout: &CacheLayout,
    entry: &CatalogEntry,
    reporter: &dyn Reporter,
    policy: Option<&SignerPolicy>,
    bytes: &[u8],
) -> Result<Option<SignatureCheck>> {
    let refuse = |reason: String| Error::Signature {
        id: entry.id.clone(),
        reason,
    };
    let bundle = match Bundle::read(bytes) {
        Ok(bundle) => bundle,
        Err(e) => {
            let reason = format!("its `{SIGNATURE_FILE}` cannot be read: {e}");
            return match policy {
                Some(_) => Err(refuse(reason)),
                None => Ok(Some(record(
                    SignatureOutcome::Failed,
                    None,
                    None,
                    None,
                    reason,
                ))),
            };
        }
    };
    let mut files: Vec<(SafeRelPath, Digest)> = model_files(layout, entry, reporter)?
        .files
        .into_iter()
        .map(|f| (f.rel, f.digest))
        .collect();
    let statement_digest = Some(bundle.statement().model_digest().clone());
    // A model of one file is one file of the signed repository: it is checked alone, under
    // the path the statement gives it.
    let one_file = entry.local_path.is_file();
    if one_file
        && let [(name, digest)] = files.as_mut_slice()
        && let Some(path) = path_in_statement(&bundle, name, digest)
    {
        *name = path;
    }
    let verified = |p: &SignerPolicy| match files.as_slice() {
        [(path, digest)] if one_file => mp_signing::verify_file(&bundle, &p.policy, path, digest),
        _ => mp_signing::verify(&bundle, &p.policy, &files),
    };
    match policy {
        Some(p) => match verified(p) {
            Ok(signed) => Ok(Some(record(
                SignatureOutcome::Verified,
                Some(signer(&signed.signed_by)),
                Some(p.as_str()),
                statement_digest,
                String::new(),
            ))),
            Err(refused) => Err(refuse(refusal(&refused, p.as_str()))),
        },
        None => {
            let claimed = claimed_signer(bundle.material());
            let held = match files.as_slice() {
                [(path, digest)] if one_file => file_holds(&bundle, path, digest),
                _ => files_hold(&bundle, &files),
            };
            Ok(Some(match held {
                Ok(()) => record(
                    SignatureOutcome::Unchecked,
                    claimed,
                    None,
                    statement_digest,
                    "every file is as signed; no policy names who must have signed".into(),
                ),
                Err(reason) => {
                    tracing::warn!(id = %entry.id, "{reason}");
                    record(
                        SignatureOutcome::Failed,
                        claimed,
                        None,
                        statement_digest,
                        reason,
                    )
                }
            }))
        }
    }
}

/// A check that failed for `reason`, to record.
pub(crate) fn failed(reason: &str) -> SignatureCheck {
    record(
        SignatureOutcome::Failed,
        None,
        None,
        None,
        reason.to_owned(),
    )
}

fn record(
    outcome: SignatureOutcome,
    signer: Option<String>,
    policy: Option<&str>,
    statement_digest: Option<Digest>,
    detail: String,
) -> SignatureCheck {
    SignatureCheck {
        outcome,
        signer,
        policy: policy.map(str::to_owned),
        statement_digest,
        detail: (!detail.is_empty()).then_some(detail),
        checked_ms: now_ms(),
    }
}

/// Who a policy established signed.
fn signer(signed_by: &SignedBy) -> String {
    match signed_by {
        SignedBy::Key { fingerprint } => format!("key {fingerprint}"),
        SignedBy::Certificate { subject, alt_names } if alt_names.is_empty() => {
            format!("certificate {subject}")
        }
        SignedBy::Certificate { subject, alt_names } => {
            format!("certificate {subject} ({})", alt_names.join(", "))
        }
    }
}

/// Who a bundle says signed, unchecked.
fn claimed_signer(material: &Material) -> Option<String> {
    match material {
        Material::KeyHint(Some(hint)) => Some(format!("key {hint} (as the bundle names it)")),
        Material::KeyHint(None) => None,
        Material::Chain(_) => Some("a certificate chain (not checked)".into()),
        Material::Keyless { .. } => Some("a keyless Sigstore certificate (not checked)".into()),
    }
}

/// Whether `files` are exactly the files the statement signs, each with its signed digest (the
/// signature itself not checked).
fn files_hold(bundle: &Bundle, files: &[(SafeRelPath, Digest)]) -> std::result::Result<(), String> {
    let statement = bundle.statement();
    let mut seen = 0;
    for (path, digest) in files {
        if statement.is_ignored(path) {
            continue;
        }
        match statement.file(path) {
            Some(signed) if signed == digest => seen += 1,
            Some(_) => return Err(format!("`{path}` is not the file that was signed")),
            None => return Err(format!("`{path}` is in the model but not signed")),
        }
    }
    if seen != statement.files().len() {
        let missing = statement
            .files()
            .keys()
            .find(|p| !files.iter().any(|(f, _)| f == *p))
            .map_or_else(String::new, |p| format!("`{p}` "));
        return Err(format!("{missing}is signed but not in the model"));
    }
    Ok(())
}

/// The path the statement signs the one file `name` (with `digest`) under: `name` itself, or
/// the one signed path that ends with `/name` and has that digest (a file of a repository's
/// sub-folder, ensured alone).
fn path_in_statement(bundle: &Bundle, name: &SafeRelPath, digest: &Digest) -> Option<SafeRelPath> {
    let files = bundle.statement().files();
    if files.contains_key(name) {
        return None;
    }
    let suffix = format!("/{name}");
    let mut found = files
        .iter()
        .filter(|(path, signed)| path.as_str().ends_with(&suffix) && *signed == digest);
    match (found.next(), found.next()) {
        (Some((path, _)), None) => Some(path.clone()),
        _ => None,
    }
}

/// Whether the one file `path` is signed with `digest` (the signature itself not checked).
fn file_holds(
    bundle: &Bundle,
    path: &SafeRelPath,
    digest: &Digest,
) -> std::result::Result<(), String> {
    match bundle.statement().file(path) {
        Some(signed) if signed == digest => Ok(()),
        Some(_) => Err(format!("`{path}` is not the file that was signed")),
        None => Err(format!("`{path}` is not signed")),
    }
}

/// A refusal in words, naming the policy.
fn refusal(refused: &Refused, policy: &str) -> String {
    format!("its signature does not satisfy `{policy}`: {refused}")
}
