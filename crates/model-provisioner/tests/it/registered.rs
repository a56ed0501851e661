//! A source registered from outside the crate: this module (its kind, its source) and one call
//! of `ProvisionerBuilder::source` are all it takes for its references to be ensured through
//! the one pipeline, verified and recorded like any other.

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use catalog_core::{CatalogStore, Digest, ModelRef, Outcome, SafeRelPath};
use model_provisioner::pipeline::{ListedFile, Listing, Revision, Source, Stated};
use model_provisioner::{
    Error, FetchRequest, ModelProvisioner, SourceContext, SourceFailure, SourceKind,
};
use mp_transfer::{Checksum, ChecksumKind, Engine, UrlSource};
use test_support::{Nginx, random_bytes as bytes};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// `shelf:NAME`: the models of a web server's shelf, each a few files under `files/NAME/`,
/// whose sha256s the shelf states (as a hub's listing would).
#[derive(Debug)]
struct ShelfKind {
    base: String,
    models: Arc<BTreeMap<String, Vec<ShelvedFile>>>,
}

/// A file of a shelf's model: its name, and what the shelf states for its bytes.
type ShelvedFile = (String, Stated, Option<Checksum>);

impl SourceKind for ShelfKind {
    fn schemes(&self) -> &'static [&'static str] {
        &["shelf"]
    }

    fn build(
        &self,
        context: &SourceContext<'_>,
    ) -> model_provisioner::Result<Box<dyn Source + Send + Sync>> {
        Ok(Box::new(Shelf {
            base: self.base.clone(),
            models: Arc::clone(&self.models),
            engine: context.engine.clone(),
            parallel: context.parallel_files,
        }))
    }
}

struct Shelf {
    base: String,
    models: Arc<BTreeMap<String, Vec<ShelvedFile>>>,
    engine: Engine,
    parallel: usize,
}

impl Source for Shelf {
    fn name(&self) -> &'static str {
        "shelf"
    }

    fn resolve<'s>(&'s self, req: &FetchRequest<'_>) -> model_provisioner::Result<Listing<'s>> {
        let ModelRef::Other(reference) = req.reference else {
            unreachable!("only `shelf:` references are routed here")
        };
        let name = reference.rest();
        let files = self.models.get(name).ok_or_else(|| Error::Source {
            failure: SourceFailure::NotFound,
            message: format!("the shelf at `{}` has no model `{name}`", self.base),
            hint: Some("the shelf's models are listed at its root".to_owned()),
        })?;
        let files = files
            .iter()
            .map(|(file, stated, checksum)| {
                let url = format!("{}/{name}/{file}", self.base);
                Ok(ListedFile {
                    path: file.parse::<SafeRelPath>()?,
                    size: None,
                    stated: stated.clone(),
                    checksum: *checksum,
                    etag: None,
                    media_type: None,
                    local: None,
                    source: Some(Box::new(UrlSource::new(
                        url.parse().expect("a URL"),
                        url,
                        reqwest::header::HeaderMap::new(),
                    ))),
                    unpack: None,
                })
            })
            .collect::<model_provisioner::Result<Vec<_>>>()?;
        Ok(Listing {
            label: name.to_owned(),
            dest: req
                .layout
                .models_dir()
                .join("shelf")
                .join(&Digest::sha256_of(req.id.as_bytes()).value()[..16]),
            select: None,
            fetcher: "shelf",
            fetcher_version: "1".to_owned(),
            revision: Revision::None,
            origin: None,
            include: Vec::new(),
            exclude: Vec::new(),
            parallel: self.parallel,
            engine: &self.engine,
            files,
            claim: None,
        })
    }
}

/// A shelf of one model, `tiny`, of two files on nginx; `lie` makes the shelf state a digest
/// its bytes do not have for the second.
fn shelf(nginx: &Nginx, lie: bool) -> Result<ShelfKind, std::io::Error> {
    let weights = bytes(300_000, 31);
    let config = b"{\"arch\": \"tiny\"}".to_vec();
    nginx.put("tiny/weights.bin", &weights)?;
    nginx.put("tiny/config.json", &config)?;
    let stated = if lie {
        Digest::sha256_of(b"something else")
    } else {
        Digest::sha256_of(&config)
    };
    let files = vec![
        (
            "weights.bin".to_owned(),
            Stated::Sha256(Digest::sha256_of(&weights)),
            None,
        ),
        ("config.json".to_owned(), Stated::Sha256(stated), None),
    ];
    Ok(ShelfKind {
        base: nginx.url("files"),
        models: Arc::new(BTreeMap::from([("tiny".to_owned(), files)])),
    })
}

#[test]
fn a_registered_source_is_ensured_through_the_pipeline_verified_and_reused() -> TestResult {
    let nginx = Nginx::start();
    let cache = tempfile::tempdir()?;
    let p = ModelProvisioner::builder(cache.path())
        .source(shelf(&nginx, false)?)
        .build()?;
    let reference = p.parse_ref("shelf:tiny")?;
    let ensured = p.ensure(&reference, None)?;
    assert!(!ensured.cached);
    assert_eq!(ensured.resolved.id, "shelf:tiny");
    let dir = &ensured.resolved.local_path;
    assert!(
        dir.starts_with(cache.path().join("models/shelf")),
        "{}",
        dir.display()
    );
    assert_eq!(fs::read(dir.join("weights.bin"))?, bytes(300_000, 31));
    // Every file matched the sha256 its source stated: the model passes without `--digest`.
    assert_eq!(ensured.entry.verification.outcome, Outcome::Pass);
    assert_eq!(
        ensured
            .entry
            .provenance
            .as_ref()
            .map(|p| p.fetcher.as_str()),
        Some("shelf")
    );
    assert_eq!(nginx.log_of_at_least(2).len(), 2, "{:?}", nginx.log());

    let again = p.ensure_present_str("shelf:tiny", None)?;
    assert_eq!(&again.local_path, dir);
    assert_eq!(nginx.log().len(), 2, "a cache hit sends no request");
    Ok(())
}

#[test]
fn a_file_that_breaks_what_its_source_states_fails_and_nothing_is_published() -> TestResult {
    let nginx = Nginx::start();
    let cache = tempfile::tempdir()?;
    let p = ModelProvisioner::builder(cache.path())
        .source(shelf(&nginx, true)?)
        .build()?;
    let err = p.ensure_present_str("shelf:tiny", None).unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    assert!(
        matches!(&err, Error::DigestMismatch(m) if m.computed == Digest::sha256_of(b"{\"arch\": \"tiny\"}")),
        "{err:?}"
    );
    assert!(!cache.path().join("models/shelf").exists());
    assert!(p.catalog().get("shelf:tiny")?.is_none());
    Ok(())
}

/// A shelf of one model, `sums`, whose files the shelf states only checksums for (as an
/// object store does), the MD5 of the first, the CRC32C of the second; `lie` makes it state a
/// CRC32C the second's bytes do not have.
fn shelf_of_checksums(nginx: &Nginx, lie: bool) -> Result<ShelfKind, std::io::Error> {
    let weights = bytes(2 << 20, 32);
    let config = b"{\"arch\": \"sums\"}".to_vec();
    nginx.put("sums/weights.bin", &weights)?;
    nginx.put("sums/config.json", &config)?;
    let crc = Checksum::of(ChecksumKind::Crc32c, if lie { b"other" } else { &config });
    let files = vec![
        (
            "weights.bin".to_owned(),
            Stated::Nothing,
            Some(Checksum::of(ChecksumKind::Md5, &weights)),
        ),
        ("config.json".to_owned(), Stated::Nothing, Some(crc)),
    ];
    Ok(ShelfKind {
        base: nginx.url("files"),
        models: Arc::new(BTreeMap::from([("sums".to_owned(), files)])),
    })
}

#[test]
fn a_stated_checksum_is_checked_as_the_bytes_stream_and_vouches_for_nothing() -> TestResult {
    let nginx = Nginx::start();
    let cache = tempfile::tempdir()?;
    let p = ModelProvisioner::builder(cache.path())
        .source(shelf_of_checksums(&nginx, false)?)
        .build()?;
    let ensured = p.ensure(&p.parse_ref("shelf:sums")?, None)?;
    assert_eq!(
        fs::read(ensured.resolved.local_path.join("weights.bin"))?,
        bytes(2 << 20, 32)
    );
    // A checksum is no sha256: without `--digest`, the model is recorded, as `warn`.
    assert_eq!(ensured.entry.verification.outcome, Outcome::Warn);
    Ok(())
}

#[test]
fn a_file_that_breaks_its_stated_checksum_fails_verification_and_nothing_is_published() -> TestResult
{
    let nginx = Nginx::start();
    let cache = tempfile::tempdir()?;
    let p = ModelProvisioner::builder(cache.path())
        .source(shelf_of_checksums(&nginx, true)?)
        .build()?;
    let err = p.ensure_present_str("shelf:sums", None).unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    let Error::ChecksumMismatch {
        file,
        expected,
        computed,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(file.ends_with("config.json"), "{file}");
    assert_eq!(
        (expected, computed),
        (
            &Checksum::of(ChecksumKind::Crc32c, b"other").to_string(),
            &Checksum::of(ChecksumKind::Crc32c, b"{\"arch\": \"sums\"}").to_string()
        )
    );
    assert!(
        err.hint()
            .is_some_and(|h| h.contains("run the same command again"))
    );
    assert!(!cache.path().join("models/shelf").exists());
    assert!(p.catalog().get("shelf:sums")?.is_none());
    Ok(())
}

#[test]
fn a_registered_source_reports_its_failures_in_its_own_words_with_their_kind() -> TestResult {
    let nginx = Nginx::start();
    let cache = tempfile::tempdir()?;
    let p = ModelProvisioner::builder(cache.path())
        .source(shelf(&nginx, false)?)
        .build()?;
    let err = p.ensure_present_str("shelf:absent", None).unwrap_err();
    let Error::Source { failure, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*failure, SourceFailure::NotFound);
    assert!(err.to_string().contains("has no model `absent`"), "{err}");
    assert_eq!(
        err.hint().as_deref(),
        Some("the shelf's models are listed at its root")
    );
    Ok(())
}

#[test]
fn a_scheme_no_source_reads_is_refused_naming_the_schemes_that_would_do() -> TestResult {
    let nginx = Nginx::start();
    let cache = tempfile::tempdir()?;
    let without = ModelProvisioner::builder(cache.path()).build()?;
    let err = without.parse_ref("shelf:tiny").unwrap_err();
    assert!(matches!(err, Error::InvalidRef(_)), "{err:?}");
    assert!(err.to_string().contains("unknown scheme `shelf:`"), "{err}");

    let with = ModelProvisioner::builder(cache.path())
        .source(shelf(&nginx, false)?)
        .build()?;
    let err = with.parse_ref("gs://bucket/k").unwrap_err();
    assert!(err.to_string().contains("ollama:, shelf:"), "{err}");
    // A reference of a scheme that a provisioner reads, handed to one that does not.
    let reference = with.parse_ref("shelf:tiny")?;
    let err = without.ensure(&reference, None).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("no source of this provisioner reads `shelf:`"),
        "{err}"
    );
    Ok(())
}
