//! A source registered from outside the crate: this module (its kind, its source) and one call
//! of `ProvisionerBuilder::source` are all it takes for its references to be ensured through
//! the one pipeline, verified and recorded like any other.

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use catalog_core::{CatalogStore, Digest, ModelRef, Outcome, SafeRelPath};
use model_provisioner::Progress;
use model_provisioner::mirror::MirrorShape;
use model_provisioner::object_store::{Folder, MANIFEST_NAME, Manifest, Upload};
use model_provisioner::pipeline::{ListedFile, Listing, Revision, Source, Stated};
use model_provisioner::{
    Error, FetchRequest, ModelProvisioner, SourceContext, SourceFailure, SourceKind,
};
use mp_transfer::{Checksum, ChecksumKind, Engine, UrlSource};
use test_support::{Nginx, S3Server, random_bytes as bytes};

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
            signatures: Vec::new(),
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
    let err = with.parse_ref("ftp://bucket/k").unwrap_err();
    assert!(err.to_string().contains("unknown scheme `ftp:`"), "{err}");
    assert!(err.to_string().contains(", shelf:"), "{err}");
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

/// `drop:bucket/prefix/`: a store that takes pushes only, each object sent with a presigned
/// `PUT` to an S3 server: a source that writes its store says so with `Source::folder`, and the
/// one push of every object store writes the model and its manifest there.
#[derive(Debug)]
struct DropKind {
    server: Arc<S3Server>,
}

impl SourceKind for DropKind {
    fn schemes(&self) -> &'static [&'static str] {
        &["drop"]
    }

    /// A store of folders: it holds mirrors, a hub's repositories in the bucket layout.
    fn mirror_shape(&self) -> MirrorShape {
        MirrorShape::Bucket
    }

    fn build(
        &self,
        context: &SourceContext<'_>,
    ) -> model_provisioner::Result<Box<dyn Source + Send + Sync>> {
        Ok(Box::new(Drop {
            server: Arc::clone(&self.server),
            engine: context.engine.clone(),
        }))
    }
}

struct Drop {
    server: Arc<S3Server>,
    engine: Engine,
}

impl Source for Drop {
    fn name(&self) -> &'static str {
        "drop"
    }

    fn resolve<'s>(&'s self, req: &FetchRequest<'_>) -> model_provisioner::Result<Listing<'s>> {
        Err(Error::Source {
            failure: SourceFailure::NotFound,
            message: format!("`{}`: a drop is written, never read", req.id),
            hint: None,
        })
    }

    fn folder<'s>(
        &'s self,
        destination: &ModelRef,
    ) -> Option<model_provisioner::Result<Box<dyn Folder + 's>>> {
        let ModelRef::Other(reference) = destination else {
            return None;
        };
        let (bucket, prefix) = reference.rest().split_once('/')?;
        Some(Ok(Box::new(DropFolder {
            drop: self,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })))
    }
}

struct DropFolder<'s> {
    drop: &'s Drop,
    bucket: String,
    prefix: String,
}

impl DropFolder<'_> {
    fn put(&self, name: &str, size: u64, body: reqwest::Body) -> model_provisioner::Result<()> {
        let url =
            self.drop
                .server
                .presign("PUT", &self.bucket, &format!("{}{name}", self.prefix), &[]);
        let engine = self.drop.engine.get()?;
        let client = engine.client();
        let answer = engine.block_on(async {
            client
                .put(url)
                .header(reqwest::header::CONTENT_LENGTH, size)
                .body(body)
                .send()
                .await
        });
        match answer {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(Error::Source {
                failure: SourceFailure::Protocol,
                message: format!("the drop answered {} for `{name}`", r.status()),
                hint: None,
            }),
            Err(e) => Err(Error::Source {
                failure: SourceFailure::Protocol,
                message: format!("the drop failed for `{name}`: {e}"),
                hint: None,
            }),
        }
    }
}

impl Folder for DropFolder<'_> {
    fn describe(&self) -> String {
        format!("drop:{}/{}", self.bucket, self.prefix)
    }

    fn put_file(
        &self,
        name: &str,
        file: &Upload<'_>,
        progress: &Arc<dyn Progress>,
    ) -> model_provisioner::Result<()> {
        let (body, check) = file.body(Arc::clone(progress), None);
        let sent = self.put(name, file.size(), body);
        match check.take() {
            Some(stopped) => Err(stopped),
            None => sent,
        }
    }

    fn put_bytes(&self, name: &str, body: &[u8]) -> model_provisioner::Result<()> {
        self.put(name, body.len() as u64, body.to_vec().into())
    }
}

#[test]
fn a_registered_store_takes_a_push_of_every_file_and_the_manifest_last() -> TestResult {
    let server = Arc::new(S3Server::start()?);
    server.create_bucket("drops")?;
    let models = tempfile::tempdir()?;
    let model = models.path().join("model");
    fs::create_dir_all(model.join("sub"))?;
    fs::write(model.join("config.json"), b"{}")?;
    fs::write(model.join("sub/w.bin"), bytes(3 << 20, 41))?;
    let cache = tempfile::tempdir()?;
    let p = ModelProvisioner::builder(cache.path())
        .source(DropKind {
            server: Arc::clone(&server),
        })
        .build()?;
    let id = p
        .ensure(&p.parse_ref(&model.display().to_string())?, None)?
        .resolved
        .id;
    let pushed = p.push(&id, &p.parse_ref("drop:drops/m/")?)?;
    assert_eq!((pushed.files, pushed.bytes_uploaded), (2, (3 << 20) + 2));
    assert_eq!(
        pushed.manifest_key.as_deref(),
        Some("drop:drops/m/.model-provisioner.json")
    );
    assert_eq!(
        fs::read(server.object_path("drops", "m/sub/w.bin"))?,
        bytes(3 << 20, 41)
    );
    let manifest = Manifest::parse(&fs::read(
        server.object_path("drops", &format!("m/{MANIFEST_NAME}")),
    )?)?;
    assert_eq!(manifest.id, id);
    let stated: Vec<_> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.sha256.clone()))
        .collect();
    assert_eq!(
        stated,
        [
            ("config.json", Digest::sha256_of(b"{}")),
            ("sub/w.bin", Digest::sha256_of(&bytes(3 << 20, 41)))
        ]
    );

    // A provisioner without the store cannot push there.
    let without = ModelProvisioner::builder(cache.path()).build()?;
    let err = without
        .push(&id, &p.parse_ref("drop:drops/m/")?)
        .unwrap_err();
    assert!(
        matches!(err, Error::Unsupported { .. } | Error::PushScheme { .. }),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn a_file_changed_since_it_was_ensured_is_never_pushed_to_a_registered_store() -> TestResult {
    let server = Arc::new(S3Server::start()?);
    server.create_bucket("drops")?;
    let models = tempfile::tempdir()?;
    let model = models.path().join("model");
    fs::create_dir_all(&model)?;
    fs::write(model.join("w.bin"), bytes(1 << 20, 42))?;
    let cache = tempfile::tempdir()?;
    let p = ModelProvisioner::builder(cache.path())
        .source(DropKind {
            server: Arc::clone(&server),
        })
        .build()?;
    let reference = p.parse_ref(&model.join("w.bin").display().to_string())?;
    let digest = Digest::sha256_of(&bytes(1 << 20, 42));
    let id = p.ensure(&reference, Some(&digest))?.resolved.id;
    // The model's bytes change where it lies, after it was recorded.
    fs::write(model.join("w.bin"), bytes(1 << 20, 43))?;
    let err = p.push(&id, &p.parse_ref("drop:drops/m/")?).unwrap_err();
    assert!(err.is_verification_failure(), "{err:?}");
    assert!(
        !server
            .object_path("drops", &format!("m/{MANIFEST_NAME}"))
            .exists(),
        "no manifest for a model that does not verify"
    );
    Ok(())
}

#[cfg(all(feature = "hf", feature = "s3"))]
#[test]
fn a_registered_hub_s_model_mirrored_into_a_registered_store_is_read_back_through_its_layout()
-> TestResult {
    use model_provisioner::mirror::Mirrors;
    use model_provisioner::{ModelScopeKind, S3Access};
    use test_support::ModelScopeNginx;

    let files = BTreeMap::from([
        ("config.json".to_owned(), b"{}".to_vec()),
        ("sub/w.gguf".to_owned(), bytes(300_000, 43)),
    ]);
    let ms = ModelScopeNginx::start_one("org/tiny", &files, false);
    let server = Arc::new(S3Server::start()?);
    server.create_bucket("drops")?;
    // A provisioner with both registered sources: `modelscope:`, a hub, and `drop:`, a store of
    // folders that only takes pushes. Neither is named by the mirror rules' code.
    let provisioner = |cache: &std::path::Path, mirrors: Mirrors| {
        let env: std::collections::HashMap<&str, String> = [
            ("AWS_ACCESS_KEY_ID", server.access_key().to_owned()),
            ("AWS_SECRET_ACCESS_KEY", server.secret_key().to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("HOME", "/nonexistent-home-for-tests".to_owned()),
        ]
        .into_iter()
        .collect();
        ModelProvisioner::builder(cache)
            .download_config(crate::quick_download())
            .hf_config(model_provisioner::hf::HfConfig::default())
            .source(ModelScopeKind::new(&ms.endpoint(), None))
            .source(DropKind {
                server: Arc::clone(&server),
            })
            .s3_env(Arc::new(move |name| env.get(name).cloned()))
            .s3_access(S3Access {
                endpoint: Some(server.endpoint().parse().expect("a URL")),
                ..S3Access::default()
            })
            .mirrors(mirrors)
            .build()
    };
    let seed_cache = tempfile::tempdir()?;
    let seed = provisioner(seed_cache.path(), Mirrors::new())?;
    seed.ensure(&seed.parse_ref("modelscope:org/tiny")?, None)?;
    let mirrored = seed.mirror("modelscope:org/tiny", "drop:drops/ms")?;
    let commit = ms.commit("org/tiny");
    assert_eq!(mirrored.rule, "modelscope:=drop:drops/ms");
    assert_eq!(
        mirrored.destinations,
        [
            format!("drop:drops/ms/org/tiny/{commit}/"),
            "drop:drops/ms/org/tiny/refs/master".to_owned()
        ]
    );
    assert_eq!(
        fs::read_to_string(server.object_path("drops", "ms/org/tiny/refs/master"))?.trim(),
        commit
    );

    // The store wrote the layout an `s3://` mirror of the same bucket reads: a node finds the
    // model there, under its own id, vouched for by ModelScope's sha256s, and asks ModelScope
    // for no file.
    ms.clear_log();
    let node_cache = tempfile::tempdir()?;
    let node = provisioner(
        node_cache.path(),
        Mirrors::from_flags(["modelscope:=s3://drops/ms"])?,
    )?;
    let ensured = node.ensure(&node.parse_ref("modelscope:org/tiny")?, None)?;
    assert_eq!(ensured.entry.id, "modelscope:org/tiny");
    assert_eq!(ensured.entry.verification.outcome, Outcome::Pass);
    test_support::assert_holds(&ensured.resolved.local_path, &files);
    let provenance = ensured.entry.provenance.ok_or("no provenance")?;
    assert_eq!(provenance.fetcher, "mirror+s3");
    assert_eq!(
        provenance.resolved_revision.as_deref(),
        Some(commit.as_str())
    );
    let file_requests: Vec<_> = ms
        .requests()
        .into_iter()
        .filter(|r| r.uri.contains("FilePath="))
        .collect();
    assert!(
        file_requests.is_empty(),
        "ModelScope served files: {file_requests:?}"
    );

    // A rule to a store this provisioner has no source for is refused when it is built.
    let err = provisioner(
        tempfile::tempdir()?.path(),
        Mirrors::from_flags(["modelscope:=crate://drops/ms"])?,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("no source of this build reads `crate:`"),
        "{err}"
    );
    Ok(())
}
